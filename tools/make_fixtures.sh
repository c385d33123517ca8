#!/usr/bin/env bash
# Regenerate fixtures/ (tiny random-weight Artemis checkpoints + golden outputs)
# with the official Python implementation.  Needs only PyPI; runs offline
# from the hub (HF_HUB_OFFLINE=1).  Usage: tools/make_fixtures.sh [OUT_DIR]
#
# torch: `pip install torch --no-deps` (CPU use without the nvidia-* wheels)
# does NOT work for PyPI's Linux torch 2.15.0: `import torch` preloads
# libcudart/libcublasLt and fails with "libcublasLt.so.*[0-9] not found".
# So torch is installed normally (with its CUDA wheels, ~5 GB venv); only
# the CPU is used.  torchvision is deliberately NOT installed: with it,
# transformers' Qwen2VLImageProcessor silently switches from the PIL backend
# to the torchvision backend, whose antialiased downscaling differs by +-1
# uint8 level on some pixels (make_fixtures.py asserts the PIL backend).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-fixtures}"
VENV=tools/.venv
PY="${PYTHON:-python3}"

PINS=(
  torch==2.15.0
  transformers==5.23.0
  artemis-vlm==0.1.4
  tokenizers==0.23.3
  safetensors==0.8.0
  pillow==13.0.0
  numpy==2.4.6
  huggingface_hub==2.4.0
)

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}"
if "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
  echo "error: torchvision is installed in $VENV; remove it (see comment above)" >&2
  exit 1
fi

export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONHASHSEED=0
"$VENV/bin/python" tools/make_fixtures.py "$OUT"
# make_fixtures.py recreates images/ and golden/; the preprocessing goldens go on top of them.
"$VENV/bin/python" tools/make_preprocess_goldens.py "$OUT"
"$VENV/bin/python" tools/make_template_goldens.py "$OUT"
