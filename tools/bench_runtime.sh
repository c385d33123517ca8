#!/usr/bin/env bash
# Benchmarks of artemis-quantize and artemis-chat against llama.cpp's own tools on the
# A3-shaped synthetic checkpoint (tools/make_bench_checkpoint.py). Prints markdown tables.
#
#   tools/bench_runtime.sh [CKPT_DIR] [WORK_DIR]
#   SECTIONS=chat ROUNDS=5 DEC=model.gguf MM=mmproj.gguf tools/bench_runtime.sh   # chat only, given files
#
# Needs: target/release binaries, tools/.venv (for the checkpoint and the test image),
# llama-mtmd-cli (tools/build-llama-tools.sh) and llama-quantize (tools/build-llama-quantize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=${1:-/tmp/artemis-bench/ckpt}
work=${2:-/tmp/artemis-bench/runtime}
threads=$(nproc)
bin=target/release
sections=${SECTIONS:-quantize pipeline chat}
want() { case " $sections " in *" $1 "*) return 0;; *) return 1;; esac; }
if want quantize || want pipeline || [ -z "${DEC:-}" ]; then
  [ -d "$ckpt" ] || tools/.venv/bin/python tools/make_bench_checkpoint.py "$ckpt"
fi
# Same CPU flags as the sys crate's default build (AVX2/FMA/F16C, no -march=native).
{ want chat || want text; } && mtmd_cli=$(NATIVE=OFF tools/build-llama-tools.sh /tmp/artemis-llama-tools-nn)
want quantize && llama_quantize=$(tools/build-llama-quantize.sh)
mkdir -p "$work"
T() { /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@"; }   # wall seconds, peak RSS KiB
mib() { echo "scale=1; $1/1048576" | bc; }
# verdict ROUNDS_FILE HEADER "LABEL:NUM:DEN"...: one table row per LABEL with the median of the
# per-round ratios column NUM / column DEN of ROUNDS_FILE (min–max); zero values are skipped.
verdict() {
  python3 - "$@" <<'PY'
import statistics, sys
path, header, *specs = sys.argv[1:]
rows = [list(map(float, l.split())) for l in open(path) if l.strip()]
print(f"| {header} | median of per-round ratios (min–max) |")
print("|---|---|")
for spec in specs:
    name, num, den = spec.rsplit(":", 2)
    xs = [r[int(num)] / r[int(den)] for r in rows if r[int(den)] and r[int(num)]]
    if xs:
        print(f"| {name} | {statistics.median(xs):.3f}× ({min(xs):.3f}–{max(xs):.3f}) |")
PY
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $threads cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%F)"
echo

# --- inputs -----------------------------------------------------------------------------------
dec16="$work/bench-bf16.gguf"; mm16="$work/mmproj-bench-bf16.gguf"
if want quantize; then
  rm -f "$work"/*.gguf
  $bin/artemis-convert --to gguf "$ckpt" -o "$work" --name bench --outtype bf16 --quiet --force >/dev/null
fi
tools/.venv/bin/python - "$work/photo.png" <<'PY'
import sys, numpy as np
from PIL import Image, ImageDraw
y, x = np.mgrid[0:512, 0:512]
img = np.dstack([(x * 255 // 511), (y * 255 // 511), ((x + y) * 255 // 1022)]).astype(np.uint8)
im = Image.fromarray(img, "RGB"); d = ImageDraw.Draw(im)
d.ellipse([100, 100, 400, 380], fill=(240, 40, 40)); d.rectangle([50, 300, 200, 480], fill=(20, 20, 200))
im.save(sys.argv[1])
PY

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

if want pipeline || { { want chat || want text; } && [ -z "${DEC:-}" ]; }; then
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
# ROUNDS rounds (default 5), the two tools alternating within each round; the verdict is the
# median of the per-round ratios (ours / theirs) with min–max, so one noisy moment decides nothing.
# Generation is compared two ways: decode time only on both sides (llama.cpp's "eval time", the
# only figure llama-mtmd-cli prints), and ours as the user sees it (wall time of the whole loop:
# sampling, detokenizing, printing) against the same decode-only figure of theirs.
if want chat; then
dec=${DEC:-$work/one/bench-q4_k_m.gguf}; mm=${MM:-$work/one/mmproj-bench-q8_0.gguf}
rounds=${ROUNDS:-5}; n=${N_PREDICT:-128}
# CTX=N gives both tools the same context size. Without it each keeps its default: ours sizes the
# context to the request, llama-mtmd-cli takes the model's training context (1,024,000 cells for
# A3: an 8000 MiB KV buffer it clears, so the run after it starts on a system that just touched
# 9 GiB).
ctx_args=${CTX:+-c $CTX}
echo "## greedy $n tokens with a 512×512 image (256 image tokens), $(basename "$dec") + $(basename "$mm"), $threads threads, $rounds rounds, context ${CTX:-default per tool}"
echo "| round | tool | image encode ms | prompt tok/s | generated | gen tok/s (decode only) | gen tok/s (wall, whole loop) |"
echo "|---|---|---|---|---|---|---|"
: > "$work/rounds.txt"
run_ours() {
  $bin/artemis-chat "$dec" --mmproj "$mm" --image "$work/photo.png" -p "Describe this image." -n "$n" --temp 0 -t "$threads" $ctx_args --json \
    | python3 -c 'import json,sys
j = json.load(sys.stdin)
print("%.1f %.2f %d %.3f %.3f" % (j["encode_ms"], j["prompt_tok_per_s"], j["generated_tokens"], j["decode_tok_per_s"], j["tok_per_s"]))'
}
run_theirs() {
  # --perf -lv 4: this llama.cpp prints its timings only with perf on and info-level logs.
  # Its "prompt eval time" runs from the first prompt decode to the last, so it includes the
  # image encode that happens in between; prefill is that minus the encode.
  { "$mtmd_cli" -m "$dec" --mmproj "$mm" --image "$work/photo.png" -p "Describe this image." -n "$n" --temp 0 -t "$threads" $ctx_args \
      --image-min-tokens 1 --image-max-tokens 256 --ignore-eos --perf -lv 4 2>&1 >/dev/null || true; } | python3 -c 'import re,sys
t = sys.stdin.read()
enc = sum(int(x) for x in re.findall(r"(?:encoding done in|encoded in) (\d+) ms", t))
p = re.search(r"prompt eval time = +([\d.]+) ms / +(\d+) tokens", t)
g = re.search(r" eval time = +([\d.]+) ms / +(\d+) runs .*?([\d.]+) tokens per second", t)
pp = int(p.group(2)) / ((float(p.group(1)) - enc) / 1e3) if p and float(p.group(1)) > enc else 0
print(enc, "%.2f" % pp, g.group(2) if g else 0, g.group(3) if g else 0)'
}
for r in $(seq 1 "$rounds"); do
  # Which tool goes first alternates, so a slot that is systematically faster (page cache,
  # clocks) favours neither.
  if [ $((r % 2)) = 1 ]; then ours=$(run_ours); theirs=$(run_theirs); first=ours
  else theirs=$(run_theirs); ours=$(run_ours); first=theirs; fi
  read -r oenc opp ogen odec owall <<<"$ours"
  read -r enc pp tg_runs tg <<<"$theirs"
  echo "| $r ($first first) | artemis-chat | $oenc | $opp | $ogen | $odec | $owall |"
  echo "| $r | llama-mtmd-cli | $enc | $pp | $tg_runs decodes | $tg | — |"
  echo "$oenc $opp $odec $owall $enc $pp $tg" >> "$work/rounds.txt"
done
echo
verdict "$work/rounds.txt" "measure (ours / llama-mtmd-cli, higher is better for ours)" \
  "generation tok/s, decode only on both sides:2:6" \
  "generation tok/s, ours wall-clock vs their decode only:3:6" \
  "prompt tok/s:1:5" \
  "image encode speed (their ms / our ms):4:0"
fi

# --- text: the interactive (one token at a time) loop, no image --------------------------------
# Both tools in their interactive mode, fed one line on stdin, the same context (CTX, default
# 4096), the mmproj loaded on both sides (llama-mtmd-cli requires it) but no image.
if want text; then
dec=${DEC:-$work/one/bench-q4_k_m.gguf}; mm=${MM:-$work/one/mmproj-bench-q8_0.gguf}
rounds=${ROUNDS:-5}; n=${N_PREDICT:-128}; tctx=${CTX:-4096}
said="Describe a calm lake at sunset, with mountains behind it, in a few sentences."
echo "## interactive text chat, $n tokens, no image, $(basename "$dec"), $threads threads, context $tctx, $rounds rounds"
echo "| round | artemis-chat prompt tok/s | artemis-chat gen tok/s (decode only) | llama-mtmd-cli prompt tok/s | llama-mtmd-cli gen tok/s |"
echo "|---|---|---|---|---|"
: > "$work/rounds-text.txt"
text_ours() {
  printf '%s\n/exit\n' "$said" | $bin/artemis-chat "$dec" --mmproj "$mm" -n "$n" --temp 0 -t "$threads" -c "$tctx" 2>&1 >/dev/null \
    | python3 -c 'import re,sys
t = sys.stdin.read()
m = re.search(r"prompt \d+ tokens, ([\d.]+) tok/s \| generated (\d+) tokens, [\d.]+ tok/s \(([\d.]+) decode only\)", t)
print(m.group(1), m.group(3)) if m else print(0, 0)'
}
text_theirs() {
  { printf '%s\n/quit\n' "$said" | "$mtmd_cli" -m "$dec" --mmproj "$mm" -n "$n" --temp 0 -t "$threads" -c "$tctx" --ignore-eos --perf -lv 4 2>&1 >/dev/null || true; } \
    | python3 -c 'import re,sys
t = sys.stdin.read()
p = re.search(r"prompt eval time = +[\d.]+ ms / +\d+ tokens .*?([\d.]+) tokens per second", t)
g = re.search(r" eval time = +[\d.]+ ms / +\d+ runs .*?([\d.]+) tokens per second", t)
print(p.group(1) if p else 0, g.group(1) if g else 0)'
}
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then ours=$(text_ours); theirs=$(text_theirs)
  else theirs=$(text_theirs); ours=$(text_ours); fi
  read -r opp odec <<<"$ours"; read -r pp dec_t <<<"$theirs"
  echo "| $r | $opp | $odec | $pp | $dec_t |"
  echo "$opp $odec $pp $dec_t" >> "$work/rounds-text.txt"
done
echo
verdict "$work/rounds-text.txt" "measure (ours / llama-mtmd-cli)" \
  "interactive generation tok/s, decode only:1:3" \
  "prompt tok/s:0:2"
fi

