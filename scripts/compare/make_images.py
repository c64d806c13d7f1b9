"""Builds tests/data/compare-images/: the encoded images that scripts/compare-images.sh
sends to every server, at the sizes users send: a web photo, a 1920x1080 frame, a
phone-size photo and a PNG.

Run through scripts/compare/make-images.sh, which installs what this needs. The photos
come from the same pinned wheels as the accuracy set (scripts/accuracy/make_set.py), so
the same files come out every time. No wheel ships a photo larger than 1411 pixels a
side, so the two large JPEGs are real photos cropped to the target's aspect ratio and
upscaled with Lanczos; tests/data/compare-images/README.md says so, and what it means
for decode times.
"""

import hashlib
import sys
import tempfile
import zipfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/data/compare-images"
sys.path.insert(0, str(ROOT / "scripts/accuracy"))
from make_set import load, wheel  # noqa: E402  (the accuracy set's pinned wheels)

# The JPEG quality of the upscaled photos: a phone camera's usual setting.
QUALITY = 90

# file: (wheel, path inside it, size to make or None to ship the file's bytes unchanged)
IMAGES = {
    "web-640x427.jpg": ("scikit-learn", "sklearn/datasets/images/china.jpg", None),
    "fullhd-1920x1080.jpg": ("scikit-learn", "sklearn/datasets/images/flower.jpg", (1920, 1080)),
    "phone-4000x3000.jpg": ("scikit-image", "skimage/data/rocket.jpg", (4000, 3000)),
    "coffee-600x400.png": ("scikit-image", "skimage/data/coffee.png", None),
}


def center_crop_to_aspect(image: Image.Image, size) -> Image.Image:
    """The largest centered crop of IMAGE with the aspect ratio of SIZE."""
    w, h = image.size
    target = size[0] / size[1]
    if w / h > target:
        cw, ch = round(h * target), h
    else:
        cw, ch = w, round(w / target)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = {package: wheel(Path(tmp), package)
                  for package in sorted({package for package, _, _ in IMAGES.values()})}
        for name, (package, member, size) in IMAGES.items():
            path = OUT / name
            if size is None:
                path.write_bytes(zipfile.ZipFile(wheels[package]).read(member))
            else:
                image = center_crop_to_aspect(load(wheels[package], member).convert("RGB"), size)
                image.resize(size, Image.Resampling.LANCZOS).save(path, quality=QUALITY)
            with Image.open(path) as check:
                described = f"{check.size[0]}x{check.size[1]} {check.format} {check.mode}"
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            print(f"{name}: {described}, {path.stat().st_size} bytes, sha256 {digest}")


if __name__ == "__main__":
    main()
