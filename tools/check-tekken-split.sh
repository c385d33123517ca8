#!/usr/bin/env bash
# Compares llama.cpp's std::regex tekken pre-tokenizer with the custom splitter of
# vendor/patches/llama-cpp-sys-2/0003-tekken-split-without-regex.patch on random strings, and
# splits 1 MiB runs of one character (which overflowed the stack through std::regex).
#   tools/check-tekken-split.sh [N_CASES]   (default 200000; needs g++)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/vendor/llama-cpp-sys-2/llama.cpp/src"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
g++ -O2 -std=c++17 -I"$src" -I"$src/../include" -I"$src/../ggml/include" \
  "$root/tools/tekken-split/check.cpp" "$src/unicode.cpp" "$src/unicode-data.cpp" -o "$work/check"
"$work/check" "${1:-200000}"
