#!/usr/bin/env bash
# Puts OpenVINO 2026.4.1's C library and what it needs on the CPU into .cache/openvino/,
# where ferroserve finds it. The libraries ship inside the PyPI wheel
# openvino==2026.4.1 (openvino/libs/); they find each other through their RPATH
# ($ORIGIN), and without a plugins.xml OpenVINO loads the CPU plugin from the folder of
# libopenvino.so, so one folder holds them all:
#   libopenvino_c.so.2641                the C API ferroserve calls
#   libopenvino.so.2641                  the runtime
#   libopenvino_intel_cpu_plugin.so      the CPU device
#   libopenvino_onnx_frontend.so.2641    reads ONNX models
#   libopenvino_ir_frontend.so.2641      reads OpenVINO IR (model.xml + model.bin)
#   libtbb.so.12, libtbbmalloc.so.2      oneTBB, the runtime's threads and its allocator
#   libtbbbind_2_5.so.3, libhwloc.so.15  oneTBB's NUMA binding (loaded when present)
# They need only libc, libstdc++ and libgcc_s. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.cache/openvino
VERSION=2026.4.1
LIBS=(libopenvino_c.so.2641 libopenvino.so.2641 libopenvino_intel_cpu_plugin.so
  libopenvino_onnx_frontend.so.2641 libopenvino_ir_frontend.so.2641
  libtbb.so.12 libtbbmalloc.so.2 libtbbbind_2_5.so.3 libhwloc.so.15)
missing=0
for lib in "${LIBS[@]}"; do
  [ -f "$DEST/$lib" ] || missing=1
done
[ "$missing" = 0 ] && exit 0
mkdir -p "$DEST/wheel"
echo "setup: fetching OpenVINO's CPU libraries from the PyPI wheel openvino==$VERSION" >&2
python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp \
  --python-version 3.11 --platform manylinux_2_28_x86_64 -d "$DEST/wheel" "openvino==$VERSION"
python3 - "$DEST" "$VERSION" "${LIBS[@]}" <<'PY'
import glob, os, shutil, sys, zipfile
dest, version, libs = sys.argv[1], sys.argv[2], sys.argv[3:]
(wheel,) = glob.glob(f"{dest}/wheel/openvino-{version}-*.whl")
with zipfile.ZipFile(wheel) as z:
    for lib in libs:
        with z.open(f"openvino/libs/{lib}") as src, open(f"{dest}/{lib}.part", "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(f"{dest}/{lib}.part", f"{dest}/{lib}")
    # The licence of OpenVINO and of what it bundles (oneTBB, oneDNN, ...), shipped with it.
    for name in z.namelist():
        if name.startswith(f"openvino-{version}.dist-info/licenses/") and not name.endswith("/"):
            target = os.path.join(dest, "licenses", os.path.basename(name))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
PY
rm -rf "$DEST/wheel"
echo "setup: installed OpenVINO $VERSION into $DEST" >&2
