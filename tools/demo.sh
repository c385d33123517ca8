#!/usr/bin/env bash
# The main job on the bundled `small` checkpoint: build, convert (decoder + mmproj), verify.
# Grows with the project: quantize and chat run here once they exist.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cargo build --release
out=out/demo
rm -rf "$out" && mkdir -p "$out"
target/release/artemis-convert --to gguf fixtures/small -o "$out" --name small --outtype f16 --verify
