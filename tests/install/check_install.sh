#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs a small host against it:
# once with find_package(agp_ptp CONFIG) and once with pkg-config, in C++ and in C; then the C++
# split-host example (examples/cpp) against the installed package alone, run on the devmodel
# fixture when MODEL_DIR has it.
# Usage: check_install.sh BUILD_DIR [MODEL_DIR]
set -euo pipefail
build_dir=$1
model_dir=${2:-}
src_dir=$(cd "$(dirname "$0")" && pwd)
repo_dir=$(cd "$src_dir/../.." && pwd)
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
# The split-host example against the installed package (component fidelity), when installed.
if [ -f "$work/prefix/include/agp/fidelity/llama.hpp" ]; then
  cmake -S "$repo_dir/examples/cpp" -B "$work/example" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
  cmake --build "$work/example" >/dev/null
  example="$work/example/split_host"
  if [ -f "$model_dir/config.json" ]; then
    "$example" recv --model "$model_dir" --split 2 >"$work/example.recv" 2>&1 &
    recv_pid=$!
    port=""
    for _ in $(seq 300); do
      port=$(sed -n 's/^port //p' "$work/example.recv")
      [ -n "$port" ] && break
      sleep 0.05
    done
    [ -n "$port" ] || { cat "$work/example.recv"; kill "$recv_pid" 2>/dev/null; exit 1; }
    "$example" send --model "$model_dir" --split 2 --port "$port" --codec tq8 --tokens 4 --check \
      >"$work/example.send"
    wait "$recv_pid"
    grep -q "^check: 4 of 4 tokens agree" "$work/example.send" || { cat "$work/example.send"; exit 1; }
    echo "installed example ok: split host built from the package, 4 tokens agree"
  else
    "$example" 2>/dev/null || [ $? -eq 2 ]  # built; prints its usage without a model
    echo "installed example ok: split host built from the package (no model to run it on)"
  fi
fi
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
