#!/usr/bin/env bash
# Rebuild vendor/llama-cpp-sys-2 and vendor/llama-cpp-2 from the pristine published crates plus
# our patches, byte for byte.
#
#   tools/vendor-llama.sh            # rebuild vendor/
#   tools/vendor-llama.sh --check    # rebuild into a temp dir and diff against vendor/
#
# Upgrading llama.cpp = change the versions/sha256 below, run this, fix patches that no longer
# apply. Patches live in vendor/patches/<crate>/*.patch and are applied in name order with
# `patch -p1` from the crate root. LLAMA_CRATE_DIR=dir uses already-downloaded <name>-<ver>.crate files.
set -euo pipefail

SYS_VERSION=0.1.161
SYS_SHA256=e9bea77fde41bbc15a278891cd5edd2ba07c5260d162614b41080ba1f100b39b
RS_VERSION=0.1.160
RS_SHA256=b98e9f0971b7454a25a550f0bd4577f35b94570be32f8f8dc08d94f4cb2873fe

root=$(cd "$(dirname "$0")/.." && pwd)
check=0
[ "${1:-}" = "--check" ] && check=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch NAME VERSION SHA256 -> extracted dir on stdout
fetch() {
  local name=$1 version=$2 sha=$3 crate="$work/$1-$2.crate"
  if [ -n "${LLAMA_CRATE_DIR:-}" ] && [ -f "$LLAMA_CRATE_DIR/$name-$version.crate" ]; then
    cp "$LLAMA_CRATE_DIR/$name-$version.crate" "$crate"
  else
    curl -sSfL -o "$crate" "https://static.crates.io/crates/$name/$name-$version.crate"
  fi
  echo "$sha  $crate" | sha256sum -c --quiet - >&2
  tar -xzf "$crate" -C "$work"
  echo "$work/$name-$version"
}

# trim_sys DIR: drop everything the sys crate never builds (keep CPU, CUDA, RPC, mtmd, quantize).
trim_sys() {
  local lc="$1/llama.cpp"
  for b in cann et hexagon hip metal musa opencl openvino sycl virtgpu vulkan webgpu zdnn zendnn; do
    rm -rf "$lc/ggml/src/ggml-$b"
  done
  rm -rf "$lc/docs" "$lc/tests" "$lc/examples" "$lc/pocs" "$lc/ci" "$lc/models" "$lc/grammars" \
         "$lc/gguf-py" "$lc/convert_hf_to_gguf.py" "$lc/ggml/src/ggml-cpu/spacemit" "$1/Cargo.lock"
  # tools/: mtmd (built by the `mtmd` feature) and quantize (benchmarks against llama-quantize).
  for t in "$lc"/tools/*/; do
    case "$(basename "$t")" in mtmd|quantize) ;; *) rm -rf "$t" ;; esac
  done
}

# vendor NAME DIR: apply patches, then install into vendor/NAME (or diff with --check)
vendor() {
  local name=$1 src=$2 dest="$root/vendor/$1"
  for p in "$root/vendor/patches/$name"/*.patch; do
    [ -e "$p" ] || continue
    (cd "$src" && patch -p1 --quiet --no-backup-if-mismatch < "$p")
  done
  if [ $check = 1 ]; then
    diff -r "$src" "$dest" && echo "vendor/$name matches the pristine crate + patches"
  else
    rm -rf "$dest"
    mv "$src" "$dest"
    echo "vendor/$name rebuilt: $(du -sh "$dest" | cut -f1)"
  fi
}

sys=$(fetch llama-cpp-sys-2 $SYS_VERSION $SYS_SHA256)
trim_sys "$sys"
vendor llama-cpp-sys-2 "$sys"

rs=$(fetch llama-cpp-2 $RS_VERSION $RS_SHA256)
rm -f "$rs/Cargo.lock"
vendor llama-cpp-2 "$rs"
