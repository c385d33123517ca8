#!/usr/bin/env bash
# Rebuild vendor/llama-cpp-sys-2 from the pristine published crate plus our patches.
#
#   tools/vendor-llama.sh            # rebuild vendor/ (byte-for-byte reproducible)
#   tools/vendor-llama.sh --check    # rebuild into a temp dir and diff against vendor/
#
# Upgrading llama.cpp = change SYS_VERSION/SYS_SHA256 below, run this, fix patches that no longer
# apply. The patches live in vendor/patches/*.patch and are applied in name order with `patch -p1`
# from the crate root.
set -euo pipefail

SYS_VERSION=0.1.161
SYS_SHA256=e9bea77fde41bbc15a278891cd5edd2ba07c5260d162614b41080ba1f100b39b

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/vendor/llama-cpp-sys-2"
patches="$root/vendor/patches"
check=0
[ "${1:-}" = "--check" ] && check=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

crate="$work/sys.crate"
url="https://static.crates.io/crates/llama-cpp-sys-2/llama-cpp-sys-2-$SYS_VERSION.crate"
if [ -n "${LLAMA_SYS_CRATE:-}" ]; then cp "$LLAMA_SYS_CRATE" "$crate"; else curl -sSfL -o "$crate" "$url"; fi
echo "$SYS_SHA256  $crate" | sha256sum -c --quiet -
tar -xzf "$crate" -C "$work"
src="$work/llama-cpp-sys-2-$SYS_VERSION"

# --- trim: everything we never build (keep CPU, CUDA, mtmd and what CMake includes) -------------
lc="$src/llama.cpp"
for b in cann et hexagon hip metal musa opencl openvino rpc sycl virtgpu vulkan webgpu zdnn zendnn; do
  rm -rf "$lc/ggml/src/ggml-$b"
done
rm -rf "$lc/docs" "$lc/tests" "$lc/examples" "$lc/pocs" "$lc/ci" "$lc/models" "$lc/grammars" \
       "$lc/gguf-py" "$lc/convert_hf_to_gguf.py" "$lc/ggml/src/ggml-cpu/spacemit" \
       "$src/Cargo.lock"
# tools/: only mtmd (built through the `mtmd` feature) and quantize (kept for benchmarks against
# llama-quantize); the rest is never compiled by the sys crate.
for t in "$lc"/tools/*/; do
  case "$(basename "$t")" in mtmd|quantize) ;; *) rm -rf "$t" ;; esac
done

# --- patches ------------------------------------------------------------------------------------
for p in "$patches"/*.patch; do
  [ -e "$p" ] || continue
  (cd "$src" && patch -p1 --quiet --no-backup-if-mismatch < "$p")
done

# normalize mtimes so `--check` and git see content only
if [ $check = 1 ]; then
  diff -r "$src" "$dest" && echo "vendor/llama-cpp-sys-2 matches pristine $SYS_VERSION + patches"
else
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  mv "$src" "$dest"
  echo "vendor/llama-cpp-sys-2 rebuilt: $(du -sh "$dest" | cut -f1)"
fi
