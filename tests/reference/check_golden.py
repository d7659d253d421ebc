#!/usr/bin/env python3
"""Check the golden frames of tests/golden/ with the independent reference decoder.

  1. every packet of tests/golden/codec/manifest.tsv: the frames verify, the descriptors are what
     docs/ptp_format.md section 5.1 and tests/golden/README.md say, chunks are cut as section 6
     says, and the decoded tensor equals `<stem>.decoded.npy` bit for bit (uint32 views);
  2. the frame-layer goldens tests/golden/<kind>.ptp: each verifies at the frame level, the
     heartbeat is the example of section 2, tensor_raw.ptp decodes, and the packet layer refuses
     tensor_tq4.ptp as section 10 says;
  3. corruption: every single-byte change of two small frames is refused, and in every golden
     file a byte changed in the header, in each section and in the padding is refused with the
     checksum or padding error of that region; a few "resealed" changes (checksums recomputed)
     reach the codecs' bad_encoded_data rules.

Prints one line per golden file and ends with
  reference decoder: N frames decoded bit-exactly, 0 mismatches
when everything passed (exit 0), or a line starting "reference decoder FAILED:" (exit 1). Without
NumPy, xxhash or zstandard it prints a SKIP line and exits with status 77.
"""

import os
import struct
import sys
import time

SKIP_STATUS = 77

try:
    import numpy as np
    import xxhash  # noqa: F401  (used by the decoder)
    import zstandard  # noqa: F401  (used by the decoder)
except ImportError as missing:
    print(f"SKIP: reference decoder check needs NumPy, xxhash and zstandard ({missing}); "
          "install python3-numpy python3-xxhash python3-zstandard")
    sys.exit(SKIP_STATUS)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ptp_reference_decoder as ref  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")
CODEC_GOLDEN = os.path.join(GOLDEN, "codec")


class Failures:
    def __init__(self):
        self.mismatches = 0   # decoded tensors that differ from .decoded.npy
        self.checks = 0       # any other expectation that did not hold

    def check(self, ok, what):
        if not ok:
            self.checks += 1
            print(f"  FAIL: {what}")
        return ok


def read(path):
    with open(path, "rb") as f:
        return f.read()


def same_bits(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def source_as_f32(path):
    """The source tensor in f32 (bf16 sources are stored as <u2 bit patterns: fmt 11)."""
    a = np.load(path)
    if a.dtype == np.uint16:
        return (a.astype(np.uint32) << np.uint32(16)).view(np.float32), "bf16"
    return a.astype(np.float32), {np.dtype("<f4"): "f32", np.dtype("<f2"): "f16"}[a.dtype]


# What tests/golden/README.md says about the codec goldens' tensors:
# name -> (dtype, shape, vector axis, layout value)
README_TENSORS = {
    "seed_f16": (2, [1, 1280, 1, 8], 1, 2),
    "rows_f32": (1, [4, 384], 1, 3),
    "odd_bf16": (3, [2, 3, 7], 2, 1),
    "odd_f16": (2, [3, 100], 1, 3),
    "ec_f16": (2, [1, 112, 192], 2, 1),
    "cal_f16": (2, [64, 256], 1, 3),
}

# docs/ptp_format.md section 5.1, per short codec name:
# (codec id, bits, rotation, seed, block_size, codebook id, codebook version, norm_dtype, lossless)
def table_5_1(short):
    seed = 0x5EED  # "the codec's default parameters (rotation seed 0x5eed, f16 norms ...)"
    if short == "raw":
        return (1, 0, 0, 0, 0, 0, 0, 0, 0)
    if short.startswith("tq"):
        return (2, int(short[2:]), 2, seed, 4096, 1, 1, 2, 0)
    if short.startswith("prod"):
        return (3, int(short[4:]), 2, seed, 4096, 1, 1, 2, 0)
    if short == "int8":
        return (4, 8, 0, 0, 0, 0, 0, 2, 0)
    if short == "int4":
        return (5, 4, 0, 0, 0, 0, 0, 2, 0)
    if short.startswith("cal"):
        return (7, int(short[3:]), 0, 0, 0, 0, 0, 0, 0)
    bits = int(short[2:])
    return (6, bits, 2, seed, 4096, 1, 1, 2, 1 if bits <= 6 else 0)


def descriptor_tuple(c):
    return (c["codec"], c["bits"], c["rotation"], c["rotation_seed"], c["block_size"],
            c["codebook_id"], c["codebook_version"], c["norm_dtype"], c["lossless"])


def check_common_header(frame, tensor_name, fails):
    """tests/golden/README.md: every codec golden frame's fixed header fields."""
    h = frame.header
    fails.check(h["kind"] == 3, "kind is tensor_packet")
    fails.check(h["protocol_version"] == 1, "protocol_version 1")
    fails.check(h["stream_id"] == 1 and h["sequence"] == 1, "stream_id 1, sequence 1")
    fails.check(h["timestamp_ns"] == 1_790_000_000_000_000_000, "timestamp_ns as README says")
    fails.check(h["fingerprint"] == (0x0123456789ABCDEF, 0xFEDCBA9876543210),
                "fingerprint as README says")
    fails.check(h["model_id"] == b"golden", "model_id 'golden'")
    fails.check(h["split_layer"] == -1, "split_layer -1")
    fails.check(h["tensor"]["name"] == tensor_name.encode(), "tensor.name is the tensor's name")
    fails.check(h["codec"]["lossless_level"] == 0, "lossless_level 0")


def golden_calibration():
    """tests/golden/README.md: the calibration the cal<b> packets were coded with."""
    return ref.Calibration(read(os.path.join(CODEC_GOLDEN, "golden.agpcal")))


def check_codec_goldens(codebooks, fails):
    calibration = golden_calibration()
    print(f"ok       golden.agpcal: dim {calibration.dim}, {len(calibration.starts)} groups, "
          f"id {calibration.id:016x}")
    rows = []
    for line in read(os.path.join(CODEC_GOLDEN, "manifest.tsv")).decode().splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split("\t"))
    frames_ok = 0
    whole_packets = {}  # (source, codec) -> frames of the whole packet, for the chunk checks
    for frames_file, source, short, chunk_vectors, frame_count, nbytes, decoded in rows:
        chunk_vectors, frame_count, nbytes = int(chunk_vectors), int(frame_count), int(nbytes)
        tensor_name = source[:-4]
        start = time.time()
        checks_before = fails.checks
        data = read(os.path.join(CODEC_GOLDEN, frames_file))
        try:
            frames = ref.parse_frames(data)
            packets, others = ref.assemble_packets(frames, codebooks, calibration)
        except ref.PtpError as e:
            fails.mismatches += 1
            print(f"MISMATCH {frames_file}: refused: {e}")
            continue
        fails.check(len(data) == nbytes, f"{frames_file}: {len(data)} bytes, manifest {nbytes}")
        fails.check(len(frames) == frame_count and len(packets) == 1 and not others,
                    f"{frames_file}: {len(frames)} frames / {len(packets)} packets")
        dtype, shape, axis, layout = README_TENSORS[tensor_name]
        dim = shape[axis]
        total = ref.element_count(shape) // dim
        src, src_dtype = source_as_f32(os.path.join(CODEC_GOLDEN, source))
        for frame in frames:
            h = frame.header
            check_common_header(frame, tensor_name, fails)
            t = h["tensor"]
            fails.check((t["dtype"], list(t["shape"]), t["vector_axis"], t["layout"])
                        == (dtype, shape, axis, layout), f"{frames_file}: tensor descriptor")
            fails.check(descriptor_tuple(h["codec"]) == table_5_1(short),
                        f"{frames_file}: codec descriptor {descriptor_tuple(h['codec'])} "
                        f"is not fmt 5.1's {table_5_1(short)}")
            want_id = calibration.id if short.startswith("cal") else 0
            fails.check(h["codec"]["calibration_id"] == want_id,
                        f"{frames_file}: calibration_id {h['codec']['calibration_id']:x}")
        if chunk_vectors:
            # fmt 6: the reference sender cuts ceil(vectors / c) chunks, chunk k at vector k*c.
            fails.check(frame_count == ref.ceil_div(total, chunk_vectors), "chunk count")
            for k, frame in enumerate(frames):
                c = frame.header["chunk"]
                fails.check(c is not None and c["index"] == k and c["count"] == frame_count
                            and c["vector_offset"] == k * chunk_vectors
                            and c["vector_count"] == min(chunk_vectors, total - k * chunk_vectors),
                            f"{frames_file}: chunk {k} is {c}")
        else:
            fails.check(frames[0].header["chunk"] is None, "a whole packet has no chunk field")
            whole_packets[(source, short)] = frames

        expected = np.load(os.path.join(CODEC_GOLDEN, decoded))
        got = packets[0].tensor
        fails.check(expected.dtype == np.dtype("<f4"), f"{decoded} is <f4")
        if short == "raw":
            fails.check(same_bits(got, src), f"{frames_file}: raw packet differs from its source")
        elapsed = time.time() - start
        if same_bits(got, expected):
            frames_ok += len(frames)
            status = "ok      " if fails.checks == checks_before else "CHECKS  "
            print(f"{status} {frames_file}: {len(frames)} frame(s), {short}, {src_dtype} "
                  f"{list(shape)}: {got.size} values bit-exact ({elapsed:.2f} s)")
        else:
            fails.mismatches += 1
            diff = int(np.sum(got.view(np.uint32) != expected.view(np.uint32))) \
                if got.shape == expected.shape else "shape"
            print(f"MISMATCH {frames_file}: {diff} of {expected.size} values differ")

    # fmt 6: a chunk's sections are the whole packet's bytes of its vectors.
    for frames_file, source, short, chunk_vectors, *_ in rows:
        # TurboQuant-Cal chunks are coded on their own (fmt 6): not slices of the whole packet.
        if int(chunk_vectors) == 0 or (source, short) not in whole_packets or short.startswith("cal"):
            continue
        whole = whole_packets[(source, short)][0]
        frames = ref.parse_frames(read(os.path.join(CODEC_GOLDEN, frames_file)))
        same = True
        for frame in frames:
            c = frame.header["chunk"]
            n_total = ref.tensor_geometry(whole.header["tensor"])[1]
            for i, s in enumerate(frame.header["sections"]):
                w = whole.section(i)
                per_vector = len(w) // n_total
                part = w[c["vector_offset"] * per_vector:
                         (c["vector_offset"] + c["vector_count"]) * per_vector]
                same &= part == frame.section(i)
        fails.check(same, f"{frames_file}: chunk sections are not slices of the whole packet's")
        print(f"ok       {frames_file}: every chunk section is the slice of "
              f"{source[:-4]}.{short}.ptp for its vectors")
    return frames_ok


def check_frame_layer_goldens(codebooks, fails):
    verified = 0
    for kind in ("hello", "hello_reply", "ack", "heartbeat", "error", "bye",
                 "tensor_raw", "tensor_tq4"):
        name = f"{kind}.ptp"
        data = read(os.path.join(GOLDEN, name))
        try:
            frames = ref.parse_frames(data)
        except ref.PtpError as e:
            fails.check(False, f"{name}: refused at the frame layer: {e}")
            continue
        verified += len(frames)
        h = frames[0].header
        expected_kind = "tensor_packet" if kind.startswith("tensor") else kind
        fails.check(len(frames) == 1 and ref.KIND_NAMES[h["kind"]] == expected_kind,
                    f"{name}: one {expected_kind} frame")
        note = ""
        if kind == "heartbeat":  # fmt 2, the example
            fails.check(len(data) == 128 and struct.unpack_from("<I", data, 8)[0] == 104
                        and struct.unpack_from("<Q", data, 16)[0] == 0x9ECF5121EEE4F462
                        and struct.unpack_from("<I", data, 24)[0] == 0x30,
                        "heartbeat.ptp is not the example of fmt section 2")
            note = ": the example of fmt section 2"
        if kind == "tensor_raw":
            packets, _ = ref.assemble_packets(frames, codebooks)
            t = h["tensor"]
            fails.check(t["dtype"] == 2 and list(t["shape"]) == [1, 3, 7],
                        "tensor_raw.ptp is [1,3,7] f16")
            fails.check(len(packets) == 1 and packets[0].tensor.shape == (1, 3, 7),
                        "tensor_raw.ptp decodes to [1,3,7]")
            note = ": decoded (patterned bytes, no reference output)"
        if kind == "tensor_tq4":
            t, c = h["tensor"], h["codec"]
            fails.check(t["dtype"] == 2 and list(t["shape"]) == [1, 1280, 1, 256]
                        and c["codec"] == 2 and c["block_size"] == 256
                        and h["sections"][1]["length"] == 512,
                        "tensor_tq4.ptp has the descriptor README describes")
            try:
                ref.assemble_packets(frames, codebooks)
                fails.check(False, "tensor_tq4.ptp: the packet layer should refuse it")
            except ref.PtpError as e:
                fails.check(e.name == "bad_codec_descriptor",
                            f"tensor_tq4.ptp refused with {e.name}, not bad_codec_descriptor")
                note = f": packet layer refuses it as documented ({e.name})"
        print(f"ok       {name}: {expected_kind} frame verified{note}")
    return verified


# --- corruption ------------------------------------------------------------------------------

CHECKSUM_OR_PADDING = {"header_checksum_mismatch", "section_checksum_mismatch",
                       "non_zero_padding"}


def refusal(data, codebooks, decode=False):
    """The error name parsing (and optionally decoding) `data` raises, or None."""
    try:
        frames = ref.parse_frames(data)
        if decode:
            ref.assemble_packets(frames, codebooks, golden_calibration())
    except ref.PtpError as e:
        return e.name
    return None


def regions(data):
    """(position, region name, error expected when that byte changes) for representative bytes
    of every frame of `data`: the header region, each section, each padding run."""
    out = []
    for frame in ref.parse_frames(data):
        header_length = struct.unpack_from("<I", data, frame.offset + 8)[0]
        header_start = frame.offset + ref.PREFIX_SIZE
        out.append((frame.offset + 16, "header checksum", "header_checksum_mismatch"))
        out.append((header_start + header_length // 2, "header", "header_checksum_mismatch"))
        out.append((header_start + header_length - 1, "header padding",
                    "header_checksum_mismatch"))
        body_start = header_start + header_length
        end = 0
        for i, s in enumerate(frame.header["sections"]):
            if s["offset"] > end:
                out.append((body_start + end, f"padding before section {i}", "non_zero_padding"))
            if s["length"]:
                out.append((body_start + s["offset"] + s["length"] // 2, f"section {i}",
                            "section_checksum_mismatch"))
            end = s["offset"] + s["length"]
        if frame.header["body_length"] > end:
            out.append((body_start + frame.header["body_length"] - 1, "final padding",
                        "non_zero_padding"))
    return out


def reseal(data, frame, section_index, new_section):
    """Replace one section's bytes (same length) and recompute its checksum and the header's."""
    out = bytearray(data)
    h = frame.header
    header_length = struct.unpack_from("<I", data, frame.offset + 8)[0]
    header_start = frame.offset + ref.PREFIX_SIZE
    body_start = header_start + header_length
    s = h["sections"][section_index]
    assert len(new_section) == s["length"]
    out[body_start + s["offset"]:body_start + s["offset"] + s["length"]] = new_section
    entry = header_start + h["section_table_at"] + 32 * section_index
    struct.pack_into("<Q", out, entry + 16, ref.xxh3_64(new_section))
    region = bytes(out[header_start:header_start + header_length])
    struct.pack_into("<Q", out, frame.offset + 16,
                     ref.xxh3_64(bytes(out[frame.offset:frame.offset + 16]) + region))
    return bytes(out)


def check_corruption(codebooks, fails):
    tried = 0
    # Every byte of two small frames, one at a time: each change must be refused; from byte 16
    # on (everything after the fields the prefix rules check first) with the checksum or
    # padding error of the region.
    for path in (os.path.join(GOLDEN, "heartbeat.ptp"),
                 os.path.join(CODEC_GOLDEN, "odd_bf16.tq3.ptp")):
        data = read(path)
        bad = []
        for pos in range(len(data)):
            corrupted = bytearray(data)
            corrupted[pos] ^= 0x5A
            name = refusal(bytes(corrupted), codebooks)
            tried += 1
            if name is None or (pos >= 16 and name not in CHECKSUM_OR_PADDING):
                bad.append((pos, name))
        fails.check(not bad, f"{os.path.basename(path)}: changes not refused as expected: {bad[:8]}")
        print(f"ok       {os.path.basename(path)}: each of its {len(data)} bytes changed "
              "alone is refused")

    # A byte in every region of every golden file.
    files = sorted(os.path.join(GOLDEN, f) for f in os.listdir(GOLDEN) if f.endswith(".ptp"))
    files += sorted(os.path.join(CODEC_GOLDEN, f) for f in os.listdir(CODEC_GOLDEN)
                    if f.endswith(".ptp"))
    for path in files:
        data = read(path)
        for pos, region, expected in regions(data):
            corrupted = bytearray(data)
            corrupted[pos] ^= 0x01
            name = refusal(bytes(corrupted), codebooks)
            tried += 1
            fails.check(name == expected,
                        f"{os.path.basename(path)}: byte {pos} ({region}) changed: {name}, "
                        f"expected {expected}")
    print(f"ok       a byte of every header, section and padding of {len(files)} golden files "
          "changed: each refused with its region's checksum or padding error")

    # Resealed changes (checksums recomputed, so the frame verifies): the codecs' rules.
    def resealed(file_name, section_index, edit, expected, what):
        data = read(os.path.join(CODEC_GOLDEN, file_name))
        frame = ref.parse_frames(data)[0]
        section = bytearray(frame.section(section_index))
        edit(section)
        changed = reseal(data, frame, section_index, bytes(section))
        fails.check(refusal(changed, codebooks) is None, f"{file_name}: resealed frame verifies")
        name = refusal(changed, codebooks, decode=True)
        fails.check(name == expected, f"{file_name}, {what}: {name}, expected {expected}")
        print(f"ok       {file_name} resealed with {what}: {name}")

    def set_f16(value, index):
        def edit(section):
            struct.pack_into("<e", section, 2 * index, value)
        return edit

    def flip_zstd(section):
        section[len(section) // 2] ^= 0xFF

    def ec_bad_step(section):
        struct.pack_into("<f", section, 20, -1.0)

    resealed("seed_f16.tq4.ptp", 1, set_f16(-1.0, 3), "bad_encoded_data", "a norm of -1")
    resealed("rows_f32.int8.ptp", 1, set_f16(float("nan"), 0), "bad_encoded_data", "a NaN scale")
    resealed("odd_f16.prod4.ptp", 3, set_f16(float("inf"), 1), "bad_encoded_data",
             "an infinite sketch norm")
    resealed("ec_f16.ec3.ptp", 2, flip_zstd, "bad_encoded_data", "a corrupt zstd frame")
    resealed("ec_f16.ec3.ptp", 0, ec_bad_step, "bad_encoded_data", "a negative EC step")

    def cal_escape_with_a_code(section):
        struct.pack_into("<i", section, len(section) - 4, 0)  # the last escape: h = 0

    def cal_nan_step(section):
        struct.pack_into("<f", section, 0, float("nan"))

    def cal_zero_group_coded(section):
        groups = (len(section) - 20) // 20
        section[20 + 20 * (groups - 1)] = 1  # the last group (sent as zero) marked coded

    resealed("cal_f16.cal4.ptp", 1, cal_escape_with_a_code, "bad_encoded_data",
             "a calibrated escape that has a code")
    resealed("cal_f16.cal4.ptp", 0, cal_nan_step, "bad_encoded_data", "a NaN calibrated step")
    resealed("cal_f16.cal4.ptp", 0, cal_zero_group_coded, "bad_encoded_data",
             "a zero group marked coded")
    return tried


def main():
    start = time.time()
    ref.self_test()
    print("ok       the docs' test values: XXH3-64(''), splitmix64 words and signs, "
          "Hadamard blocks, the fingerprint example")
    codebooks = ref.Codebooks(os.path.join(ROOT, "docs", "codebooks.md"))
    print(f"ok       docs/codebooks.md: {len(codebooks.tables)} tables, hex and decimal agree")
    fails = Failures()
    frames_ok = check_codec_goldens(codebooks, fails)
    verified = check_frame_layer_goldens(codebooks, fails)
    tried = check_corruption(codebooks, fails)
    print(f"frame layer: {verified} frame-layer golden frames verified; {tried} corrupted "
          f"frames tried ({time.time() - start:.1f} s)")
    if fails.mismatches or fails.checks:
        print(f"reference decoder FAILED: {frames_ok} frames decoded bit-exactly, "
              f"{fails.mismatches} mismatches, {fails.checks} failed checks")
        return 1
    print(f"reference decoder: {frames_ok} frames decoded bit-exactly, 0 mismatches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
