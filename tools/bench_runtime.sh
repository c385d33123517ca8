#!/usr/bin/env bash
# Benchmarks of artemis-quantize and artemis-chat against llama.cpp's own tools on the
# A3-shaped synthetic checkpoint (tools/make_bench_checkpoint.py). Prints markdown tables.
#
#   tools/bench_runtime.sh [CKPT_DIR] [WORK_DIR]
#
# Needs: target/release binaries, tools/.venv (for the checkpoint and the test image),
# llama-mtmd-cli (tools/build-llama-tools.sh) and llama-quantize (tools/build-llama-quantize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:-/tmp/artemis-bench/ckpt}
work=${2:-/tmp/artemis-bench/runtime}
threads=$(nproc)
bin=target/release
[ -d "$ckpt" ] || tools/.venv/bin/python tools/make_bench_checkpoint.py "$ckpt"
mtmd_cli=$(tools/build-llama-tools.sh)
llama_quantize=$(tools/build-llama-quantize.sh)
mkdir -p "$work"
T() { /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@"; }   # wall seconds, peak RSS KiB
mib() { echo "scale=1; $1/1048576" | bc; }

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $threads cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%F)"
echo

# --- inputs -----------------------------------------------------------------------------------
rm -f "$work"/*.gguf
$bin/artemis-convert --to gguf "$ckpt" -o "$work" --name bench --outtype bf16 --quiet --force >/dev/null
dec16="$work/bench-bf16.gguf"; mm16="$work/mmproj-bench-bf16.gguf"
tools/.venv/bin/python - "$work/photo.png" <<'PY'
import sys, numpy as np
from PIL import Image, ImageDraw
y, x = np.mgrid[0:512, 0:512]
img = np.dstack([(x * 255 // 511), (y * 255 // 511), ((x + y) * 255 // 1022)]).astype(np.uint8)
im = Image.fromarray(img, "RGB"); d = ImageDraw.Draw(im)
d.ellipse([100, 100, 400, 380], fill=(240, 40, 40)); d.rectangle([50, 300, 200, 480], fill=(20, 20, 200))
im.save(sys.argv[1])
PY

sections=${SECTIONS:-quantize pipeline chat}
want() { case " $sections " in *" $1 "*) return 0;; *) return 1;; esac; }

# --- quantize: artemis-quantize vs llama-quantize ---------------------------------------------
if want quantize; then
echo "## quantize bench-bf16.gguf ($(mib $(stat -c %s "$dec16")) MiB) to Q4_K_M, $threads threads"
echo "| tool | wall s | peak RSS MiB | output MiB |"
echo "|---|---|---|---|"
for tool in llama artemis; do
  out="$work/q-$tool.gguf"; rm -f "$out"
  if [ $tool = llama ]; then T "$llama_quantize" "$dec16" "$out" Q4_K_M "$threads" >/dev/null 2>&1
  else T $bin/artemis-quantize --quiet "$dec16" "$out" q4_k_m "$threads" >/dev/null; fi
  read -r wall rss < "$work/time.txt"
  echo "| $tool-quantize | $wall | $((rss / 1024)) | $(mib $(stat -c %s "$out")) |"
done
cmp -s "$work/q-llama.gguf" "$work/q-artemis.gguf" && echo "(outputs byte-identical)" || echo "(outputs differ: different llama.cpp versions write different metadata)"
echo

fi

if want pipeline || want chat; then
echo "## safetensors → Q4_K_M decoder + Q8_0 mmproj: one command vs convert then quantize"
echo "| route | wall s | peak disk MiB |"
echo "|---|---|---|"
rm -rf "$work/one" "$work/two"; mkdir -p "$work/one" "$work/two"
T $bin/artemis-convert --to gguf "$ckpt" -o "$work/one" --name bench --quantize q4_k_m --mmproj-quantize q8_0 2>"$work/one.log" >/dev/null
read -r wall _ < "$work/time.txt"
peak=$(grep -o 'peak disk use [0-9.]* MiB' "$work/one.log" | grep -o '[0-9.]*')
echo "| artemis-convert --quantize | $wall | $peak |"
start=$(date +%s.%N)
$bin/artemis-convert --to gguf "$ckpt" -o "$work/two" --name bench --quiet >/dev/null
$bin/artemis-quantize --quiet "$work/two/bench-bf16.gguf" q4_k_m >/dev/null
$bin/artemis-quantize --quiet "$work/two/mmproj-bench-bf16.gguf" q8_0 >/dev/null
end=$(date +%s.%N)
echo "| convert, then quantize ×2 | $(echo "$end - $start" | bc) | $(mib $(du -sb "$work/two" | cut -f1)) |"
echo

fi

# --- chat: artemis-chat vs llama-mtmd-cli -----------------------------------------------------
if want chat; then
dec="$work/one/bench-q4_k_m.gguf"; mm="$work/one/mmproj-bench-q8_0.gguf"
echo "## greedy 128 tokens with a 512×512 image (256 image tokens), Q4_K_M decoder + Q8_0 mmproj, $threads threads"
echo "| tool | image encode ms | prompt tokens | prompt tok/s | generated | gen tok/s |"
echo "|---|---|---|---|---|---|"
for run in 1 2; do
  json=$($bin/artemis-chat "$dec" --mmproj "$mm" --image "$work/photo.png" -p "Describe this image." -n 128 --temp 0 -t "$threads" --json)
  [ $run = 2 ] && echo "$json" | python3 -c 'import json,sys
j = json.load(sys.stdin)
print("| artemis-chat | %.0f | %d | %.1f | %d | %.2f |" % (j["encode_ms"], j["prompt_tokens"], j["prompt_tok_per_s"], j["generated_tokens"], j["tok_per_s"]))' 
  log=$("$mtmd_cli" -m "$dec" --mmproj "$mm" --image "$work/photo.png" -p "Describe this image." -n 128 --temp 0 -t "$threads" \
        --image-min-tokens 1 --image-max-tokens 256 --ignore-eos 2>&1 >/dev/null || true)
  if [ $run = 2 ]; then
    enc=$(echo "$log" | grep -o 'encoded in [0-9]* ms' | grep -o '[0-9]*' | paste -sd+ | bc)
    pp=$(echo "$log" | grep 'prompt eval time' | sed -E 's/.*\/ *([0-9]+) tokens.*, *([0-9.]+) tokens per second.*/\1 \2/')
    tg=$(echo "$log" | grep -E '^\S* *eval time|llama_perf_context_print: +eval time' | tail -1 | sed -E 's/.*\/ *([0-9]+) runs.*, *([0-9.]+) tokens per second.*/\1 \2/')
    echo "| llama-mtmd-cli | ${enc:-?} | ${pp% *} | ${pp#* } | ${tg% *} | ${tg#* } |"
  fi
done
fi
