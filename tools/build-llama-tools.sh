#!/usr/bin/env bash
# Builds llama.cpp's own llama-mtmd-cli from the vendored (patched) llama.cpp, for benchmarks
# against artemis-chat and for checking our GGUFs on a GPU machine without a Rust toolchain.
#
#   tools/build-llama-tools.sh [BUILD_DIR] [--cuda]
#   NATIVE=OFF tools/build-llama-tools.sh DIR   # CPU flags as the sys crate's default build
#                                               # (AVX2/FMA/F16C, no -march=native)
#
# Prints the path of the built binary. The vendored copy is trimmed (no tools/ tree besides
# mtmd), so the build uses a copy whose tools/CMakeLists.txt adds only mtmd.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-/tmp/artemis-llama-tools}
cuda=OFF
for a in "$@"; do [ "$a" = "--cuda" ] && cuda=ON; done
src="$build/src"
mkdir -p "$build"
# Reuse an earlier build of the same vendored tree (and the same CUDA / native choice).
native=${NATIVE:-ON}
stamp="$(git -C "$root" rev-parse HEAD:vendor/llama-cpp-sys-2/llama.cpp 2>/dev/null || echo none)-cuda-$cuda-native-$native"
if [ -x "$build/build/bin/llama-mtmd-cli" ] && [ "$(cat "$build/stamp" 2>/dev/null)" = "$stamp" ] && [ "${stamp#none}" = "$stamp" ]; then
  echo "$build/build/bin/llama-mtmd-cli"
  exit 0
fi
rm -rf "$src"
cp -r "$root/vendor/llama-cpp-sys-2/llama.cpp" "$src"
cat > "$src/tools/CMakeLists.txt" <<'CM'
# artemis-gguf: only the multimodal CLI (the vendored copy carries no other tools)
llama_add_compile_flags()
add_subdirectory(mtmd)
CM
cmake -S "$src" -B "$build/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DGGML_CUDA=$cuda -DGGML_NATIVE=$native >"$build/configure.log" 2>&1 \
  || { tail -30 "$build/configure.log"; exit 1; }
cmake --build "$build/build" --target llama-mtmd-cli -j "$(nproc)" >"$build/build.log" 2>&1 \
  || { tail -30 "$build/build.log"; exit 1; }
echo "$stamp" > "$build/stamp"
echo "$build/build/bin/llama-mtmd-cli"
