#!/usr/bin/env bash
# pip install from the checkout into a fresh virtual environment, then the Python suite and the
# console scripts against the installed package (not the build tree): the README's pip line.
# Usage: check_pip_install.sh SOURCE_DIR CMAKE_BUILD_DIR PYTHON [DEVMODEL_DIR]
# CMAKE_BUILD_DIR is kept between runs, so a rebuild is incremental. Exits 77 (skipped) when the
# interpreter cannot make a virtual environment with pip (Debian: python3-venv).
set -euo pipefail
src=$1 cmake_dir=$2 py=$3 devmodel=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! "$py" -m venv --system-site-packages "$work/venv" >"$work/venv.log" 2>&1; then
  echo "skipped: $py cannot create a venv with pip (install python3-venv):"; cat "$work/venv.log"
  exit 77
fi
vpy="$work/venv/bin/python"
t0=$(date +%s)
AGP_PIP_BUILD_DIR="$cmake_dir" "$vpy" -m pip install --no-build-isolation --no-index \
  --disable-pip-version-check -q "$src"
echo "pip install took $(( $(date +%s) - t0 )) s"
cd "$work"  # away from the checkout, so that nothing imports from it
pkg=$("$vpy" -c 'import agp_ptp, os; print(os.path.dirname(agp_ptp.__file__))')
case "$pkg" in
  "$work"/venv/*) echo "installed package: ${pkg#"$work"/}" ;;
  *) echo "agp_ptp was imported from $pkg, not from the venv"; exit 1 ;;
esac
for tool in ptp-send ptp-recv ptp-inspect ptp-index; do
  "$work/venv/bin/$tool" --help >/dev/null
done
echo "console scripts ok"
AGP_C_LIBRARY="$pkg/lib/libagp_ptp_c.so" AGP_DEVMODEL_DIR="$devmodel" \
  "$vpy" -m pytest -q -p no:cacheprovider "$src/python/tests"
echo "pip package ok"
