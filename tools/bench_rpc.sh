#!/usr/bin/env bash
# artemis-chat with the decoder local vs on 1 and 2 loopback RPC workers (artemis-rpc-server), on
# the A3-shaped model: generation tok/s, image encode time (local in every case) and bytes the
# workers sent and received per generated token (from /proc/<pid>/io, generation only: the
# difference between a 72- and an 8-token run). ROUNDS rounds, configurations alternating.
#   tools/bench_rpc.sh DECODER.gguf MMPROJ.gguf IMAGE.png [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
dec=$1; mm=$2; img=$3; rounds=${4:-3}
bin=target/release
io() { awk '/^rchar|^wchar/ {s+=$2} END {print s}' "/proc/$1/io"; }
run() { # run CONFIG N -> prints "tok_per_s encode_ms bytes"
  local cfg=$1 n=$2 rpc=() pids=()
  if [ "$cfg" -gt 0 ]; then
    local eps=""
    for k in $(seq 1 "$cfg"); do
      local port=$((51000 + k + RANDOM % 500 * 2))
      $bin/artemis-rpc-server --port $port -t 2 >/dev/null 2>&1 & pids+=($!)
      eps="${eps:+$eps,}127.0.0.1:$port"
    done
    sleep 1
    rpc=(-ngl all --rpc "$eps")
  fi
  local before=0 after=0
  for p in "${pids[@]}"; do before=$((before + $(io $p))); done
  local out
  out=$($bin/artemis-chat "$dec" --mmproj "$mm" --image "$img" -p "Describe this image." --temp 0 -n "$n" -t 2 --json "${rpc[@]}" 2>/dev/null)
  for p in "${pids[@]}"; do after=$((after + $(io $p))); kill $p; done
  wait 2>/dev/null || true
  echo "$out" | python3 -c "import json,sys; v=json.load(sys.stdin); print(round(v['tok_per_s'],2), round(v['encode_ms']), $((after - before)))"
}
echo "| round | decoder on | tok/s | image encode ms | worker bytes per generated token |"
echo "|---|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  for cfg in 0 1 2; do
    read -r tps enc b72 <<<"$(run $cfg 72)"
    per="—"
    if [ "$cfg" -gt 0 ]; then
      read -r _ _ b8 <<<"$(run $cfg 8)"
      per=$(( (b72 - b8) / 64 ))
    fi
    name=$([ $cfg = 0 ] && echo local || echo "$cfg RPC worker(s)")
    echo "| $r | $name | $tps | $enc | $per |"
  done
done
