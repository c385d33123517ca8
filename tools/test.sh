#!/usr/bin/env bash
# The whole test suite: installs missing build packages, then runs every test in release mode
# (a debug build would compile llama.cpp a second time).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
# A full disk shows up as a compile error deep in some crate; say it first. The suite needs about
# 4 GB for target/ on a fresh clone and 1.5 GB of temp files at peak (removed as each binary ends).
for d in . "${TMPDIR:-/tmp}"; do
  avail_kb=$(df -Pk "$d" | awk 'NR==2 {print $4}')
  if [ "${avail_kb:-0}" -lt $((6 * 1024 * 1024)) ]; then
    echo "tools/test.sh: only $((avail_kb / 1024)) MiB free under $d; the build and tests need about 6 GiB" >&2
  fi
done
cargo test --release "$@"
