#!/usr/bin/env bash
# Builds stock upstream llama-server (for benchmarks against artemis-serve). The crate we vendor
# ships no server sources, so this takes llama.cpp from PyPI's llama-cpp-python sdist (the same
# source tools/build-llama-quantize.sh uses), unpatched: compare on a decoder stock llama.cpp runs.
#
#   NATIVE=OFF tools/build-llama-server.sh [BUILD_DIR]   # prints the binary's path
set -euo pipefail
build=${1:-/tmp/artemis-llama-server}
version=0.3.36
native=${NATIVE:-OFF}
mkdir -p "$build"
if [ ! -d "$build/llama_cpp_python-$version" ]; then
  python3 -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$build" >/dev/null
  tar -xzf "$build/llama_cpp_python-$version.tar.gz" -C "$build"
fi
src="$build/llama_cpp_python-$version/vendor/llama.cpp"
if [ ! -x "$build/build/bin/llama-server" ]; then
  cmake -S "$src" -B "$build/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DGGML_NATIVE=$native >"$build/configure.log" 2>&1 || { tail -30 "$build/configure.log"; exit 1; }
  cmake --build "$build/build" --target llama-server -j "$(nproc)" >"$build/build.log" 2>&1 \
    || { tail -30 "$build/build.log"; exit 1; }
fi
echo "$build/build/bin/llama-server"
