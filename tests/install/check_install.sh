#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs a small host against it:
# once with find_package(agp_ptp CONFIG) and once with pkg-config, in C++ and in C.
set -euo pipefail
build_dir=$1
src_dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$src_dir/consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
"$work/cmake-build/consumer"
"$work/cmake-build/c_consumer"
libdir=$(cd "$work/prefix" && ls -d lib* | head -n 1)
# shellcheck disable=SC2046
PKG_CONFIG_PATH="$work/prefix/$libdir/pkgconfig" \
  ${CXX:-c++} -o "$work/pc-consumer" "$src_dir/consumer/main.cpp" \
  $(PKG_CONFIG_PATH="$work/prefix/$libdir/pkgconfig" pkg-config --cflags --libs --static agp_ptp)
"$work/pc-consumer"
pc_c=$(PKG_CONFIG_PATH="$work/prefix/$libdir/pkgconfig" pkg-config --cflags --libs agp_ptp_c)
# shellcheck disable=SC2086
${CC:-cc} -std=c11 -o "$work/pc-c-consumer" "$src_dir/consumer/main.c" $pc_c \
  -Wl,-rpath,"$work/prefix/$libdir"
"$work/pc-c-consumer"
# The installed Python package, when this build has one.
pkg=$(cd "$work/prefix" && ls -d "$libdir"/python3*/site-packages/agp_ptp 2>/dev/null | head -n 1 || true)
if [ -n "$pkg" ]; then
  py=python3
  [ -x /usr/bin/python3 ] && py=/usr/bin/python3
  PYTHONPATH="$work/prefix/$(dirname "$pkg")" "$py" -c '
import numpy as np, agp_ptp
x = np.linspace(-1, 1, 4 * 128, dtype=np.float32).reshape(4, 128)
f = agp_ptp.encode(x, "tq8")
index = agp_ptp.Index(128)
index.add(x)
assert index.search(x[2], k=1)[0][0] == 2
print("python consumer ok:", len(f), "bytes,", agp_ptp.inspect(f).codec, agp_ptp.__file__)'
fi
