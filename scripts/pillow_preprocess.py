"""The preprocessing of ferroserve-vision's bench, done with Pillow and numpy, timed.

For each image: open from the encoded bytes in memory, turn upright by EXIF orientation,
convert to RGB, resize so the short side is 256 (Image.BICUBIC, sizes rounded with Python's
round), center-crop 224 (offset (size - 224) // 2), normalise (p - 127) / 128 into a
float32 NCHW array. Prints the median time per image over --runs runs, on one thread.

    .venv/bin/python scripts/pillow_preprocess.py IMAGE... [--runs N] [--save DIR]

--save DIR also writes each image's tensor as DIR/<name>.pillow.f32 (raw little-endian
float32, [1, 3, 224, 224]) for accuracy comparisons.
"""

import argparse
import io
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SHORT_SIDE, CROP = 256, 224


def preprocess(encoded: bytes) -> np.ndarray:
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(encoded))).convert("RGB")
    w, h = img.size
    scale = SHORT_SIDE / min(w, h)
    size = (round(w * scale), round(h * scale))
    img = img.resize(size, Image.BICUBIC)
    left, top = (size[0] - CROP) // 2, (size[1] - CROP) // 2
    img = img.crop((left, top, left + CROP, top + CROP))
    hwc = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0
    return np.ascontiguousarray(hwc.transpose(2, 0, 1))[np.newaxis]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=0, help="default: about 5 s per image")
    parser.add_argument("--save", type=Path, help="write each tensor to DIR/<name>.pillow.f32")
    args = parser.parse_args()
    for path in args.images:
        encoded = path.read_bytes()
        tensor = preprocess(encoded)  # warm-up
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            tensor.astype("<f4").tofile(args.save / f"{path.stem}.pillow.f32")
        started = time.perf_counter()
        preprocess(encoded)
        runs = args.runs or max(10, int(5.0 / (time.perf_counter() - started)))
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            preprocess(encoded)
            times.append(time.perf_counter() - started)
        median_ms = statistics.median(times) * 1e3
        print(f"pillow {path.name}: median {median_ms:.3f} ms per image over {runs} runs")


if __name__ == "__main__":
    main()
