#!/usr/bin/env bash
# CUDA check, for a machine with an NVIDIA GPU and the CUDA toolkit (CI has none).
#
#   tools/cuda-check.sh             # with Rust: build artemis-gguf --features cuda, then run
#                                   # the tiny fixture greedy through artemis-chat with full
#                                   # offload (decoder + mmproj) and compare with the golden ids
#                                   # and with a CPU run
#   tools/cuda-check.sh --no-rust DEC.gguf MMPROJ.gguf IMAGE
#                                   # without Rust: build llama.cpp's llama-mtmd-cli from the
#                                   # vendored (patched) source with CUDA and run our GGUFs on it
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no NVIDIA GPU visible" >&2; exit 1; }

if [ "${1:-}" = "--no-rust" ]; then
  dec=$2 mm=$3 img=$4
  cli=$(tools/build-llama-tools.sh /tmp/artemis-llama-tools-cuda --cuda)
  for ngl in 0 99; do
    echo "== llama-mtmd-cli -ngl $ngl"
    "$cli" -m "$dec" --mmproj "$mm" --image "$img" -p "What shapes and colors do you see?" \
      -n 16 --temp 0 -ngl $ngl --image-min-tokens 1 --image-max-tokens 256 2>&1 | tail -12
  done
  exit 0
fi

tools/install-deps.sh
cargo build --release --features cuda
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
target/release/artemis-convert --to gguf fixtures/tiny -o "$out" --name tiny --outtype f32 --quiet >/dev/null
q=$(python3 -c 'import json;c=[x for x in json.load(open("fixtures/golden/tiny/cases.json")) if x["name"]=="img_square"][0];print(c["prompt"].split("<|vision_end|>")[1].split("<|im_end|>")[0])')
want=$(python3 -c 'import json;print([x for x in json.load(open("fixtures/golden/tiny/cases.json")) if x["name"]=="img_square"][0]["greedy_ids"])')
for mode in "cpu:-ngl 0 --no-mmproj-offload" "gpu:-ngl all"; do
  name=${mode%%:*} flags=${mode#*:}
  # shellcheck disable=SC2086
  json=$(target/release/artemis-chat "$out/tiny-f32.gguf" --mmproj "$out/mmproj-tiny-f32.gguf" \
    --image fixtures/images/square_64.png -p "$q" --temp 0 -n 16 --json $flags)
  got=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["token_ids"])' "$json")
  echo "$name: $json"
  [ "$got" = "$want" ] && echo "$name: greedy ids = official" || { echo "$name: greedy ids differ: $got vs $want"; exit 1; }
done
