#!/usr/bin/env bash
# Times one image through ferroserve-vision (criterion bench `preprocess`) and through
# Pillow + numpy (scripts/pillow_preprocess.py), one thread each, for tests/data/images/cat.jpg
# and a 12 MP JPEG made from it, and prints both medians and their ratio.
# Usage: scripts/bench-preprocess.sh   (from anywhere; installs Pillow + numpy into .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if ! "$venv/bin/python" -c 'import PIL, numpy' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet pillow numpy
fi
python="$venv/bin/python"

small="$(cd tests/data/images && pwd)/cat.jpg"
target="${CARGO_TARGET_DIR:-$(pwd)/target}"
data="$target/bench-data"
large="$data/cat-4000x3000.jpg"
mkdir -p "$data"
if [[ ! -f "$large" ]]; then
    "$python" - "$small" "$large" <<'PY'
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").resize((4000, 3000), Image.BICUBIC).save(sys.argv[2], quality=90)
PY
fi

FERROSERVE_BENCH_IMAGES="$small,$large" \
    cargo bench -p ferroserve-vision --bench preprocess -- --warm-up-time 2 --measurement-time 10
"$python" scripts/pillow_preprocess.py "$small" "$large" | tee "$data/pillow.txt"

"$python" - "$target" "$small" "$large" <<'PY'
import json, re, sys
from pathlib import Path
target = Path(sys.argv[1])
pillow = {}
for line in (target / "bench-data/pillow.txt").read_text().splitlines():
    name, ms = re.match(r"pillow (\S+): median ([\d.]+) ms", line).groups()
    pillow[name] = float(ms)
print(f"\n{'image':24} {'ferroserve':>12} {'pillow':>12} {'speed-up':>9}")
for path in sys.argv[2:]:
    name = Path(path).name
    estimates = target / "criterion/preprocess_f32" / name / "new/estimates.json"
    ours = json.loads(estimates.read_text())["median"]["point_estimate"] / 1e6
    print(f"{name:24} {ours:9.3f} ms {pillow[name]:9.3f} ms {pillow[name] / ours:8.1f}x")
PY
