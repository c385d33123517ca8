#!/usr/bin/env bash
# The main job on the bundled `small` checkpoint: build, convert (decoder + mmproj), quantize
# (q4_k_m decoder, q8_0 mmproj), then ask the model about a bundled image.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cargo build --release
bin=target/release
out=out/demo
rm -rf "$out" && mkdir -p "$out"
echo "== convert (bf16, verified)"
$bin/artemis-convert --to gguf fixtures/small -o "$out" --name small --verify
echo "== quantize"
$bin/artemis-quantize "$out/small-bf16.gguf" q4_k_m
$bin/artemis-quantize "$out/mmproj-small-bf16.gguf" q8_0
echo "== chat (the fixture has random weights: expect fluent nonsense, not a caption)"
$bin/artemis-chat "$out/small-q4_k_m.gguf" --mmproj "$out/mmproj-small-q8_0.gguf" \
  --image fixtures/images/square_64.png -p "What shapes and colors do you see?" -n 32 --temp 0
