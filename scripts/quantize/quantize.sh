#!/usr/bin/env bash
# Quantizes an f32 ONNX classifier to int8 (see quantize.py); installs ONNX Runtime, NNCF,
# Pillow and numpy from PyPI into .venv-tools/ on first use. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! .venv-tools/bin/python -c "import onnxruntime, onnx, nncf, PIL, numpy" 2>/dev/null; then
  python3 -m venv .venv-tools
  .venv-tools/bin/pip install -q --disable-pip-version-check -r scripts/quantize/requirements.txt
fi
exec .venv-tools/bin/python scripts/quantize/quantize.py "$@"
