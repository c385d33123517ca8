#!/usr/bin/env bash
# Load test of artemis-serve on loopback (bounded: REQUESTS requests, 600 s at most): converts the
# `small` fixture, then runs examples/load_serve.rs ROUNDS times and prints each round.
#   tools/bench_serve.sh [REQUESTS] [CLIENTS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-1000}; clients=${2:-16}; rounds=${3:-3}
cargo build --release --bins --example load_serve >/dev/null
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
target/release/artemis-convert --to gguf fixtures/small -o "$work" --quiet >/dev/null
for r in $(seq 1 "$rounds"); do
  echo "== round $r"
  timeout 660 target/release/examples/load_serve "$work/small-bf16.gguf" "$work/mmproj-small-bf16.gguf" "$requests" "$clients"
done
