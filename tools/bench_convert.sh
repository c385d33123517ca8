#!/usr/bin/env bash
# Benchmark artemis-convert against llama.cpp's convert_hf_to_gguf.py and plain cp.
#
#   tools/bench_convert.sh [CKPT_DIR]
#
# CKPT_DIR defaults to $BENCH_DIR/ckpt (BENCH_DIR defaults to /tmp/artemis-bench,
# never inside the repository).  If it is missing, tools/make_bench_checkpoint.py
# builds an A3-shaped synthetic checkpoint there (real widths, 2 decoder layers)
# plus its standalone Mistral decoder ($BENCH_DIR/standalone-decoder), which is
# what convert_hf_to_gguf.py reads.  For a CKPT_DIR you pass yourself, the
# standalone decoder is derived from it (make_bench_checkpoint.py
# --standalone-from) into $BENCH_DIR/standalone-<name> unless it exists.
#
# Timed (each: one untimed warm-up run, then REPEATS (default 1) measured runs
# with /usr/bin/time -v; the page cache cannot be dropped here, so inputs are warm):
#   artemis-convert --only decoder --outtype bf16 | f16 | q8_0
#   artemis-convert (decoder + mmproj) --outtype bf16
#   convert_hf_to_gguf.py STANDALONE --outtype bf16 | f16 | q8_0
#   cp of the standalone decoder's shards (exactly the decoder's tensor bytes)
#   artemis-convert on fixtures/small (peak RSS of a tiny conversion)
# Before each timed run the script runs `sync` and waits until no compiler
# (cargo, rustc, cc1, cc1plus, ld, clang) is running and the machine has been
# nearly idle for 6 s; a measured run during which other processes used
# noticeable CPU is repeated (up to 3 attempts; see run_case).  Then, in
# separate untimed runs, it samples peak private (RssAnon) vs file-backed
# (RssFile) memory, and compares the two converters' decoder GGUFs tensor by
# tensor and key by key.
#
# Environment:
#   BENCH_DIR       work dir (default /tmp/artemis-bench)
#   LLAMA_CPP_DIR   llama.cpp tree with convert_hf_to_gguf.py + gguf-py
#                   (default: the one vendored in the llama-cpp-python sdist,
#                   unpacked under /tmp/llamacpp-src; see SETUP below)
#   HF_PY           python for convert_hf_to_gguf.py (default /tmp/hfconv-venv/bin/python)
#   RESULTS         markdown output (default /tmp/bench_convert_results.md)
#   SKIP_Q8=1       skip the q8_0 rows
#   REPEATS         measured runs per row after the warm-up (default 1); the
#                   table reports the median wall time and the min–max range
#   IDLE_BUSY       machine-wide busy fraction (of all CPUs, over 2 s samples)
#                   below which a run may start (default 0.15)
#   MAX_WAIT        seconds to wait for an idle machine before running anyway (default 3600)
#
# SETUP of the Python converter (PyPI only, nothing from the HF hub):
#   mkdir -p /tmp/llamacpp-src && cd /tmp/llamacpp-src
#   tools/.venv/bin/pip download --no-deps --no-binary :all: llama-cpp-python -d .
#   tar xzf llama_cpp_python-*.tar.gz     # vendor/llama.cpp has convert_hf_to_gguf.py, gguf-py
#   tools/.venv/bin/python -m venv /tmp/hfconv-venv
#   echo "$PWD/tools/.venv/lib/python3.11/site-packages" \
#     > /tmp/hfconv-venv/lib/python3.11/site-packages/zz-tools-venv.pth   # reuse torch/transformers
#   /tmp/hfconv-venv/bin/pip install sentencepiece   # imported unconditionally by the Llama vocab path
#
# Pre-tokenizer workaround: convert_hf_to_gguf.py identifies a BPE pre-tokenizer
# by hashing the token ids of a fixed text; the fixtures' 768-token Tekken-regex
# tokenizer has no registered hash, so it raises NotImplementedError.  The
# wrapper below replaces TextModel.get_vocab_base_pre with `return "tekken"`
# (what Mistral-Nemo's real tokenizer hashes to) and then runs the unmodified
# script; the skipped work is one encode of a short string.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH_DIR:-/tmp/artemis-bench}
CONVERT=$REPO/target/release/artemis-convert
PY=$REPO/tools/.venv/bin/python
HF_PY=${HF_PY:-/tmp/hfconv-venv/bin/python}
RESULTS=${RESULTS:-/tmp/bench_convert_results.md}
if [[ -z "${LLAMA_CPP_DIR:-}" ]]; then
    LLAMA_CPP_DIR=$(ls -d /tmp/llamacpp-src/llama_cpp_python-*/vendor/llama.cpp 2>/dev/null | sort -V | tail -1 || true)
fi
export LLAMA_CPP_DIR

inside_repo() { case "$(realpath -m "$1")/" in "$REPO"/*) return 0 ;; *) return 1 ;; esac; }
die() { echo "bench_convert.sh: $*" >&2; exit 1; }

inside_repo "$BENCH" && die "BENCH_DIR ($BENCH) must be outside the repository"
[[ -x $CONVERT ]] || die "$CONVERT not built (this script never builds it)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing: apt-get install time"
[[ -n $LLAMA_CPP_DIR && -f $LLAMA_CPP_DIR/convert_hf_to_gguf.py ]] || die "LLAMA_CPP_DIR not found (see SETUP in this script)"
[[ -x $HF_PY ]] || die "HF_PY ($HF_PY) missing (see SETUP in this script)"

mkdir -p "$BENCH"
if [[ $# -ge 1 ]]; then
    CKPT=$(realpath "$1")
    STANDALONE=$BENCH/standalone-$(basename "$CKPT")
    [[ -f $CKPT/config.json ]] || die "$CKPT: no config.json"
    if [[ ! -f $STANDALONE/model.safetensors.index.json ]]; then
        inside_repo "$STANDALONE" && die "refusing to write inside the repository"
        "$PY" "$REPO/tools/make_bench_checkpoint.py" "$STANDALONE" --standalone-from "$CKPT" --force
    fi
else
    CKPT=$BENCH/ckpt
    STANDALONE=$BENCH/standalone-decoder
    if [[ ! -f $CKPT/model.safetensors.index.json || ! -f $STANDALONE/model.safetensors.index.json ]]; then
        "$PY" "$REPO/tools/make_bench_checkpoint.py" "$CKPT" --also-standalone-decoder "$STANDALONE" --force
    fi
fi
OUT=$BENCH/out
LOGS=$BENCH/logs
BIN_SHA_START=$(sha256sum "$CONVERT" | cut -c1-16)
rm -rf "$OUT" "$LOGS"
mkdir -p "$OUT" "$LOGS"

# --- helpers -----------------------------------------------------------------

cat > "$BENCH/hf_convert_wrapper.py" <<'EOF'
# Runs llama.cpp's convert_hf_to_gguf.py unmodified, except that the BPE
# pre-tokenizer detection (a hash over the token ids of a fixed text, unknown
# for the fixtures' tiny tokenizer) is replaced by the answer for Mistral-Nemo's
# Tekken tokenizer.
import os, runpy, sys
llama = os.environ["LLAMA_CPP_DIR"]
sys.path.insert(0, llama)
sys.path.insert(1, os.path.join(llama, "gguf-py"))
import conversion.base as base  # noqa: E402
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "tekken"
script = os.path.join(llama, "convert_hf_to_gguf.py")
sys.argv = [script] + sys.argv[1:]
runpy.run_path(script, run_name="__main__")
EOF

IDLE_BUSY=${IDLE_BUSY:-0.15}
MAX_WAIT=${MAX_WAIT:-3600}
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
COMPILERS=${BENCH_COMPILERS:-'cargo|rustc|cc1|cc1plus|ld|ld\.lld|ld\.gold|clang|clang\+\+'}
compiler_running() { ps -eo comm= | grep -Ex "$COMPILERS" >/dev/null; }
# Busy CPU ticks of the whole machine (all CPUs), from /proc/stat.
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }

# Wait until no compiler runs and the machine has been (nearly) idle for 6 s:
# three consecutive 2 s samples with busy time below IDLE_BUSY of all CPUs.
wait_idle() {
    local waited=0 quiet=0 b0 b1 frac
    while :; do
        b0=$(busy_ticks); sleep 2; b1=$(busy_ticks)
        waited=$((waited + 2))
        frac=$(awk -v d=$((b1 - b0)) -v t="$CLK_TCK" -v n="$NCPU" 'BEGIN{printf "%.2f", d/t/2/n}')
        if ! compiler_running && awk -v f="$frac" -v m="$IDLE_BUSY" 'BEGIN{exit !(f < m)}'; then
            quiet=$((quiet + 1))
        else
            quiet=0
        fi
        [[ $quiet -ge 3 ]] && break
        if [[ $waited -ge $MAX_WAIT ]]; then
            echo "  (gave up waiting for an idle machine after ${waited}s)" >&2
            break
        fi
        if [[ $((waited % 60)) -eq 0 ]]; then
            echo "  waiting for an idle machine (busy $frac of $NCPU CPUs, load $(cut -d' ' -f1 /proc/loadavg)$(compiler_running && echo ', compiler running' || true))" >&2
        fi
    done
}

# run_case ID TOOL OUTTYPE OUTPUT_PATHS(space-separated) -- CMD...
# One untimed warm-up run, then REPEATS measured runs; OUTPUT_PATHS are removed
# before each run and sized after the last.  "other CPU s" = busy CPU time of
# the whole machine during a measured run minus the command's own user+sys time
# (from time -v): CPU that something else used meanwhile.  Above 0.3 s + 5% of
# the wall time, or with a compiler running when it ends, that measurement is
# repeated (3 attempts at most; the last is kept and marked).
REPEATS=${REPEATS:-1}
ROWS=()
run_case() {
    local id=$1 tool=$2 outtype=$3 outputs=$4
    shift 5
    local rep attempt contended other load_before t0 t1 b0 b1 wall log
    local walls=() syncs=() rsss=() others=() cpus=() loads=() notes=()
    echo "== $id: $*" >&2
    # shellcheck disable=SC2086
    rm -rf $outputs
    "$@" >"$LOGS/$id.warmup.out" 2>&1 || { cat "$LOGS/$id.warmup.out" >&2; die "$id: warm-up failed"; }
    for ((rep = 1; rep <= REPEATS; rep++)); do
        log=$LOGS/$id.$rep.time
        for attempt in 1 2 3; do
            # shellcheck disable=SC2086
            rm -rf $outputs
            sync
            wait_idle
            load_before=$(cut -d' ' -f1 /proc/loadavg)
            b0=$(busy_ticks)
            /usr/bin/time -v -o "$log" "$@" >"$LOGS/$id.$rep.out" 2>&1 || { cat "$LOGS/$id.$rep.out" >&2; die "$id failed"; }
            b1=$(busy_ticks)
            if compiler_running; then contended=compiler; else contended=no; fi
            t0=$(date +%s.%N)
            sync
            t1=$(date +%s.%N)
            other=$(awk -F': ' -v d=$((b1 - b0)) -v t="$CLK_TCK" '
                /User time \(seconds\)|System time \(seconds\)/{own += $2}
                END{o = d/t - own; if (o < 0) o = 0; printf "%.2f", o}' "$log")
            wall=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$log")
            if [[ $contended == no ]] && awk -v o="$other" -v w="$wall" 'BEGIN{exit !(o > 0.3 + 0.05*w)}'; then
                contended=other-cpu
            fi
            [[ $contended == no ]] && break
            echo "  contended ($contended, other CPU ${other}s over ${wall}s wall); repeating" >&2
        done
        walls+=("$wall")
        syncs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')")
        rsss+=("$(awk -F': ' '/Maximum resident set size/{printf "%.0f", $2/1024}' "$log")")
        cpus+=("$(awk -F': ' '/Percent of CPU/{sub("%", "", $2); print $2}' "$log")")
        others+=("$other")
        loads+=("$load_before")
        if [[ $attempt -gt 1 ]]; then
            notes+=("run $rep: attempt $attempt$([[ $contended != no ]] && echo " (still $contended)" || true)")
        fi
        echo "   run $rep: wall ${wall}s (+sync ${syncs[-1]}s), peak RSS ${rsss[-1]} MiB, other CPU ${other}s" >&2
    done
    local bytes
    # shellcheck disable=SC2086
    bytes=$(du -cb $outputs | tail -1 | cut -f1)
    # median / min / max over the repeats
    local stats
    stats=$(paste -d' ' <(printf '%s\n' "${walls[@]}") <(printf '%s\n' "${syncs[@]}") | awk -v b="$bytes" '
        { w[NR] = $1; ws[NR] = $1 + $2 }
        function med(a, n,   i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        function rate(x) { return x > 0 ? sprintf("%.0f", b / 1e6 / x) : "n/a" }
        END {
            n = NR; lo = w[1]; hi = w[1]
            for (i = 1; i <= n; i++) { if (w[i] < lo) lo = w[i]; if (w[i] > hi) hi = w[i] }
            mw = med(w, n); ms = med(ws, n)
            printf "%.2f|%s|%.2f|%s|%.2f–%.2f", mw, rate(mw), ms, rate(ms), lo, hi
        }')
    local mw mbs ms mbs_sync range
    IFS='|' read -r mw mbs ms mbs_sync range <<<"$stats"
    [[ $REPEATS -eq 1 ]] && range="–"
    local max_rss max_other cpu_med load_list
    max_rss=$(printf '%s\n' "${rsss[@]}" | sort -n | tail -1)
    max_other=$(printf '%s\n' "${others[@]}" | sort -g | tail -1)
    cpu_med=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)] "%"}')
    load_list=$(IFS=/; echo "${loads[*]}")
    local note=""
    [[ ${#notes[@]} -gt 0 ]] && note=$(printf '%s; ' "${notes[@]}") && note=${note%; }
    ROWS+=("| $tool | $outtype | $mw | $range | $mbs | $ms | $mbs_sync | $max_rss | $cpu_med | $(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1048576}') | $load_list | $max_other | ${note:-–} |")
    echo "   median wall ${mw}s (${range}), ${bytes} bytes out" >&2
}

# Peak memory split (a separate, untimed run): /proc/PID/status of the command
# and its descendants sampled every 20 ms; peaks of RssAnon (private memory)
# and of RssFile (file-backed pages: mostly the mmap'd inputs, which the kernel
# can reclaim).  time -v's "peak RSS" counts both.
cat > "$BENCH/mem_peak.py" <<'EOF'
import os, subprocess, sys, time
def children():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids
def sample(root):
    kids, todo, anon, filek = children(), [root], 0, 0
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"): anon += int(line.split()[1])
                    elif line.startswith("RssFile:"): filek += int(line.split()[1])
        except OSError:
            pass
    return anon, filek
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
pa = pf = pt = 0
while p.poll() is None:
    a, f = sample(p.pid)
    pa, pf, pt = max(pa, a), max(pf, f), max(pt, a + f)
    time.sleep(0.02)
if p.returncode:
    sys.exit(f"command failed: {p.returncode}")
print(f"{pa / 1024:.0f} {pf / 1024:.0f} {pt / 1024:.0f}")
EOF
MEMROWS=()
# mem_case TOOL OUTTYPE OUTPUT_PATHS -- CMD...
mem_case() {
    local tool=$1 outtype=$2 outputs=$3 r anon filek tot
    shift 4
    # shellcheck disable=SC2086
    rm -rf $outputs
    r=$("$PY" "$BENCH/mem_peak.py" "$@")
    read -r anon filek tot <<<"$r"
    MEMROWS+=("| $tool | $outtype | $anon | $filek | $tot |")
    echo "   memory: $tool $outtype: peak RssAnon ${anon} MiB, peak RssFile ${filek} MiB" >&2
}

# --- cases -------------------------------------------------------------------

A=("$CONVERT" --to gguf "$CKPT" --name bench --quiet --force)
Q8_TYPES=(bf16 f16 q8_0)
[[ ${SKIP_Q8:-0} == 1 ]] && Q8_TYPES=(bf16 f16)

for t in "${Q8_TYPES[@]}"; do
    mkdir -p "$OUT/art-dec-$t"
    run_case "art-dec-$t" "artemis-convert --only decoder" "$t" "$OUT/art-dec-$t/bench-$t.gguf" -- \
        "${A[@]}" -o "$OUT/art-dec-$t" --only decoder --outtype "$t"
done
mkdir -p "$OUT/art-full-bf16"
run_case art-full-bf16 "artemis-convert (decoder + mmproj)" bf16 \
    "$OUT/art-full-bf16/bench-bf16.gguf $OUT/art-full-bf16/mmproj-bench-bf16.gguf" -- \
    "${A[@]}" -o "$OUT/art-full-bf16" --outtype bf16
rm -rf "$OUT/art-full-bf16"

for t in "${Q8_TYPES[@]}"; do
    run_case "py-dec-$t" "convert_hf_to_gguf.py (standalone decoder)" "$t" "$OUT/py-dec-$t.gguf" -- \
        "$HF_PY" "$BENCH/hf_convert_wrapper.py" "$STANDALONE" --outtype "$t" --outfile "$OUT/py-dec-$t.gguf"
done

mkdir -p "$OUT/cp"
run_case cp "cp (standalone decoder shards)" "-" "$OUT/cp/model-*.safetensors" -- \
    bash -c 'cp "$1"/model-*.safetensors "$2"/' cp "$STANDALONE" "$OUT/cp"
rm -rf "$OUT/cp"

mkdir -p "$OUT/small"
run_case small "artemis-convert fixtures/small (decoder + mmproj)" auto \
    "$OUT/small/small-bf16.gguf $OUT/small/mmproj-small-bf16.gguf" -- \
    "$CONVERT" --to gguf "$REPO/fixtures/small" -o "$OUT/small" --quiet --force

# --- memory split (untimed) ---------------------------------------------------

mkdir -p "$OUT/mem"
mem_case "artemis-convert --only decoder" bf16 "$OUT/mem/bench-bf16.gguf" -- \
    "${A[@]}" -o "$OUT/mem" --only decoder --outtype bf16
mem_case "artemis-convert --only decoder" q8_0 "$OUT/mem/bench-q8_0.gguf" -- \
    "${A[@]}" -o "$OUT/mem" --only decoder --outtype q8_0
mem_case "artemis-convert (decoder + mmproj)" bf16 "$OUT/mem/bench-bf16.gguf $OUT/mem/mmproj-bench-bf16.gguf" -- \
    "${A[@]}" -o "$OUT/mem" --outtype bf16
for t in bf16 f16; do
    mem_case "convert_hf_to_gguf.py (standalone decoder)" "$t" "$OUT/mem/py-$t.gguf" -- \
        "$HF_PY" "$BENCH/hf_convert_wrapper.py" "$STANDALONE" --outtype "$t" --outfile "$OUT/mem/py-$t.gguf"
done
rm -rf "$OUT/mem"

# --- cross-check: artemis-convert vs convert_hf_to_gguf.py -------------------

cat > "$BENCH/compare_gguf.py" <<'EOF'
import os, sys
import numpy as np
sys.path.insert(0, os.path.join(os.environ["LLAMA_CPP_DIR"], "gguf-py"))
from gguf import GGUFReader, GGUFValueType  # noqa: E402

def kv(r):
    out = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        try:
            v = f.contents()
        except Exception as e:  # noqa: BLE001
            v = f"<unreadable: {e}>"
        out[name] = v
    return out

def short(v):
    if isinstance(v, list):
        return f"[{len(v)} items]"
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."

a_path, b_path = sys.argv[1], sys.argv[2]
a, b = GGUFReader(a_path), GGUFReader(b_path)
print(f"#### `{os.path.basename(a_path)}` (artemis-convert) vs `{os.path.basename(b_path)}` (convert_hf_to_gguf.py)\n")
ta = {t.name: t for t in a.tensors}
tb = {t.name: t for t in b.tensors}
only_a, only_b = sorted(set(ta) - set(tb)), sorted(set(tb) - set(ta))
if only_a: print(f"- tensors only in artemis-convert's: {only_a}")
if only_b: print(f"- tensors only in convert_hf_to_gguf.py's: {only_b}")
same, diff = [], []
for n in [n for n in ta if n in tb]:
    x, y = ta[n], tb[n]
    tx, ty = x.tensor_type.name, y.tensor_type.name
    sx, sy = list(map(int, x.shape)), list(map(int, y.shape))
    if tx != ty or sx != sy:
        diff.append(f"{n}: type/shape {tx}{sx} vs {ty}{sy}")
        continue
    bx = np.asarray(x.data).reshape(-1).view(np.uint8)
    by = np.asarray(y.data).reshape(-1).view(np.uint8)
    if bx.size == by.size and np.array_equal(bx, by):
        same.append(n)
    else:
        nd = int(np.count_nonzero(bx != by)) if bx.size == by.size else -1
        diff.append(f"{n}: {tx}{sx}, {nd} of {bx.size} bytes differ")
print(f"- tensors compared: {len(same) + len(diff)}; byte-identical: {len(same)}; different: {len(diff)}")
for d in diff:
    print(f"  - {d}")
for n in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "output.weight"):
    if n in ta and n in tb:
        print(f"  - `{n}` ({ta[n].tensor_type.name}, ne {list(map(int, ta[n].shape))}): "
              f"{'identical' if n in same else 'DIFFERENT'}")
ka, kb = kv(a), kv(b)
print(f"- metadata keys: {len(ka)} vs {len(kb)}")
ko_a, ko_b = sorted(set(ka) - set(kb)), sorted(set(kb) - set(ka))
if ko_a: print(f"  - only in artemis-convert's: {', '.join(f'`{k}`' for k in ko_a)}")
if ko_b: print(f"  - only in convert_hf_to_gguf.py's: {', '.join(f'`{k}`' for k in ko_b)}")
for k in sorted(set(ka) & set(kb)):
    va, vb = ka[k], kb[k]
    eq = va == vb
    if not eq and isinstance(va, (int, float)) and isinstance(vb, (int, float)):
        eq = np.float32(va) == np.float32(vb)
    if not eq:
        extra = ""
        if isinstance(va, list) and isinstance(vb, list) and len(va) == len(vb):
            nd = sum(1 for p, q in zip(va, vb) if p != q)
            first = next(i for i, (p, q) in enumerate(zip(va, vb)) if p != q)
            extra = f" ({nd} entries differ, first at {first}: {short(va[first])} vs {short(vb[first])})"
        print(f"  - `{k}` differs: {short(va)} vs {short(vb)}{extra}")
print()
EOF

COMPARE=""
for t in "${Q8_TYPES[@]}"; do
    if [[ -f $OUT/art-dec-$t/bench-$t.gguf && -f $OUT/py-dec-$t.gguf ]]; then
        COMPARE+=$("$HF_PY" "$BENCH/compare_gguf.py" "$OUT/art-dec-$t/bench-$t.gguf" "$OUT/py-dec-$t.gguf")$'\n\n'
    fi
done

# --- report ------------------------------------------------------------------

BIN_SHA_END=$(sha256sum "$CONVERT" | cut -c1-16)
BIN_NOTE="sha256 $BIN_SHA_START…, unchanged during the run"
[[ $BIN_SHA_START != "$BIN_SHA_END" ]] && BIN_NOTE="**binary was rebuilt during the run** (sha256 $BIN_SHA_START… → $BIN_SHA_END…)"
ck_bytes=$(du -cb "$CKPT"/*.safetensors | tail -1 | cut -f1)
sa_bytes=$(du -cb "$STANDALONE"/*.safetensors | tail -1 | cut -f1)
ck_shards=$(ls "$CKPT"/*.safetensors | wc -l)
sa_shards=$(ls "$STANDALONE"/*.safetensors | wc -l)
llama_commit=$(git -C "$LLAMA_CPP_DIR" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
sdist=$(basename "$(dirname "$(dirname "$LLAMA_CPP_DIR")")")
{
    echo "## Conversion benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo
    echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')),"
    echo "$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr), /tmp on $(df -T "$BENCH" | awk 'NR==2{print $2}')."
    echo "artemis-convert: $("$CONVERT" --version 2>/dev/null) (binary $(stat -c '%y' "$CONVERT" | cut -d. -f1), $BIN_NOTE; default threads = all CPUs)."
    echo "convert_hf_to_gguf.py: llama.cpp $llama_commit vendored in $sdist (PyPI sdist), gguf-py from the same tree;"
    echo "$("$HF_PY" -c 'import sys,torch,numpy;print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}")')."
    echo
    echo "Input: \`$CKPT\` ($ck_shards shards, $ck_bytes bytes of safetensors);"
    echo "standalone decoder \`$STANDALONE\` ($sa_shards shards, $sa_bytes bytes)."
    echo
    echo "| tool | outtype | wall s | wall range s | MB/s | wall+sync s | MB/s incl. sync | peak RSS MiB | CPU | output MiB | load1 before | other CPU s | retries |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "- Each row: one untimed warm-up run, then $REPEATS measured run(s) (\`/usr/bin/time -v\`); wall columns are"
    echo "  medians (range = min–max wall), peak RSS and other CPU the maximum, CPU the median. The page cache"
    echo "  cannot be dropped here, so the input shards are read from a warm cache in every row."
    echo "- MB/s = output bytes / wall seconds (10^6 bytes); for cp, output bytes = the decoder shard bytes copied."
    echo "- \"wall+sync\" adds a \`sync\` right after the run: artemis-convert fsyncs its output before"
    echo "  renaming it into place, convert_hf_to_gguf.py and cp do not, so only the +sync columns"
    echo "  compare like with like on the write side."
    echo "- \"other CPU s\": machine-wide busy CPU time during the measured run minus the command's own"
    echo "  user+sys time, i.e. CPU used by other processes meanwhile (a measurement is retried when it exceeds"
    echo "  0.3 s + 5% of wall time, or a compiler is running when it ends; \"retries\" lists those)."
    echo "- convert_hf_to_gguf.py runs through a wrapper that replaces get_vocab_base_pre() with \`return \"tekken\"\`"
    echo "  (the fixtures' tiny tokenizer has no registered pre-tokenizer hash); otherwise unmodified."
    echo
    echo "### Peak memory split (separate untimed runs, /proc/PID/status sampled every 20 ms)"
    echo
    echo "| tool | outtype | peak RssAnon MiB (private) | peak RssFile MiB (file-backed, mostly mmap'd inputs) | peak sum MiB |"
    echo "|---|---|---:|---:|---:|"
    printf '%s\n' "${MEMROWS[@]}"
    echo
    echo "### Cross-check: artemis-convert vs convert_hf_to_gguf.py decoder GGUFs"
    echo
    echo "$COMPARE"
} > "$RESULTS"
cat "$RESULTS"
echo "results written to $RESULTS" >&2
