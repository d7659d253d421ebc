#!/usr/bin/env bash
# The example split hosts on loopback with the devmodel fixture: C++ to C++ (checked against the
# uncompressed model), then Python receiving from C++ and C++ receiving from Python, which must
# generate the same text. Exits 77 (skipped) without the fixture.
# Usage: run_split_hosts.sh SPLIT_HOST_BINARY PYTHON_EXAMPLE PYTHON MODEL_DIR
set -euo pipefail
cpp=$1 py_host=$2 python=$3 model=$4
if [ ! -f "$model/config.json" ]; then
  echo "examples skipped: no model at $model (the devmodel fixture)"
  exit 77
fi
work=$(mktemp -d)
recv_pid=""
cleanup() {
  [ -n "$recv_pid" ] && kill "$recv_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
prompt=$'#include <stdio.h>\n#include <'
limit=()
command -v timeout >/dev/null && limit=(timeout 300)  # GNU coreutils; macOS may not have it
tokens=24

# run NAME RECEIVER... -- SENDER...: starts the receiver, reads its port, runs the sender on it.
run() {
  local name=$1; shift
  local recv=() send=()
  while [ "$1" != "--" ]; do recv+=("$1"); shift; done
  shift
  send=("$@")
  "${recv[@]}" recv --model "$model" --split 2 >"$work/$name.recv" 2>&1 &
  recv_pid=$!
  local port="" i
  for i in $(seq 300); do
    port=$(sed -n 's/^port //p' "$work/$name.recv")
    [ -n "$port" ] && break
    kill -0 "$recv_pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$port" ] || { cat "$work/$name.recv"; echo "$name: the receiver did not start"; exit 1; }
  ${limit[@]+"${limit[@]}"} "${send[@]}" send --model "$model" --split 2 --port "$port" --codec tq8 \
    --tokens "$tokens" --prompt "$prompt" "${extra[@]}" >"$work/$name.send"
  wait "$recv_pid"  # it ends by itself once the sender has closed the link
  recv_pid=""
  grep -q "^served $tokens steps" "$work/$name.recv" || { cat "$work/$name.recv"; exit 1; }
  echo "--- $name"
  cat "$work/$name.send"
}

extra=(--check)
run cpp-to-cpp "$cpp" -- "$cpp"
grep -q "^check: $tokens of $tokens tokens agree" "$work/cpp-to-cpp.send" ||
  { echo "cpp-to-cpp: 8-bit split generation differs from the uncompressed model"; exit 1; }
extra=()
run cpp-to-python "$python" "$py_host" -- "$cpp"
run python-to-cpp "$cpp" -- "$python" "$py_host"
# The generated text: from "generated:" up to the summary line.
generated() { sed -n "/^generated:/,/^$tokens tokens, codec/p" "$work/$1.send" | sed '$d'; }
ref=$(generated cpp-to-cpp)
for pair in cpp-to-python python-to-cpp; do
  got=$(generated "$pair")
  [ "$got" = "$ref" ] || { echo "$pair generated other text than cpp-to-cpp"; exit 1; }
done
echo "examples ok: C++ and Python split hosts generate the same $tokens tokens in every pairing"
