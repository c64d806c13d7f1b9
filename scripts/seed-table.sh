#!/usr/bin/env bash
# The seed's table reproduced (docs/performance.md, "The seed's table"): a Python loop with
# Pillow and onnxruntime against `ferroserve classify`, `serve --naive` and `serve`, on the
# same 1,000 images, in one run. See scripts/seed_table.py for what each row does.
#
#   scripts/seed-table.sh        # about 5 minutes on 2 cores
#
# Python, Pillow and onnxruntime are the comparison's (.venv-peers, scripts/compare/setup.sh).
# Writes target/seed-table/seed-table.json and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/compare/setup.sh
scripts/setup-onnxruntime.sh
if [ "${BUILD:-1}" = 1 ]; then cargo build --release -q --workspace; fi
.venv-peers/bin/python scripts/seed_table.py target/release/ferroserve target/seed-table
