#!/usr/bin/env bash
# Builds upstream llama.cpp's llama-quantize for benchmarks against artemis-quantize. The crate
# we vendor does not ship tools/quantize's sources, so this takes llama.cpp from PyPI's
# llama-cpp-python sdist (a different llama.cpp version; its src/llama-quant.cpp is identical
# to the vendored one as of llama-cpp-python 0.3.36 / llama-cpp-sys-2 0.1.161).
#
#   tools/build-llama-quantize.sh [BUILD_DIR]      # prints the binary's path
set -euo pipefail
build=${1:-/tmp/artemis-llama-quantize}
version=0.3.36
mkdir -p "$build"
if [ ! -d "$build/llama_cpp_python-$version" ]; then
  python3 -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$build" >/dev/null
  tar -xzf "$build/llama_cpp_python-$version.tar.gz" -C "$build"
fi
src="$build/llama_cpp_python-$version/vendor/llama.cpp"
cmake -S "$src" -B "$build/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DGGML_NATIVE=ON >"$build/configure.log" 2>&1 || { tail -30 "$build/configure.log"; exit 1; }
cmake --build "$build/build" --target llama-quantize -j "$(nproc)" >"$build/build.log" 2>&1 \
  || { tail -30 "$build/build.log"; exit 1; }
echo "$build/build/bin/llama-quantize"
