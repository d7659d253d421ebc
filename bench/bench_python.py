#!/usr/bin/env python3
"""Cost of the Python module against the C++ calls it wraps, in the same run.

1. Encode: the seed packet ([1,1280,1,256] float16, vectors along axis 1) is encoded with each
   codec by agp_ptp.Encoder.encode (returns the frame as bytes) and by the library in C++ on the
   same encoder: TensorPacketWriter::write alone (the frame as a gather list) and write plus
   flattening into one buffer (what agp_encode in the C API does, and the same output as Python's).
2. PyTorch through DLPack (when torch is installed): the seed packet as a bfloat16 and a float16
   torch tensor, encoded with tq4 the same two ways; the address the module reads is checked to be
   the tensor's own (no copy).
3. asyncio streaming: seed packets (tq4, raw) posted over loopback to a receiver in another process
   by `await link.post_async(...)` and by a C++ loop of Link::post on the same link, then flushed;
   packets per second from the first post to the last acknowledgement.
Rounds alternate the methods so that drift on a shared machine hits them alike; the median round of
each is reported with the ratios.
Usage: bench_python.py [--out FILE] [--rounds N] [--iterations N] [--codecs tq4,tq8,raw]
                       [--stream-packets N] [--stream-rounds N]
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np

import agp_ptp


def python_seconds(encoder, x, iterations):
    t0 = time.perf_counter()
    for _ in range(iterations):
        encoder.encode(x, vector_axis=1)
    return (time.perf_counter() - t0) / iterations


def python_into_seconds(encoder, x, out, iterations):
    t0 = time.perf_counter()
    for _ in range(iterations):
        encoder.encode_into(x, out, vector_axis=1)
    return (time.perf_counter() - t0) / iterations


def encode_rounds(enc, x, rounds, iterations):
    """Median microseconds of Python encode (new bytes), Python encode_into (one reused buffer),
    C++ write, C++ write + flatten into one reused buffer; the four alternate round by round."""
    out = bytearray(len(enc.encode(x, vector_axis=1)))
    for _ in range(20):  # warm up buffers and caches
        enc.encode(x, vector_axis=1)
        enc.encode_into(x, out, vector_axis=1)
    py, into, cpp_write, cpp_flat = [], [], [], []
    for _ in range(rounds):
        py.append(python_seconds(enc, x, iterations))
        into.append(python_into_seconds(enc, x, out, iterations))
        cpp_write.append(enc._time_cpp(x, 1, iterations, False))
        cpp_flat.append(enc._time_cpp(x, 1, iterations, True))
    return {k: statistics.median(v) * 1e6 for k, v in
            (("python", py), ("python_into", into), ("cpp_write", cpp_write),
             ("cpp_write_flatten", cpp_flat))}


def torch_rows(x16, rounds, iterations):
    try:
        import torch
    except ImportError:
        print("bench_python: torch is not installed: no DLPack rows", file=sys.stderr)
        return None
    rows = []
    enc = agp_ptp.Encoder("tq4")
    for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        t = torch.from_numpy(x16.astype(np.float32)).to(dtype)
        address, via_dlpack = agp_ptp._tensor_address(t)
        med = encode_rounds(enc, t, rounds, iterations)
        rows.append({"dtype": name, "codec": "tq4", "via_dlpack": via_dlpack,
                     "read_in_place": address == t.data_ptr(),
                     "python_encode_us": med["python"], "python_encode_into_us": med["python_into"],
                     "cpp_write_us": med["cpp_write"],
                     "cpp_write_flatten_us": med["cpp_write_flatten"],
                     "encode_vs_cpp_write_flatten": med["python"] / med["cpp_write_flatten"],
                     "encode_into_vs_cpp_write_flatten":
                         med["python_into"] / med["cpp_write_flatten"]})
        r = rows[-1]
        print(f"bench_python: torch {name} tq4: encode {med['python']:.1f} us "
              f"({r['encode_vs_cpp_write_flatten']:.3f}x), encode_into {med['python_into']:.1f} us "
              f"({r['encode_into_vs_cpp_write_flatten']:.3f}x) vs C++ write+flatten "
              f"{med['cpp_write_flatten']:.1f} us; read in place: {r['read_in_place']}",
              file=sys.stderr)
    return rows


# The receiver of the streaming rounds: another process, the module's blocking receive into one
# array, acknowledging each packet after decoding it.
RECEIVER = """
import sys, numpy as np, agp_ptp
server = agp_ptp.Server("127.0.0.1", 0, chunk_vectors=64)
print(server.port, flush=True)
link = server.accept(30000)
out = np.empty((1, 1280, 1, 256), np.float16)
n = 0
while True:
    try:
        link.receive(out, timeout_ms=60000)
        n += 1
    except agp_ptp.Error as e:
        if e.name == "connection_closed":
            break
        raise
print(n, flush=True)
"""


def stream_rows(x, packets, rounds):
    recv = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ))
    port = int(recv.stdout.readline())

    async def python_round(link, codec):
        t0 = time.perf_counter()
        for _ in range(packets):
            await link.post_async(x, codec, vector_axis=1)
        await link.flush_async(timeout_ms=60000)
        return time.perf_counter() - t0

    async def run():
        link = await agp_ptp.Link.connect_async("127.0.0.1", port, chunk_vectors=64)
        rows = []
        for codec in ("tq4", "raw"):
            link._stream_cpp(x, codec, 1, packets)  # warm-up
            await python_round(link, codec)
            py, cpp = [], []
            for _ in range(rounds):
                cpp.append(link._stream_cpp(x, codec, 1, packets))
                py.append(await python_round(link, codec))
            if min(cpp) < 0:
                raise RuntimeError("the C++ sender failed")
            mp, mc = statistics.median(py), statistics.median(cpp)
            quartiles = lambda v: [round(packets / q) for q in statistics.quantiles(v, n=4)][::-1]
            rows.append({"codec": codec, "packets_per_round": packets, "rounds": rounds,
                         "asyncio_packets_per_s": packets / mp, "cpp_packets_per_s": packets / mc,
                         "asyncio_quartiles_packets_per_s": quartiles(py),
                         "cpp_quartiles_packets_per_s": quartiles(cpp),
                         "ratio": mc / mp})
            print(f"bench_python: stream {codec}: asyncio {packets / mp:.0f} packets/s, C++ "
                  f"{packets / mc:.0f} ({mc / mp:.3f}x)", file=sys.stderr)
        link.close()
        return rows

    try:
        rows = asyncio.run(run())
        received = int(recv.stdout.readline())
        expected = sum(2 * (r["rounds"] + 1) * r["packets_per_round"] for r in rows)
        if received != expected:
            raise RuntimeError(f"the receiver got {received} packets of {expected}")
        return rows
    finally:
        if recv.poll() is None:
            recv.kill()
        recv.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="write the JSON results here (default: stdout)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--iterations", type=int, default=200, help="encodes per round and method")
    p.add_argument("--codecs", default="tq4,tq8,raw")
    p.add_argument("--stream-packets", type=int, default=200, help="packets per streaming round")
    p.add_argument("--stream-rounds", type=int, default=31)
    args = p.parse_args()
    if args.rounds < 1 or args.iterations < 1 or args.stream_packets < 1 or args.stream_rounds < 2:
        p.error("--rounds, --iterations and --stream-packets must be at least 1, "
                "--stream-rounds at least 2")

    x = np.random.default_rng(7).standard_normal((1, 1280, 1, 256)).astype(np.float16)
    rows = []
    for codec in args.codecs.split(","):
        enc = agp_ptp.Encoder(codec)
        frame_bytes = len(enc.encode(x, vector_axis=1))
        med = encode_rounds(enc, x, args.rounds, args.iterations)
        rows.append({"codec": codec, "frame_bytes": frame_bytes,
                     "python_encode_us": med["python"],
                     "python_encode_into_us": med["python_into"],
                     "cpp_write_us": med["cpp_write"],
                     "cpp_write_flatten_us": med["cpp_write_flatten"],
                     "ratio_vs_cpp_write": med["python"] / med["cpp_write"],
                     "ratio_vs_cpp_write_flatten": med["python"] / med["cpp_write_flatten"]})
        print(f"bench_python: {codec}: Python {med['python']:.1f} us, C++ write "
              f"{med['cpp_write']:.1f} us ({rows[-1]['ratio_vs_cpp_write']:.2f}x)", file=sys.stderr)
    dl_rows = torch_rows(x, args.rounds, args.iterations)
    stream = stream_rows(x, args.stream_packets, args.stream_rounds)
    tq4 = next((r for r in rows if r["codec"] == "tq4"), None)
    doc = {"suite": "python",
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "./dev bench python",
           "packet": "[1,1280,1,256] float16, vectors along axis 1",
           "method": "median of alternating rounds; Python: Encoder.encode returning bytes",
           "codecs": rows, "torch_dlpack": dl_rows, "asyncio_stream": stream, "goals": {}}
    if tq4:
        doc["goals"]["python_vs_cpp_write_tq4"] = {
            "value": tq4["ratio_vs_cpp_write"], "limit": 1.1,
            "met": tq4["ratio_vs_cpp_write"] <= 1.1}
    for r in dl_rows or []:
        for call in ("encode", "encode_into"):
            ratio = r[f"{call}_vs_cpp_write_flatten"]
            doc["goals"][f"torch_{r['dtype']}_{call}_vs_cpp_write_flatten"] = {
                "value": ratio, "limit": 1.05, "met": ratio <= 1.05 and r["read_in_place"]}
    for r in stream:
        doc["goals"][f"asyncio_stream_{r['codec']}_vs_cpp"] = {
            "value": r["ratio"], "limit": 0.95, "met": r["ratio"] >= 0.95}
    text = json.dumps(doc, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
