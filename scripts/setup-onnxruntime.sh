#!/usr/bin/env bash
# Puts ONNX Runtime 1.32.0 (libonnxruntime.so.1.32.0) into .cache/onnxruntime/, where
# ferroserve finds it. The library ships inside the PyPI wheel onnxruntime==1.32.0
# (onnxruntime/capi/) and needs only libc and libstdc++. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.cache/onnxruntime
LIB=libonnxruntime.so.1.32.0
[ -f "$DEST/$LIB" ] && exit 0
mkdir -p "$DEST/wheel"
echo "setup: fetching $LIB from the PyPI wheel onnxruntime==1.32.0" >&2
python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp \
  --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$DEST/wheel" onnxruntime==1.32.0
python3 - "$DEST" "$LIB" <<'PY'
import glob, shutil, sys, zipfile
dest, lib = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{dest}/wheel/onnxruntime-1.32.0-*.whl")
with zipfile.ZipFile(wheel) as z, z.open(f"onnxruntime/capi/{lib}") as src, open(f"{dest}/{lib}.part", "wb") as out:
    shutil.copyfileobj(src, out)
PY
mv "$DEST/$LIB.part" "$DEST/$LIB"
rm -rf "$DEST/wheel"
echo "setup: installed $DEST/$LIB" >&2
