#!/usr/bin/env bash
# artemis-chat with the decoder local vs on 1 and 2 loopback RPC workers (artemis-rpc-server), on
# the A3-shaped model: generation tok/s, image encode time (local in every case) and bytes the
# loopback bytes per generated token (the lo interface's rx counter in /proc/net/dev, which is all
# the chat<->worker traffic plus whatever else this machine sends over loopback meanwhile;
# generation only: the difference between a 72- and an 8-token run). ROUNDS rounds, configurations alternating.
#   tools/bench_rpc.sh DECODER.gguf MMPROJ.gguf IMAGE.png [ROUNDS]
set -euo pipefail
dec=$(realpath "$1"); mm=$(realpath "$2"); img=$(realpath "$3"); rounds=${4:-3}
cd "$(dirname "$0")/.."
bin=target/release
lo_bytes() { awk -F'[: ]+' '$2 == "lo" {print $3}' /proc/net/dev; }
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
  local before after
  before=$(lo_bytes)
  local out
  out=$($bin/artemis-chat "$dec" --mmproj "$mm" --image "$img" -p "Describe this image." --temp 0 -n "$n" -t 2 --json "${rpc[@]}" 2>/dev/null)
  after=$(lo_bytes)
  for p in "${pids[@]}"; do kill $p; done
  wait 2>/dev/null || true
  echo "$out" | python3 -c "import json,sys; v=json.load(sys.stdin); print(round(v['tok_per_s'],2), round(v['encode_ms']), $((after - before)))"
}
echo "| round | decoder on | tok/s | image encode ms | loopback bytes per generated token |"
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
