#!/usr/bin/env python3
"""Cost of encoding through the Python module against the C++ call, in the same run.

The seed packet ([1,1280,1,256] float16, vectors along axis 1) is encoded with each codec by
agp_ptp.Encoder.encode (returns the frame as bytes) and by the library in C++ on the same encoder:
TensorPacketWriter::write alone (the frame as a gather list) and write plus flattening into one
buffer (what agp_encode in the C API does). Rounds alternate the three so that drift on a shared
machine hits them alike; the median round of each is reported with the ratios.
Usage: bench_python.py [--out FILE] [--rounds N] [--iterations N] [--codecs tq4,tq8,raw]
"""
import argparse
import json
import statistics
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


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="write the JSON results here (default: stdout)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--iterations", type=int, default=200, help="encodes per round and method")
    p.add_argument("--codecs", default="tq4,tq8,raw")
    args = p.parse_args()
    if args.rounds < 1 or args.iterations < 1:
        p.error("--rounds and --iterations must be at least 1")

    x = np.random.default_rng(7).standard_normal((1, 1280, 1, 256)).astype(np.float16)
    rows = []
    for codec in args.codecs.split(","):
        enc = agp_ptp.Encoder(codec)
        frame_bytes = len(enc.encode(x, vector_axis=1))
        for _ in range(20):  # warm up buffers and caches
            enc.encode(x, vector_axis=1)
        py, cpp_write, cpp_flat = [], [], []
        for _ in range(args.rounds):
            py.append(python_seconds(enc, x, args.iterations))
            cpp_write.append(enc._time_cpp(x, 1, args.iterations, False))
            cpp_flat.append(enc._time_cpp(x, 1, args.iterations, True))
        med = {k: statistics.median(v) * 1e6 for k, v in
               (("python", py), ("cpp_write", cpp_write), ("cpp_write_flatten", cpp_flat))}
        rows.append({"codec": codec, "frame_bytes": frame_bytes,
                     "python_encode_us": med["python"],
                     "cpp_write_us": med["cpp_write"],
                     "cpp_write_flatten_us": med["cpp_write_flatten"],
                     "ratio_vs_cpp_write": med["python"] / med["cpp_write"],
                     "ratio_vs_cpp_write_flatten": med["python"] / med["cpp_write_flatten"]})
        print(f"bench_python: {codec}: Python {med['python']:.1f} us, C++ write "
              f"{med['cpp_write']:.1f} us ({rows[-1]['ratio_vs_cpp_write']:.2f}x)", file=sys.stderr)
    tq4 = next((r for r in rows if r["codec"] == "tq4"), None)
    doc = {"suite": "python",
           "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "command": "./dev bench python",
           "packet": "[1,1280,1,256] float16, vectors along axis 1",
           "method": "median of alternating rounds; Python: Encoder.encode returning bytes",
           "codecs": rows}
    if tq4:
        doc["goal"] = {"python_vs_cpp_write_tq4": tq4["ratio_vs_cpp_write"], "limit": 1.1,
                       "met": tq4["ratio_vs_cpp_write"] <= 1.1}
    text = json.dumps(doc, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
