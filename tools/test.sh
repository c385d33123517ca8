#!/usr/bin/env bash
# The whole test suite: installs missing build packages, then runs every test in release mode
# (a debug build would compile llama.cpp a second time).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cargo test --release "$@"
