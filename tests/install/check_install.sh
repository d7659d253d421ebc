#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs a small host against it:
# once with find_package(agp_ptp CONFIG) and once with pkg-config.
set -euo pipefail
build_dir=$1
src_dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$src_dir/consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
"$work/cmake-build/consumer"
libdir=$(cd "$work/prefix" && ls -d lib* | head -n 1)
# shellcheck disable=SC2046
PKG_CONFIG_PATH="$work/prefix/$libdir/pkgconfig" \
  ${CXX:-c++} -o "$work/pc-consumer" "$src_dir/consumer/main.cpp" \
  $(PKG_CONFIG_PATH="$work/prefix/$libdir/pkgconfig" pkg-config --cflags --libs --static agp_ptp)
"$work/pc-consumer"
