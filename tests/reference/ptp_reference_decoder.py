#!/usr/bin/env python3
"""An independent, educational decoder for AGP-PTP frames (format version 1).

Written from the written specification alone:

  docs/ptp_format.md   frames, header fields, section table, descriptors, chunks
  docs/codec.md        the bytes of every codec and the f32 arithmetic of decoding
  docs/codebooks.md    the centroid tables (parsed from that page at run time)
  schemas/ptp.fbs      the FlatBuffers schema of the header

It shares no code with the C++ implementation. It is meant to be read: it is plain and slow,
vectorised with NumPy only across the vectors of a packet, never across the steps of the
arithmetic, so every f32 operation happens in the order the docs write it. Section numbers in the
comments ("fmt 3.3", "codec: TurboQuant-MSE") point at the paragraph a piece of code implements.

Dependencies: NumPy, xxhash (XXH3-64) and zstandard (TurboQuant-EC mode 0), nothing else. The
FlatBuffers header is read by the small hand-written reader below (no flatbuffers package).

Command line:

  ptp_reference_decoder.py FILE.ptp [FILE.ptp ...] [--save-dir DIR] [--codebooks PATH]

prints one line per frame and one per decoded tensor packet; with --save-dir it writes each
decoded tensor as <file stem>.<packet number>.npy (f32). Exit status 0 when every frame verified
and every tensor packet decoded, 1 otherwise.
"""

import argparse
import math
import os
import re
import struct
import sys

import numpy as np
import xxhash

try:  # only TurboQuant-EC mode 0 needs zstd; the rest of the decoder works without it
    import zstandard
except ImportError:  # pragma: no cover - reported when a mode-0 packet is met
    zstandard = None


# --------------------------------------------------------------------------------------------
# Errors (fmt 9): every failure is a PtpError carrying the stable name and number.
# --------------------------------------------------------------------------------------------

ERROR_CODES = {
    "truncated": 100,
    "bad_magic": 101,
    "unsupported_version": 102,
    "bad_prefix": 103,
    "header_too_large": 104,
    "header_checksum_mismatch": 105,
    "header_invalid": 106,
    "missing_field": 107,
    "unknown_message_kind": 108,
    "body_too_large": 109,
    "bad_section_table": 110,
    "section_out_of_bounds": 111,
    "section_misaligned": 112,
    "section_checksum_mismatch": 113,
    "non_zero_padding": 114,
    "bad_tensor_descriptor": 115,
    "bad_codec_descriptor": 116,
    "fingerprint_mismatch": 117,
    "protocol_version_mismatch": 118,
    "bad_calibration": 204,
    "bad_encoded_data": 402,
}


class PtpError(Exception):
    """A refused frame or packet: `name` is the error name of docs/ptp_format.md section 9."""

    def __init__(self, name, detail):
        super().__init__(f"{name} ({ERROR_CODES[name]}): {detail}")
        self.name = name
        self.code = ERROR_CODES[name]
        self.detail = detail


def fail(name, detail):
    raise PtpError(name, detail)


# --------------------------------------------------------------------------------------------
# Constants of the schema and of the format.
# --------------------------------------------------------------------------------------------

KIND_NAMES = {1: "hello", 2: "hello_reply", 3: "tensor_packet", 4: "ack", 5: "heartbeat",
              6: "error", 7: "bye"}
DTYPE_NAMES = {1: "f32", 2: "f16", 3: "bf16"}
DTYPE_SIZES = {1: 4, 2: 2, 3: 2}
LAYOUT_LETTERS = {0: None, 1: "BSD", 2: "BC1S", 3: "SD", 4: "D", 5: "BCS"}
CODEC_NAMES = {1: "raw", 2: "turboquant_mse", 3: "turboquant_prod", 4: "block_absmax_int8",
               5: "block_absmax_4", 6: "turboquant_ec", 7: "turboquant_cal"}
RAW, TQ_MSE, TQ_PROD, ABSMAX8, ABSMAX4, TQ_EC, TQ_CAL = 1, 2, 3, 4, 5, 6, 7
SEC_RAW, SEC_CODES, SEC_NORMS, SEC_SCALES, SEC_SKETCH, SEC_SKETCH_NORMS, SEC_SIDE_DATA = range(1, 8)
SECTION_NAMES = {1: "raw", 2: "codes", 3: "norms", 4: "scales", 5: "sketch", 6: "sketch_norms",
                 7: "side_data"}

PREFIX_SIZE = 24
MAGIC = b"AGPP"
FILE_IDENTIFIER = b"APH1"
U64_MAX = (1 << 64) - 1


class Limits:
    """The receiver limits of fmt section 8 (the defaults of DecoderLimits)."""

    max_header_bytes = 64 * 1024
    max_body_bytes = 1 << 30
    max_sections = 64
    max_depth = 16
    max_tables = 1024
    max_string_bytes = 4096
    max_vector_elements = 4096
    max_tensor_bytes = 1 << 30


def align64(x):
    return (x + 63) // 64 * 64


def ceil_div(a, b):
    return -(-a // b)


def xxh3_64(data):
    return xxhash.xxh3_64_intdigest(bytes(data))


# --------------------------------------------------------------------------------------------
# A small FlatBuffers reader with the checks of a Verifier (fmt 3).
#
# FlatBuffers, little-endian: the buffer starts with a u32 offset to the root table (and here the
# 4-byte file identifier). A table starts with an i32 `soffset`; its vtable is at
# table - soffset: u16 vtable size in bytes, u16 table size, then one u16 per field id (the
# declaration order of the schema), the field's offset from the table start or 0 when absent.
# Scalars and structs are stored inline; strings, vectors and sub-tables through a u32 offset
# counted from the position of the offset itself. A string is u32 length, bytes, a 0 byte; a
# vector is u32 element count, then the elements.
# --------------------------------------------------------------------------------------------

class FlatBufferReader:
    def __init__(self, buf, limits):
        self.buf = bytes(buf)
        self.limits = limits
        self.tables = 0

    def check(self, pos, size, align, what):
        if pos < 0 or size < 0 or pos + size > len(self.buf):
            fail("header_invalid", f"FlatBuffers: {what} at {pos} (+{size}) is outside the buffer")
        if align > 1 and pos % align != 0:
            fail("header_invalid", f"FlatBuffers: {what} at {pos} is not {align}-byte aligned")

    def scalar(self, fmt, pos, what):
        size = struct.calcsize(fmt)
        self.check(pos, size, size, what)
        return struct.unpack_from("<" + fmt, self.buf, pos)[0]

    def follow(self, pos, what):
        """The target of the u32 offset stored at `pos`."""
        off = self.scalar("I", pos, what)
        if off == 0 or off >= 1 << 31:
            fail("header_invalid", f"FlatBuffers: {what} has offset {off}")
        target = pos + off
        self.check(target, 1, 1, what)
        return target

    def root(self, identifier):
        self.check(0, 8, 1, "root offset and identifier")
        if self.buf[4:8] != identifier:
            fail("header_invalid", f"file identifier {self.buf[4:8]!r}, expected {identifier!r}")
        return FlatTable(self, self.follow(0, "root table"), depth=1)


class FlatTable:
    def __init__(self, reader, pos, depth):
        r = reader
        r.tables += 1
        if depth > r.limits.max_depth:
            fail("header_invalid", "FlatBuffers: tables nested too deeply")
        if r.tables > r.limits.max_tables:
            fail("header_invalid", "FlatBuffers: too many tables")
        self.r, self.pos, self.depth = r, pos, depth
        soffset = r.scalar("i", pos, "table soffset")
        self.vt = pos - soffset
        r.check(self.vt, 4, 2, "vtable")
        self.vt_size = r.scalar("H", self.vt, "vtable size")
        self.table_size = r.scalar("H", self.vt + 2, "table size")
        if self.vt_size % 2 != 0 or self.vt_size < 4:
            fail("header_invalid", f"FlatBuffers: vtable size {self.vt_size}")
        r.check(self.vt, self.vt_size, 2, "vtable")
        r.check(pos, self.table_size, 4, "table")

    def field(self, fid, size):
        """Position of field `fid` (size bytes inline), or None when absent."""
        entry = 4 + 2 * fid
        if entry + 2 > self.vt_size:
            return None
        off = self.r.scalar("H", self.vt + entry, "vtable entry")
        if off == 0:
            return None
        if off + size > self.table_size:
            fail("header_invalid", f"FlatBuffers: field {fid} runs past its table")
        return self.pos + off

    def scalar(self, fid, fmt, default=0):
        pos = self.field(fid, struct.calcsize(fmt))
        return default if pos is None else self.r.scalar(fmt, pos, f"field {fid}")

    def struct(self, fid, fmt):
        """A struct field, unpacked with `fmt` (its size and 8-byte alignment included)."""
        size = struct.calcsize("<" + fmt)
        pos = self.field(fid, size)
        if pos is None:
            return None
        self.r.check(pos, size, 8, f"struct field {fid}")
        return struct.unpack_from("<" + fmt, self.r.buf, pos)

    def table(self, fid):
        pos = self.field(fid, 4)
        if pos is None:
            return None
        return FlatTable(self.r, self.r.follow(pos, f"table field {fid}"), self.depth + 1)

    def string(self, fid):
        """A string field as bytes (b"" when absent; fmt 3.1: an absent string is empty)."""
        pos = self.field(fid, 4)
        if pos is None:
            return b""
        start = self.r.follow(pos, f"string field {fid}")
        n = self.r.scalar("I", start, "string length")
        self.r.check(start + 4, n + 1, 1, "string")
        if self.r.buf[start + 4 + n] != 0:
            fail("header_invalid", "FlatBuffers: string without its terminating zero")
        return self.r.buf[start + 4:start + 4 + n]

    def vector_start(self, fid):
        """Position of the u32 length of vector field `fid`, or None when absent."""
        pos = self.field(fid, 4)
        return None if pos is None else self.r.follow(pos, f"vector field {fid}")

    def vector(self, fid, fmt):
        """A vector field of scalars or structs as a list of tuples/values ([] when absent)."""
        start = self.vector_start(fid)
        if start is None:
            return []
        count = self.r.scalar("I", start, "vector length")
        # fmt 8's max_vector_elements (4096), applied to every vector of the header: fmt 3.2
        # names the hello vectors; which others it covers is not said (see README).
        if count > self.r.limits.max_vector_elements:
            fail("header_invalid", f"FlatBuffers: vector of {count} elements")
        elem = struct.calcsize("<" + fmt)
        self.r.check(start + 4, count * elem, 1, "vector elements")
        items = [struct.unpack_from("<" + fmt, self.r.buf, start + 4 + i * elem)
                 for i in range(count)]
        return [t[0] if len(t) == 1 else t for t in items]


# --------------------------------------------------------------------------------------------
# The header (schemas/ptp.fbs), read into plain dicts. Field ids are the schema's declaration
# order inside each table.
# --------------------------------------------------------------------------------------------

SECTION_STRUCT = "QQQH6x"  # Section {offset u64, length u64, xxh3 u64, kind u16}, padded to 32
HASH128_STRUCT = "QQ"      # Hash128 {lo u64, hi u64}


def read_header(region, limits):
    root = FlatBufferReader(region, limits).root(FILE_IDENTIFIER)
    h = {
        "protocol_version": root.scalar(0, "H"),
        "kind": root.scalar(1, "B"),
        "stream_id": root.scalar(2, "I"),
        "sequence": root.scalar(3, "Q"),
        "timestamp_ns": root.scalar(4, "Q"),
        "fingerprint": root.struct(5, HASH128_STRUCT) or (0, 0),
        "model_id": root.string(6),
        "split_layer": root.scalar(7, "i", -1),
        "tensor": None, "codec": None, "chunk": None, "hello": None, "ack": None, "error": None,
        "body_length": root.scalar(15, "Q"),
    }
    t = root.table(8)
    if t is not None:
        h["tensor"] = {"name": t.string(0), "dtype": t.scalar(1, "B"), "shape": t.vector(2, "Q"),
                       "layout": t.scalar(3, "B"), "vector_axis": t.scalar(4, "B")}
    c = root.table(9)
    if c is not None:
        h["codec"] = {"codec": c.scalar(0, "H"), "bits": c.scalar(1, "B"),
                      "rotation": c.scalar(2, "B"), "rotation_seed": c.scalar(3, "Q"),
                      "block_size": c.scalar(4, "I"), "codebook_id": c.scalar(5, "H"),
                      "codebook_version": c.scalar(6, "H"), "norm_dtype": c.scalar(7, "B"),
                      "lossless": c.scalar(8, "B"), "lossless_level": c.scalar(9, "b"),
                      "original_bytes": c.scalar(10, "Q"), "calibration_id": c.scalar(11, "Q")}
    k = root.table(10)
    if k is not None:
        h["chunk"] = {"index": k.scalar(0, "I"), "count": k.scalar(1, "I"),
                      "vector_offset": k.scalar(2, "Q"), "vector_count": k.scalar(3, "Q")}
    g = root.table(11)
    if g is not None:
        h["hello"] = {"min_protocol": g.scalar(0, "H"), "max_protocol": g.scalar(1, "H"),
                      "max_frame_bytes": g.scalar(2, "Q"), "max_streams": g.scalar(3, "H"),
                      "codecs": g.vector(4, "H"), "flags": g.scalar(5, "Q"),
                      "nonce": g.vector(6, "B"), "auth_tag": g.vector(7, "B"),
                      "peer_name": g.string(8), "session_id": g.scalar(9, "Q"),
                      "delivered_sequence": g.scalar(10, "Q"), "next_sequence": g.scalar(11, "Q"),
                      "codec_bits": g.vector(12, "I"), "stream_index": g.scalar(13, "H")}
    a = root.table(12)
    if a is not None:
        h["ack"] = {"cumulative_sequence": a.scalar(0, "Q")}
    e = root.table(13)
    if e is not None:
        h["error"] = {"code": e.scalar(0, "I"), "message": e.string(1)}
    h["sections"] = [dict(zip(("offset", "length", "xxh3", "kind"), s))
                     for s in root.vector(14, SECTION_STRUCT)]
    # Where the Section structs start in the region (for tools that patch a checksum in place).
    table_start = root.vector_start(14)
    h["section_table_at"] = None if table_start is None else table_start + 4
    return h


# --------------------------------------------------------------------------------------------
# Header rules (fmt 3.1, 3.2, 3.3, 4, 5.2 frame layer, 6 frame layer), in the order of fmt 8.
# --------------------------------------------------------------------------------------------

def check_header_string(raw, what, limits):
    if len(raw) > limits.max_string_bytes:
        fail("header_invalid", f"{what} is {len(raw)} bytes")
    try:
        return raw.decode("utf-8", errors="strict")  # strict UTF-8 is RFC 3629
    except UnicodeDecodeError:
        fail("header_invalid", f"{what} is not valid UTF-8")


def element_count(shape):
    count = 1
    for d in shape:
        count *= d
    return count


def check_tensor_descriptor(t, limits):
    name = "bad_tensor_descriptor"
    if t["dtype"] not in DTYPE_SIZES:
        fail(name, f"dtype {t['dtype']}")
    shape = t["shape"]
    if not 1 <= len(shape) <= 8:
        fail(name, f"rank {len(shape)}")
    if any(d < 1 for d in shape):
        fail(name, f"shape {shape} has a zero dimension")
    count = element_count(shape)
    if count > 1 << 63 or count * DTYPE_SIZES[t["dtype"]] > U64_MAX:
        fail(name, f"shape {shape} overflows")
    if t["layout"] not in LAYOUT_LETTERS:
        fail(name, f"layout {t['layout']}")
    letters = LAYOUT_LETTERS[t["layout"]]
    if letters is not None and len(letters) != len(shape):
        fail(name, f"layout {letters} for rank {len(shape)}")
    if t["vector_axis"] >= len(shape):
        fail(name, f"vector axis {t['vector_axis']} for rank {len(shape)}")
    if count * DTYPE_SIZES[t["dtype"]] > limits.max_tensor_bytes:
        fail("body_too_large", f"tensor of {count * DTYPE_SIZES[t['dtype']]} bytes")


def check_section_table(h, limits):
    body_length, sections = h["body_length"], h["sections"]
    if body_length > limits.max_body_bytes:
        fail("body_too_large", f"body_length {body_length}")
    if body_length % 64 != 0:
        fail("bad_section_table", f"body_length {body_length} is not a multiple of 64")
    if len(sections) > limits.max_sections:
        fail("bad_section_table", f"{len(sections)} sections")
    expected = 0
    for i, s in enumerate(sections):
        if s["kind"] == 0:
            fail("bad_section_table", f"section {i} has kind 0")
        if s["offset"] % 64 != 0:
            fail("section_misaligned", f"section {i} at offset {s['offset']}")
        if s["offset"] > body_length or s["length"] > body_length - s["offset"]:
            fail("section_out_of_bounds", f"section {i} ({s['offset']}, {s['length']})")
        if s["offset"] != expected:
            fail("section_misaligned", f"section {i} at {s['offset']}, canonical {expected}")
        expected = align64(s["offset"] + s["length"])
    if body_length != expected:
        fail("bad_section_table", f"body_length {body_length}, sections end at {expected}")


def validate_header(h, limits):
    if h["protocol_version"] != 1:
        fail("protocol_version_mismatch", f"protocol_version {h['protocol_version']}")
    if h["kind"] not in KIND_NAMES:
        fail("unknown_message_kind", f"kind {h['kind']}")
    kind = KIND_NAMES[h["kind"]]
    check_header_string(h["model_id"], "model_id", limits)

    # fmt 3.2: the fields each kind requires, with the hello, error and chunk rules.
    if kind == "tensor_packet":
        for field in ("tensor", "codec"):
            if h[field] is None:
                fail("missing_field", f"a tensor packet without `{field}`")
        if not h["sections"]:
            fail("missing_field", "a tensor packet without sections")
    if kind in ("hello", "hello_reply") and h["hello"] is None:
        fail("missing_field", f"a {kind} without `hello`")
    if kind == "ack" and h["ack"] is None:
        fail("missing_field", "an ack without `ack`")
    if kind == "error" and h["error"] is None:
        fail("missing_field", "an error without `error`")
    if h["hello"] is not None:
        g = h["hello"]
        if g["min_protocol"] > g["max_protocol"]:
            fail("header_invalid", "hello: min_protocol > max_protocol")
        if g["codec_bits"] and len(g["codec_bits"]) != len(g["codecs"]):
            fail("header_invalid", "hello: codec_bits not as long as codecs")
        check_header_string(g["peer_name"], "hello.peer_name", limits)
    if h["error"] is not None:
        check_header_string(h["error"]["message"], "error.message", limits)
    if h["chunk"] is not None:
        k = h["chunk"]
        if k["count"] < 1 or k["index"] >= k["count"]:
            fail("header_invalid", f"chunk {k['index']} of {k['count']}")
        if k["vector_offset"] + k["vector_count"] > U64_MAX:
            fail("header_invalid", "chunk range overflows")

    if h["tensor"] is not None:
        check_header_string(h["tensor"]["name"], "tensor.name", limits)
        check_tensor_descriptor(h["tensor"], limits)
    if h["codec"] is not None:  # fmt 5.2, frame layer
        c = h["codec"]
        if not 1 <= c["codec"] <= 7:
            fail("bad_codec_descriptor", f"codec {c['codec']}")
        if (c["codec"] == RAW and c["bits"] != 0) or (c["codec"] != RAW and not 1 <= c["bits"] <= 16):
            fail("bad_codec_descriptor", f"bits {c['bits']} for codec {c['codec']}")
        if c["rotation"] > 2 or c["lossless"] > 1 or c["norm_dtype"] > 3:
            fail("bad_codec_descriptor", "rotation, lossless or norm_dtype out of range")
    check_section_table(h, limits)


# --------------------------------------------------------------------------------------------
# Frames (fmt 1, 2, 3, 3.3, 8).
# --------------------------------------------------------------------------------------------

class Frame:
    def __init__(self, offset, size, header, body):
        self.offset = offset   # position in the file
        self.size = size       # bytes of the whole frame
        self.header = header   # dict from read_header
        self.body = body       # bytes

    def section(self, i):
        s = self.header["sections"][i]
        return self.body[s["offset"]:s["offset"] + s["length"]]


def parse_frame(data, pos=0, limits=Limits()):
    """Parse and verify the frame at data[pos:]; returns a Frame or raises PtpError."""
    if len(data) - pos < PREFIX_SIZE:
        fail("truncated", f"{len(data) - pos} bytes left, a prefix needs 24")
    prefix = data[pos:pos + PREFIX_SIZE]
    magic = prefix[0:4]
    version, flags, header_length, reserved, header_checksum = struct.unpack_from("<HHIIQ", prefix, 4)
    if magic != MAGIC:
        fail("bad_magic", f"magic {magic!r}")
    if version != 1:
        fail("unsupported_version", f"format_version {version}")
    if flags != 0 or reserved != 0:
        fail("bad_prefix", f"flags {flags}, reserved {reserved}")
    if header_length > limits.max_header_bytes:
        fail("header_too_large", f"header_length {header_length}")
    if header_length < 40 or (PREFIX_SIZE + header_length) % 64 != 0:
        fail("bad_prefix", f"header_length {header_length}")

    header_start = pos + PREFIX_SIZE
    if len(data) < header_start + header_length:
        fail("truncated", "input ends inside the header region")
    region = data[header_start:header_start + header_length]
    actual = xxh3_64(prefix[0:16] + region)
    if actual != header_checksum:
        fail("header_checksum_mismatch", f"{actual:016x} != {header_checksum:016x}")
    header = read_header(region, limits)
    validate_header(header, limits)

    body_start = header_start + header_length
    body_length = header["body_length"]
    if len(data) < body_start + body_length:
        fail("truncated", "input ends inside the body")
    body = data[body_start:body_start + body_length]
    covered_until = 0
    for i, s in enumerate(header["sections"]):
        if any(body[covered_until:s["offset"]]):
            fail("non_zero_padding", f"padding before section {i}")
        actual = xxh3_64(body[s["offset"]:s["offset"] + s["length"]])
        if actual != s["xxh3"]:
            fail("section_checksum_mismatch", f"section {i}: {actual:016x} != {s['xxh3']:016x}")
        covered_until = s["offset"] + s["length"]
    if any(body[covered_until:]):
        fail("non_zero_padding", "padding after the last section")
    return Frame(pos, PREFIX_SIZE + header_length + body_length, header, body)


def parse_frames(data, limits=Limits()):
    """All back-to-back frames of `data` (fmt 1: frames follow each other with no gap)."""
    frames, pos = [], 0
    while pos < len(data):
        frame = parse_frame(data, pos, limits)
        frames.append(frame)
        pos += frame.size
    return frames


def fingerprint(model_id, weights_digest, split_layer, hidden_size, dtype, codec_family_version):
    """fmt 7: the model fingerprint as (lo, hi)."""
    tag = b"agp-ptp-fingerprint-v1"
    data = (struct.pack("<Q", len(tag)) + tag
            + struct.pack("<Q", len(model_id)) + model_id
            + struct.pack("<Q", len(weights_digest)) + weights_digest
            + struct.pack("<iQBI", split_layer, hidden_size, dtype, codec_family_version))
    value = xxhash.xxh3_128_intdigest(data)
    return value & U64_MAX, value >> 64


# --------------------------------------------------------------------------------------------
# Codec building blocks (docs/codec.md, "Decoding bit for bit: conventions").
# --------------------------------------------------------------------------------------------

def hadamard_blocks(dim):
    """[(offset, size)]: floor(dim / 4096) blocks of 4096, then one per set bit of dim mod 4096,
    largest first."""
    sizes = [4096] * (dim // 4096)
    rest = dim % 4096
    for bit in range(12, -1, -1):
        if rest & (1 << bit):
            sizes.append(1 << bit)
    blocks, offset = [], 0
    for m in sizes:
        blocks.append((offset, m))
        offset += m
    return blocks


def splitmix64_words(seed, count):
    state = seed & U64_MAX
    words = []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & U64_MAX
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64_MAX
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64_MAX
        words.append(z ^ (z >> 31))
    return words


def signs(seed, dim):
    """s_j for j = 0 .. dim-1 as f32 +-1: -1 where bit j mod 64 of word j // 64 is set."""
    words = splitmix64_words(seed, ceil_div(dim, 64))
    s = np.empty(dim, dtype=np.float32)
    for j in range(dim):
        s[j] = -1.0 if (words[j // 64] >> (j % 64)) & 1 else 1.0
    return s


PROD_SKETCH_SEED_XOR = 0x51CE7C4E5EED


def fwht(a):
    """Unnormalized Walsh-Hadamard transform, Sylvester order, of every row of a (n, m) f32
    array: for h = 1, 2, 4, ..., for blocks of 2h values, (u, w) -> (u + w, u - w)."""
    n, m = a.shape
    a = a.astype(np.float32, copy=True)
    h = 1
    while h < m:
        pairs = a.reshape(n, m // (2 * h), 2, h)
        u = pairs[:, :, 0, :]
        w = pairs[:, :, 1, :]
        a = np.stack([u + w, u - w], axis=2).reshape(n, m)
        h *= 2
    return a


def unpack_codes(data, n, dim, b):
    """The dim b-bit indices of each of n vectors, packed LSB-first, ceil(dim*b/8) bytes each."""
    per_vector = ceil_div(dim * b, 8)
    raw = np.frombuffer(data, dtype=np.uint8).reshape(n, per_vector)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :dim * b].reshape(n, dim, b)
    weights = np.array([1 << k for k in range(b)], dtype=np.int64)
    return (bits.astype(np.int64) * weights).sum(axis=2)


def read_f16(data, count_shape):
    return np.frombuffer(data, dtype="<f2").reshape(count_shape).astype(np.float32)


def read_f32(data, count_shape):
    return np.frombuffer(data, dtype="<f4").reshape(count_shape).astype(np.float32)


def check_norms(values, what):
    """A negative, NaN or infinite norm or scale is bad_encoded_data. (-0.0 is accepted: it is not
    < 0; the docs do not say, see README.)"""
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        fail("bad_encoded_data", f"a negative, NaN or infinite {what}")


# --------------------------------------------------------------------------------------------
# Codebooks (docs/codebooks.md), parsed from the page itself.
# --------------------------------------------------------------------------------------------

def default_codebooks_path():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "docs", "codebooks.md")


class Codebooks:
    """table(m, b) -> the f32 centroids listed in docs/codebooks.md (the hex pattern is
    authoritative; the decimal is checked against it)."""

    HEADING = re.compile(r"^m = (\d+), b = (\d+): (\d+) centroids")
    ENTRY = re.compile(r"(\d+) ([0-9a-f]{8}) +(\S+)")

    def __init__(self, path=None):
        self.tables = {}
        with open(path or default_codebooks_path(), encoding="utf-8") as f:
            lines = f.read().splitlines()
        i = 0
        while i < len(lines):
            match = self.HEADING.match(lines[i])
            i += 1
            if not match:
                continue
            m, b, count = (int(g) for g in match.groups())
            while lines[i].strip() != "```":
                i += 1
            i += 1
            entries = []
            while lines[i].strip() != "```":
                entries += self.ENTRY.findall(lines[i])
                i += 1
            if [int(e[0]) for e in entries] != list(range(count)) or count != 1 << b:
                raise ValueError(f"codebooks.md: table m={m} b={b} is malformed")
            bits = np.array([int(e[1], 16) for e in entries], dtype=np.uint32)
            values = bits.view(np.float32)
            decimals = np.array([float(e[2]) for e in entries], dtype=np.float64).astype(np.float32)
            if not np.array_equal(decimals.view(np.uint32), bits):
                raise ValueError(f"codebooks.md: table m={m} b={b}: decimal and hex differ")
            self.tables[(m, b)] = values

    def table(self, m, b):
        return self.tables[(m, b)]


# --------------------------------------------------------------------------------------------
# The codecs' decoders. Each takes the frame's sections as bytes and returns the (n, dim) f32
# values of its n vectors.
# --------------------------------------------------------------------------------------------

def decode_tq_mse(codes, norms, n, dim, b, seed, codebooks):
    """codec: TurboQuant-MSE. norms: (n, B) f32 (already read from f16 or f32)."""
    check_norms(norms, "TurboQuant norm")
    idx = unpack_codes(codes, n, dim, b)
    s = signs(seed, dim)
    x = np.empty((n, dim), dtype=np.float32)
    for k, (o, m) in enumerate(hadamard_blocks(dim)):
        c = codebooks.table(m, b)[idx[:, o:o + m]]           # c_k = table(m, b)[code]
        h = fwht(c)                                         # h = fwht(c)
        scale = norms[:, k] / np.float32(m)                 # f32 division
        signed_scale = scale[:, None] * s[None, o:o + m]    # exact: a sign flip
        x[:, o:o + m] = h * signed_scale                    # x = h_k * (scale * s)
    return x


def decode_tq_prod(codes, norms, sketch, sketch_norms, n, dim, b, seed, codebooks):
    """codec: TurboQuant-prod: a (b-1)-bit MSE stage plus a 1-bit sketch of its residual."""
    x = decode_tq_mse(codes, norms, n, dim, b - 1, seed, codebooks)
    check_norms(sketch_norms, "sketch norm")
    bits = unpack_codes(sketch, n, dim, 1)
    u = np.where(bits == 1, np.float32(1.0), np.float32(-1.0)).astype(np.float32)
    s2 = signs(seed ^ PROD_SKETCH_SEED_XOR, dim)
    for k, (o, m) in enumerate(hadamard_blocks(dim)):
        g = fwht(u[:, o:o + m])                             # exact: small integers
        rn = sketch_norms[:, k].astype(np.float64)
        scale = ((rn * 1.2533141373155002) / np.float64(m)).astype(np.float32)  # one rounding
        g = g * scale[:, None]                              # f32
        x[:, o:o + m] = x[:, o:o + m] + g * s2[None, o:o + m]
    return x


def decode_block_absmax(codes, scales, n, dim, q, four_bit):
    """codec: block-absmax int8 (q = 64) and 4-bit (q = 32): value j = level_j * scale_(j // q)."""
    check_norms(scales, "block scale")
    if four_bit:
        raw = np.frombuffer(codes, dtype=np.uint8).reshape(n, ceil_div(dim, 2)).astype(np.int32)
        nibbles = np.empty((n, 2 * raw.shape[1]), dtype=np.int32)
        nibbles[:, 0::2] = raw & 0x0F                       # value 2i: low nibble of byte i
        nibbles[:, 1::2] = raw >> 4                         # value 2i+1: high nibble
        levels = nibbles[:, :dim] - 8
    else:
        levels = np.frombuffer(codes, dtype=np.int8).reshape(n, dim).astype(np.int32)
    block_of_value = np.arange(dim) // q
    return levels.astype(np.float32) * scales[:, block_of_value]


def decode_raw(data, dtype, shape):
    """codec: Raw: the tensor in its source dtype, C order, little-endian, read into f32."""
    count = element_count(shape)
    if dtype == 1:
        values = np.frombuffer(data, dtype="<f4", count=count).astype(np.float32)
    elif dtype == 2:
        values = np.frombuffer(data, dtype="<f2", count=count).astype(np.float32)
    else:  # bf16: the high half of an f32
        bits16 = np.frombuffer(data, dtype="<u2", count=count).astype(np.uint32)
        values = (bits16 << np.uint32(16)).view(np.float32)
    return values.reshape(shape)


def parse_ec_side_data(side, n, dim):
    """codec: TurboQuant-EC side_data. Returns a dict; checks what the docs say is checked."""
    if len(side) < 28:
        fail("bad_encoded_data", f"EC side data of {len(side)} bytes")
    magic = side[0:4]
    version, mode, sd_dim, sd_n = struct.unpack_from("<HHIQ", side, 4)
    (step,) = struct.unpack_from("<f", side, 20)
    lo, hi = struct.unpack_from("<hh", side, 24)
    if magic != b"TQEC" or version != 1 or mode not in (0, 1):
        fail("bad_encoded_data", f"EC side data magic {magic!r} version {version} mode {mode}")
    if sd_dim != dim or sd_n != n:
        fail("bad_encoded_data", f"EC side data says {sd_n} x {sd_dim}, the tensor {n} x {dim}")
    sd = {"mode": mode, "step": np.float32(step), "lo": lo, "hi": hi}
    if mode == 0:
        if not (math.isfinite(step) and step > 0):
            fail("bad_encoded_data", f"EC step {step}")
        if not (-127 <= lo <= 127 and lo <= hi <= 127):
            fail("bad_encoded_data", f"EC level range {lo}..{hi}")
        expected = 28 + 2 * dim + 4 * (hi - lo + 1)
    else:
        if not (1 <= lo <= 8 and hi == lo):
            fail("bad_encoded_data", f"EC fixed width lo={lo} hi={hi}")
        expected = 28 + 2 * dim
    if len(side) != expected:
        fail("bad_encoded_data", f"EC side data of {len(side)} bytes, expected {expected}")
    sd["means"] = read_f16(side[28:28 + 2 * dim], (dim,))
    if mode == 0:
        if not np.all(np.isfinite(sd["means"])):
            fail("bad_encoded_data", "EC channel mean not finite")
        sd["levels"] = read_f32(side[28 + 2 * dim:], (hi - lo + 1,))
        if not np.all(np.isfinite(sd["levels"])):
            fail("bad_encoded_data", "EC level table not finite")
    return sd


def zstd_decompress_exact(frame, size):
    """One zstd frame whose content is exactly `size` bytes (codec: TurboQuant-EC, codes)."""
    if zstandard is None:
        raise RuntimeError("TurboQuant-EC mode 0 needs the zstandard module")
    try:
        params = zstandard.get_frame_parameters(frame)
        if params.content_size not in (size, zstandard.CONTENTSIZE_UNKNOWN):
            fail("bad_encoded_data", f"zstd frame declares {params.content_size} bytes, not {size}")
        dobj = zstandard.ZstdDecompressor().decompressobj()
        out = dobj.decompress(frame)
        if not dobj.eof or dobj.unused_data:
            fail("bad_encoded_data", "codes are not exactly one complete zstd frame")
    except zstandard.ZstdError as e:
        fail("bad_encoded_data", f"corrupt zstd frame: {e}")
    if len(out) != size:
        fail("bad_encoded_data", f"zstd frame yields {len(out)} bytes, not {size}")
    return out


# --------------------------------------------------------------------------------------------
# TurboQuant-Cal (codec.md "TurboQuant-Cal", docs/calibrated_tables.md).
# --------------------------------------------------------------------------------------------

class Calibration:
    """A calibration file (codec.md "Calibration files"): mean, scale, group starts and its id."""

    MAGIC = b"AGPCAL\r\n"

    def __init__(self, data):
        if len(data) < 32 or data[:8] != self.MAGIC:
            fail("bad_calibration", "magic")
        version, dim, groups, info_len = struct.unpack_from("<IIII", data, 8)
        if version != 1 or not 1 <= dim <= 1 << 20 or not 1 <= groups <= dim or info_len > 65536:
            fail("bad_calibration", f"version {version}, dim {dim}, groups {groups}, info {info_len}")
        end = 24 + 8 * dim + 4 * groups + info_len
        if len(data) != end + 8:
            fail("bad_calibration", f"{len(data)} bytes, the sizes say {end + 8}")
        (self.id,) = struct.unpack_from("<Q", data, end)
        if xxh3_64(data[:end]) != self.id:
            fail("bad_calibration", "checksum")
        self.dim = dim
        self.mean = np.frombuffer(data, "<f4", dim, 24).astype(np.float32)
        self.scale = np.frombuffer(data, "<f4", dim, 24 + 4 * dim).astype(np.float32)
        self.starts = [int(v) for v in np.frombuffer(data, "<u4", groups, 24 + 8 * dim)]
        if not (np.isfinite(self.mean).all() and np.isfinite(self.scale).all()
                and (self.scale >= 0).all()):
            fail("bad_calibration", "a mean or scale that is not finite, or a negative scale")
        if self.starts[0] != 0 or any(b <= a for a, b in zip(self.starts, self.starts[1:])) \
                or self.starts[-1] >= dim:
            fail("bad_calibration", "group starts")
        try:
            data[24 + 8 * dim + 4 * groups:end].decode("utf-8")
        except UnicodeDecodeError:
            fail("bad_calibration", "info is not UTF-8")

    def group(self, g):
        return self.starts[g], self.starts[g + 1] if g + 1 < len(self.starts) else self.dim


def default_cal_tables_path():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "docs", "calibrated_tables.md")


class CalTables:
    """The 168 prefix codes and the reconstruction points of docs/calibrated_tables.md, with each
    table's canonical codes as {(length, code): symbol}."""

    HEADING = re.compile(r"^## Table (\d+)$")
    LENGTHS = re.compile(r"^\s*(\d+):((?:\s+\d+){16})$")
    ENTRY = re.compile(r"(\d+) ([0-9a-f]{8}) +(\S+)")
    _default = None

    def __init__(self, path=None):
        self.lengths, self.recon, self.codes = {}, {}, {}
        with open(path or default_cal_tables_path(), encoding="utf-8") as f:
            lines = f.read().splitlines()
        t = None
        in_recon = False
        for line in lines:
            match = self.HEADING.match(line)
            if match:
                t, in_recon = int(match.group(1)), False
                self.lengths[t] = []
                continue
            if t is None:
                continue
            if line.strip() == "recon":
                in_recon, self.recon[t] = True, []
                continue
            lengths = self.LENGTHS.match(line)
            if lengths and not in_recon:
                if int(lengths.group(1)) != len(self.lengths[t]):
                    raise ValueError(f"calibrated_tables.md: table {t} lengths out of order")
                self.lengths[t] += [int(v) for v in lengths.group(2).split()]
            elif in_recon:
                for s, hexbits, dec in self.ENTRY.findall(line):
                    if int(s) != len(self.recon[t]):
                        raise ValueError(f"calibrated_tables.md: table {t} recon out of order")
                    value = np.array([int(hexbits, 16)], dtype=np.uint32).view(np.float32)[0]
                    if np.float32(float(dec)) != value:
                        raise ValueError(f"calibrated_tables.md: table {t} s {s}: hex and decimal differ")
                    self.recon[t].append(value)
        if sorted(self.lengths) != list(range(168)) or any(len(v) != 64 for v in self.lengths.values()):
            raise ValueError("calibrated_tables.md: expected 168 tables of 64 lengths")
        if sorted(self.recon) != list(range(120)) or any(len(v) != 63 for v in self.recon.values()):
            raise ValueError("calibrated_tables.md: expected recon points for tables 0..119")
        for t, lens in self.lengths.items():
            # Canonical codes (RFC 1951 3.2.2), as the document states.
            count = [0] * 12
            for n in lens:
                if n:
                    count[n] += 1
            first, code = [0] * 13, 0
            for length in range(1, 12):
                code = (code + count[length - 1]) << 1 if length > 1 else 0
                first[length] = code
            table = {}
            for s, n in enumerate(lens):
                if n:
                    table[(n, first[n])] = s
                    first[n] += 1
            self.codes[t] = table

    @classmethod
    def default(cls):
        if cls._default is None:
            cls._default = CalTables()
        return cls._default


def cal_table_fits(table, k):
    if not 0 <= table < 168:
        return False
    if k == 0:
        return table < 120
    return 120 <= table < 144 if k == 1 else table >= 144


def decode_cal_substream(data, count, codes):
    """`count` symbols of one substream (LSB-first bits, each code most significant bit first);
    checks that they end in its last byte and that the padding bits are zero."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    symbols, pos, total = [], 0, len(bits)
    for _ in range(count):
        code, length = 0, 0
        while True:
            if pos >= total or length == 11:
                fail("bad_encoded_data", "cal: bits that are no code")
            code = (code << 1) | int(bits[pos])
            pos += 1
            length += 1
            s = codes.get((length, code))
            if s is not None:
                symbols.append(s)
                break
    if ceil_div(pos, 8) != len(data):
        fail("bad_encoded_data", "cal: a substream's codes end in another byte than its last")
    if bits[pos:].any():
        fail("bad_encoded_data", "cal: nonzero padding bits after a substream")
    return symbols


def decode_tq_cal(side, codes, n, cal, tables):
    """codec.md "TurboQuant-Cal": side data, the groups' substreams and raw bits, escapes."""
    groups = len(cal.starts)
    step = np.frombuffer(side, "<f4", 1, 0)[0]
    calibration_id, announced, escape_count = struct.unpack_from("<QII", side, 4)
    if not np.isfinite(step) or not step > 0:
        fail("bad_encoded_data", "cal: step")
    if calibration_id != cal.id:
        fail("bad_encoded_data", "cal: the side data names another calibration")
    if announced != n:
        fail("bad_encoded_data", f"cal: side data says {announced} vectors, the frame carries {n}")
    if escape_count > n * cal.dim:
        fail("bad_encoded_data", "cal: more escapes than values")
    substream_start = [n * i // 4 for i in range(5)]
    plan, offset = [], 0
    for g in range(groups):
        mode, k, table = struct.unpack_from("<BBH", side, 20 + 20 * g)
        lengths = struct.unpack_from("<4I", side, 24 + 20 * g)
        a, b = cal.group(g)
        m = b - a
        if mode > 1:
            fail("bad_encoded_data", "cal: group mode")
        if mode == 0:
            if k or table or any(lengths):
                fail("bad_encoded_data", "cal: a zero group carries fields")
            plan.append(None)
            continue
        if k > 24 or not cal_table_fits(table, k):
            fail("bad_encoded_data", f"cal: k {k} with table {table}")
        for i in range(4):
            c = (substream_start[i + 1] - substream_start[i]) * m
            if not ceil_div(c, 8) <= lengths[i] <= ceil_div(11 * c, 8):
                fail("bad_encoded_data", "cal: a substream's length is impossible for its values")
        plan.append((k, table, lengths, offset))
        offset += sum(lengths) + ceil_div(n * m, 8) * k
    if offset + 4 * escape_count != len(codes):
        fail("bad_encoded_data", f"cal: codes of {len(codes)} bytes, the side data says "
                                 f"{offset + 4 * escape_count}")
    escapes = list(struct.unpack_from(f"<{escape_count}i", codes, offset))
    next_escape = 0
    out = np.empty((n, cal.dim), dtype=np.float32)
    for g in range(groups):
        a, b = cal.group(g)
        m = b - a
        if plan[g] is None:
            out[:, a:b] = np.float32(0)
            continue
        k, table, lengths, pos = plan[g]
        symbols = []
        for i in range(4):
            c = (substream_start[i + 1] - substream_start[i]) * m
            symbols += decode_cal_substream(codes[pos:pos + lengths[i]], c, tables.codes[table])
            pos += lengths[i]
        # Escapes in order: substream by substream, which is value order within the group.
        h = np.zeros(n * m, dtype=np.int64)
        escaped = np.zeros(n * m, dtype=bool)
        lens = tables.lengths[table]
        for v, s in enumerate(symbols):
            if s == 63:
                if next_escape >= escape_count:
                    fail("bad_encoded_data", "cal: more escape symbols than escapes")
                value = escapes[next_escape]
                next_escape += 1
                if -31 <= value <= 31 and lens[value + 31]:
                    fail("bad_encoded_data", "cal: an escape carries a value that has a code")
                if abs(value * (1 << k)) >= 1 << 29:
                    fail("bad_encoded_data", "cal: an escape value out of range")
                h[v], escaped[v] = value, True
            else:
                h[v] = s - 31
        if k == 0:
            recon = np.array(tables.recon[table] + [np.float32(0)], dtype=np.float32)
            level = np.where(escaped, h.astype(np.float32), recon[np.clip(h + 31, 0, 62)])
        else:
            raw = np.frombuffer(codes, np.uint8, ceil_div(n * m, 8) * k, pos)
            planes = raw.reshape(-1, k)                      # block b: k bytes, byte p = bit p
            bits = np.unpackbits(planes[:, :, None], axis=2, bitorder="little")  # [block, p, i]
            r = np.zeros(planes.shape[0] * 8, dtype=np.int64)
            for p_ in range(k):
                r |= bits[:, p_, :].reshape(-1).astype(np.int64) << p_
            if r[n * m:].any():
                fail("bad_encoded_data", "cal: nonzero padding bits after a group's raw bits")
            level = (h * (1 << k) + r[:n * m]).astype(np.float32)   # exact integers below 2^29
        out[:, a:b] = level.astype(np.float32).reshape(n, m)
    if next_escape != escape_count:
        fail("bad_encoded_data", "cal: fewer escape symbols than escapes")
    # x = mean + step * level: the product in f32, then the sum in f32 (zero groups: level 0).
    return (cal.mean[None, :] + (np.float32(step) * out).astype(np.float32)).astype(np.float32)


def decode_tq_ec(side, norms_bytes, codes, lossless, bits, n, dim, seed, codebooks):
    """codec: TurboQuant-EC, both modes."""
    sd = parse_ec_side_data(side, n, dim)
    if (sd["mode"] == 0) != (lossless == 1):
        fail("bad_codec_descriptor", f"EC side data mode {sd['mode']} with lossless {lossless}")
    nblocks = len(hadamard_blocks(dim))
    norms = read_f16(norms_bytes, (n, nblocks))
    means = sd["means"]
    if sd["mode"] == 1:
        b = sd["lo"]
        if b != bits:
            # Not stated by the docs; the descriptor's `bits` is "the fixed width" (see README).
            fail("bad_encoded_data", f"EC mode 1 width {b} but descriptor bits {bits}")
        if len(codes) != n * ceil_div(dim * b, 8):
            fail("bad_encoded_data", f"EC mode 1 codes of {len(codes)} bytes")
        y = decode_tq_mse(codes, norms, n, dim, b, seed, codebooks)
        return y + means[None, :]                           # x = y + mean (f32)

    check_norms(norms, "EC norm")
    levels = np.frombuffer(zstd_decompress_exact(codes, n * dim), dtype=np.uint8)
    table = sd["levels"]
    if np.any(levels >= len(table)):
        fail("bad_encoded_data", "EC level byte outside the level table")
    w = table[levels.reshape(n, dim)]                       # w_j = T[byte]
    s = signs(seed, dim)
    for k, (o, m) in enumerate(hadamard_blocks(dim)):
        block = fwht(w[:, o:o + m])
        scale = norms[:, k] / np.float32(m)                 # f32
        w[:, o:o + m] = block * scale[:, None]              # f32
    return (w * s[None, :]) + means[None, :]                # exact product, then one f32 add


# --------------------------------------------------------------------------------------------
# Tensor packets: the packet-layer checks (fmt 5.2) and decoding a frame's vectors.
# --------------------------------------------------------------------------------------------

def tensor_geometry(t):
    shape = t["shape"]
    dim = shape[t["vector_axis"]]
    return dim, element_count(shape) // dim


def expected_sections(c, t, n, dim, calibration=None):
    """fmt 5.3: [(kind, exact length or None when data-dependent)]."""
    codec, b = c["codec"], c["bits"]
    nblocks = len(hadamard_blocks(dim))
    ns = 4 if c["norm_dtype"] == 1 else 2
    if codec == RAW:
        return [(SEC_RAW, element_count(t["shape"]) * DTYPE_SIZES[t["dtype"]])]
    if codec == TQ_MSE:
        return [(SEC_CODES, n * ceil_div(dim * b, 8)), (SEC_NORMS, n * nblocks * ns)]
    if codec == TQ_PROD:
        return [(SEC_CODES, n * ceil_div(dim * (b - 1), 8)), (SEC_NORMS, n * nblocks * ns),
                (SEC_SKETCH, n * ceil_div(dim, 8)), (SEC_SKETCH_NORMS, n * nblocks * 2)]
    if codec == ABSMAX8:
        return [(SEC_CODES, n * dim), (SEC_SCALES, n * ceil_div(dim, 64) * 2)]
    if codec == ABSMAX4:
        return [(SEC_CODES, n * ceil_div(dim, 2)), (SEC_SCALES, n * ceil_div(dim, 32) * 2)]
    if codec == TQ_CAL:
        return [(SEC_SIDE_DATA, 20 + 20 * len(calibration.starts)), (SEC_CODES, None)]
    return [(SEC_SIDE_DATA, None), (SEC_NORMS, n * nblocks * 2), (SEC_CODES, None)]


def verify_tensor_packet(h, calibration=None):
    """fmt 5.2, packet layer, in its order. Returns (dim, total vectors, first vector, n).
    `calibration`: the Calibration this receiver holds (TurboQuant-Cal), or None."""
    t, c, k = h["tensor"], h["codec"], h["chunk"]
    codec = c["codec"]
    dim, total = tensor_geometry(t)                         # 1. (checked by validate_header)
    if codec in (TQ_MSE, TQ_PROD, TQ_EC):                   # 2.
        if c["rotation"] != 2 or c["block_size"] != 4096:
            fail("bad_codec_descriptor", f"rotation {c['rotation']} block_size {c['block_size']}")
        if c["codebook_id"] != 1 or c["codebook_version"] != 1:
            fail("bad_codec_descriptor", "codebook id/version")
    if codec != RAW and dim > 1 << 24:                      # 3.
        fail("bad_tensor_descriptor", f"dim {dim}")
    if codec != TQ_EC and c["lossless"] != 0:               # 4.
        fail("bad_codec_descriptor", f"lossless {c['lossless']} on codec {codec}")
    first, n = 0, total                                     # 5.
    if k is not None:
        if codec not in (TQ_MSE, TQ_PROD, TQ_CAL, ABSMAX8, ABSMAX4):
            fail("bad_codec_descriptor", f"a chunk of codec {codec}")
        first, n = k["vector_offset"], k["vector_count"]
        if n == 0 or first + n > total or k["count"] > total:
            fail("bad_tensor_descriptor", f"chunk range {first}+{n} of {total} vectors")
    if c["original_bytes"] != n * dim * DTYPE_SIZES[t["dtype"]]:  # 6.
        fail("bad_codec_descriptor", f"original_bytes {c['original_bytes']}")
    b = c["bits"]                                           # 7.
    bits_ok = {RAW: b == 0, TQ_MSE: 1 <= b <= 8, TQ_PROD: 2 <= b <= 8, ABSMAX8: b == 8,
               ABSMAX4: b == 4, TQ_EC: 1 <= b <= 8, TQ_CAL: 2 <= b <= 8}[codec]
    if not bits_ok or (codec in (TQ_MSE, TQ_PROD) and c["norm_dtype"] not in (1, 2)):
        fail("bad_codec_descriptor", f"bits {b} / norm_dtype {c['norm_dtype']} for codec {codec}")
    if codec == TQ_CAL:
        if calibration is None or calibration.id != c["calibration_id"]:
            fail("bad_codec_descriptor", f"calibration {c['calibration_id']:016x} is not held")
        if calibration.dim != dim:
            fail("bad_tensor_descriptor", f"dim {dim}, the calibration's is {calibration.dim}")
    expected = expected_sections(c, t, n, dim, calibration)  # 8.
    actual = h["sections"]
    if [s["kind"] for s in actual] != [e[0] for e in expected]:
        fail("bad_encoded_data", "the sections are not the codec's")
    for s, (kind, length) in zip(actual, expected):
        if length is not None and s["length"] != length:
            fail("bad_encoded_data", f"{SECTION_NAMES[kind]} of {s['length']} bytes, not {length}")
    return dim, total, first, n


def decode_frame_vectors(frame, codebooks, calibration=None):
    """Decode the n vectors one verified tensor frame carries: (first vector, (n, dim) f32).
    Raw frames return (None, the whole tensor in its shape)."""
    h = frame.header
    t, c = h["tensor"], h["codec"]
    dim, total, first, n = verify_tensor_packet(h, calibration)
    sec = [frame.section(i) for i in range(len(h["sections"]))]
    codec, b, seed = c["codec"], c["bits"], c["rotation_seed"]
    nblocks = len(hadamard_blocks(dim))
    if codec == RAW:
        return None, decode_raw(sec[0], t["dtype"], t["shape"])
    if codec in (TQ_MSE, TQ_PROD):
        read_norms = read_f32 if c["norm_dtype"] == 1 else read_f16
        norms = read_norms(sec[1], (n, nblocks))
        if codec == TQ_MSE:
            return first, decode_tq_mse(sec[0], norms, n, dim, b, seed, codebooks)
        sketch_norms = read_f16(sec[3], (n, nblocks))
        return first, decode_tq_prod(sec[0], norms, sec[2], sketch_norms, n, dim, b, seed, codebooks)
    if codec == ABSMAX8:
        return first, decode_block_absmax(sec[0], read_f16(sec[1], (n, ceil_div(dim, 64))),
                                          n, dim, 64, four_bit=False)
    if codec == ABSMAX4:
        return first, decode_block_absmax(sec[0], read_f16(sec[1], (n, ceil_div(dim, 32))),
                                          n, dim, 32, four_bit=True)
    if codec == TQ_CAL:
        return first, decode_tq_cal(sec[0], sec[1], n, calibration, CalTables.default())
    # TurboQuant-EC: side_data, norms, codes.
    return first, decode_tq_ec(sec[0], sec[1], sec[2], c["lossless"], b, n, dim, seed, codebooks)


def vectors_to_tensor(vectors, shape, axis):
    """Inverse of the vector numbering (fmt 4): vector v is the row-major position of the other
    axes; value j is at index j of the vector axis."""
    moved_shape = [d for i, d in enumerate(shape) if i != axis] + [shape[axis]]
    return np.ascontiguousarray(np.moveaxis(vectors.reshape(moved_shape), -1, axis))


class Packet:
    def __init__(self, frames, tensor):
        self.frames = frames   # the frames it came in (chunk order as received)
        self.tensor = tensor   # f32 ndarray in the descriptor's shape

    @property
    def header(self):
        return self.frames[0].header


def packet_identity(h):
    """What every chunk of one packet shares (fmt 6), original_bytes excepted."""
    t = dict(h["tensor"])
    t["shape"] = tuple(t["shape"])
    c = {key: value for key, value in h["codec"].items() if key != "original_bytes"}
    return (h["stream_id"], h["sequence"], tuple(sorted(t.items())), tuple(sorted(c.items())),
            h["chunk"]["count"])


def assemble_packets(frames, codebooks, calibration=None):
    """Decode the tensor packets of a list of verified frames, collecting chunks (fmt 6).
    Returns (packets, frames of other kinds). Raises PtpError on a broken chunk rule."""
    packets, others, pending = [], [], {}
    for frame in frames:
        h = frame.header
        if h["kind"] != 3:
            others.append(frame)
            continue
        t = h["tensor"]
        if h["chunk"] is None:
            first, values = decode_frame_vectors(frame, codebooks, calibration)
            if first is not None:
                values = vectors_to_tensor(values, t["shape"], t["vector_axis"])
            packets.append(Packet([frame], values))
            continue
        key = (h["stream_id"], h["sequence"])
        entry = pending.setdefault(key, {"identity": packet_identity(h), "frames": [],
                                         "indices": set(), "out": None, "covered": None})
        if packet_identity(h) != entry["identity"]:
            fail("header_invalid", "a chunk disagrees with the packet's earlier chunks")
        k = h["chunk"]
        if k["index"] in entry["indices"]:
            fail("header_invalid", f"chunk index {k['index']} twice")
        first, values = decode_frame_vectors(frame, codebooks, calibration)
        dim, total = tensor_geometry(t)
        if entry["out"] is None:
            entry["out"] = np.zeros((total, dim), dtype=np.float32)
            entry["covered"] = np.zeros(total, dtype=bool)
        if entry["covered"][first:first + len(values)].any():
            fail("header_invalid", "chunk ranges overlap")
        entry["covered"][first:first + len(values)] = True
        entry["out"][first:first + len(values)] = values
        entry["indices"].add(k["index"])
        entry["frames"].append(frame)
        if len(entry["indices"]) == k["count"]:
            if not entry["covered"].all():
                fail("header_invalid", "the chunks do not cover every vector")
            tensor = vectors_to_tensor(entry["out"], t["shape"], t["vector_axis"])
            packets.append(Packet(entry["frames"], tensor))
            del pending[key]
    if pending:
        fail("truncated", f"{len(pending)} chunked packet(s) incomplete at the end of the input")
    return packets, others


def decode_file(path, codebooks=None, limits=Limits(), calibration=None):
    """(frames, packets, other frames) of a .ptp file."""
    with open(path, "rb") as f:
        data = f.read()
    frames = parse_frames(data, limits)
    packets, others = assemble_packets(frames, codebooks or Codebooks(), calibration)
    return frames, packets, others


# --------------------------------------------------------------------------------------------
# Self-checks against the test values the docs print.
# --------------------------------------------------------------------------------------------

def self_test():
    assert xxh3_64(b"") == 0x2D06800538D394C2, "fmt conventions: XXH3_64bits(\"\")"
    w = splitmix64_words(0x5EED, 3)
    assert w == [0x09F1FD9D03F0A9B4, 0x553274161BBF8475, 0x5D5BCA4696B343B3], "codec: Signs"
    assert list(signs(0x5EED, 8)) == [1, 1, -1, 1, -1, -1, 1, -1], "codec: Signs s_0..s_7"
    assert 0x5EED ^ PROD_SKETCH_SEED_XOR == 0x51CE7C4E0000
    assert splitmix64_words(0x51CE7C4E0000, 1)[0] == 0x26E6D069F78A92F3, "codec: sketch seed"
    assert splitmix64_words(0, 1)[0] == 0xE220A8397B1DCDAF, "codec: Signs, seed 0"
    for dim, sizes in ((1280, [1024, 256]), (384, [256, 128]), (100, [64, 32, 4]),
                       (7, [4, 2, 1]), (9000, [4096, 4096, 512, 256, 32, 8])):
        assert [m for _, m in hadamard_blocks(dim)] == sizes, f"codec: Hadamard blocks of {dim}"
    lo, hi = fingerprint(b"devmodel", b"weights-digest", 2, 384, 2, 1)
    assert f"{hi:016x}{lo:016x}" == "beb057a317373a54621040913c334ec0", "fmt 7 example"


# --------------------------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------------------------

def describe_frame(frame):
    h = frame.header
    kind = KIND_NAMES[h["kind"]]
    text = (f"frame @{frame.offset} {frame.size} B: {kind} stream {h['stream_id']} "
            f"seq {h['sequence']}")
    if h["tensor"] is not None:
        t, c = h["tensor"], h["codec"]
        text += (f" tensor '{t['name'].decode()}' {DTYPE_NAMES[t['dtype']]} {list(t['shape'])}"
                 f" axis {t['vector_axis']} codec {CODEC_NAMES[c['codec']]}/{c['bits']}")
    if h["chunk"] is not None:
        k = h["chunk"]
        text += (f" chunk {k['index']}/{k['count']} vectors "
                 f"[{k['vector_offset']}, {k['vector_offset'] + k['vector_count']})")
    if h["error"] is not None:
        text += f" error {h['error']['code']} '{h['error']['message'].decode()}'"
    if h["ack"] is not None:
        text += f" ack {h['ack']['cumulative_sequence']}"
    text += f" sections {len(h['sections'])} body {h['body_length']} B"
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help=".ptp files (one or more back-to-back frames each)")
    ap.add_argument("--save-dir", help="write every decoded tensor as an f32 .npy here")
    ap.add_argument("--codebooks", help="path of docs/codebooks.md (default: next to this tree)")
    ap.add_argument("--calibration", help="the calibration file TurboQuant-Cal packets need")
    args = ap.parse_args(argv)
    self_test()
    codebooks = Codebooks(args.codebooks)
    calibration = None
    if args.calibration:
        with open(args.calibration, "rb") as f:
            calibration = Calibration(f.read())
    status = 0
    for path in args.files:
        try:
            frames, packets, _ = decode_file(path, codebooks, calibration=calibration)
        except PtpError as e:
            print(f"{path}: REFUSED: {e}")
            status = 1
            continue
        print(f"{path}: {len(frames)} frame(s) verified")
        for frame in frames:
            print("  " + describe_frame(frame))
        for i, p in enumerate(packets):
            a = p.tensor
            print(f"  packet {i}: {len(p.frames)} frame(s) -> f32 {list(a.shape)}"
                  f" min {a.min():.6g} max {a.max():.6g}")
            if args.save_dir:
                os.makedirs(args.save_dir, exist_ok=True)
                stem = os.path.basename(path)
                stem = stem[:-4] if stem.endswith(".ptp") else stem
                np.save(os.path.join(args.save_dir, f"{stem}.{i}.npy"), a.astype("<f4"))
    return status


if __name__ == "__main__":
    sys.exit(main())
