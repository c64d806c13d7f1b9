"""The seed's table, reproduced: what a user writes first against the best ferroserve path,
on the same 1,000 images, on this machine, in one run (scripts/seed-table.sh runs it).

Images: 1,000 distinct JPEGs made from the photos the repository ships (tests/data/images,
tests/data/accuracy/photos, tests/data/compare-images' web photo): each photo is cropped by
a few pixels, a different offset per copy, and saved again at quality 90, so that every
file is a real photo with its own bytes (a content-addressed cache cannot answer one from
another).

Rows:
  - Python loop: Pillow preprocessing (scripts/pillow_preprocess.py, the reference) and
    onnxruntime with its default session options, one image at a time;
  - `ferroserve classify` on the folder (in-process, decode in parallel, no server);
  - `ferroserve serve --naive` and `ferroserve serve` (the defaults), POST /classify, each
    image once, concurrency 1 and 4, response cache off;
  - `ferroserve serve` with the response cache on, on a stream of 1,000 requests of which
    50% repeat an image sent earlier in the stream (seeded, stated in the report).
Every server answer's top-1 is compared with the Python loop's for the same image.

    python scripts/seed_table.py FERROSERVE_BIN OUT_DIR
"""

import hashlib
import http.client
import io
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "failure"))
from harness import Server  # noqa: E402
from pillow_preprocess import preprocess  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = "efficientnet-lite0"
IMAGES = 1000
REPEATED_SHARE = 0.5
CLASSIFY = f"/v2/models/{MODEL}/classify?top_k=1"


def base_photos():
    photos = sorted((ROOT / "tests/data/accuracy/photos").glob("*.jpg"))
    photos += [ROOT / "tests/data/images/cat.jpg", ROOT / "tests/data/images/astronaut.png",
               ROOT / "tests/data/compare-images/web-640x427.jpg"]
    return photos


def make_images(folder):
    """IMAGES distinct JPEG files in `folder`, cycling over the base photos."""
    folder.mkdir(parents=True)
    photos, pixels = [], set()
    for path in base_photos():
        photo = Image.open(path).convert("RGB")
        digest = hashlib.sha256(photo.tobytes()).hexdigest()
        if digest not in pixels:  # the same photo may ship twice (cat.jpg, chelsea.jpg)
            pixels.add(digest)
            photos.append(photo)
    seen, files = set(), []
    for i in range(IMAGES):
        photo = photos[i % len(photos)]
        copy = i // len(photos)
        dx, dy = copy % 7, copy // 7 % 7
        w, h = photo.size
        out = io.BytesIO()
        photo.crop((dx, dy, w - (copy % 5), h - (copy % 3))).save(out, "JPEG", quality=90)
        data = out.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        assert digest not in seen, f"image {i} repeats an earlier one"
        seen.add(digest)
        path = folder / f"{i:04d}.jpg"
        path.write_bytes(data)
        files.append(path)
    return files, len(photos)


def python_loop(files):
    """What a user writes first: one image at a time, Pillow then onnxruntime."""
    session = ort.InferenceSession(str(ROOT / f"models/{MODEL}/1/model.onnx"))
    name = session.get_inputs()[0].name
    session.run(None, {name: preprocess(files[0].read_bytes())})  # warm-up
    top1, seconds = {}, []
    start = time.perf_counter()
    for path in files:
        t = time.perf_counter()
        logits = session.run(None, {name: preprocess(path.read_bytes())})[0]
        top1[path.name] = int(np.argmax(logits))
        seconds.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    return top1, {"images_per_s": len(files) / wall, "p50_ms": statistics.median(seconds) * 1e3,
                  "p99_ms": quantile(seconds, 0.99) * 1e3, "concurrency": 1}


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def classify_cli(binary, folder, count):
    """`ferroserve classify` on the folder; its model load is timed apart on one image."""
    def run(path):
        start = time.perf_counter()
        out = subprocess.run([binary, "classify", "--json", "--top-k", "1", str(path)],
                             check=True, capture_output=True, text=True).stdout
        return time.perf_counter() - start, out
    one, _ = run(next(folder.iterdir()))
    wall, out = run(folder)
    top1 = {}
    for line in out.splitlines():
        answer = json.loads(line)
        top1[Path(answer["path"]).name] = answer["classes"][0]["index"]
    return top1, {"images_per_s": (count - 1) / (wall - one), "concurrency": "all cores",
                  "wall_s": wall, "startup_and_one_image_s": one}


def connect(server):
    """A keep-alive connection to `server` with Nagle off, as `ferroserve bench` uses."""
    host, port = server.http.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def classify(connection, body):
    """POST /classify: (status, answer bytes)."""
    connection.request("POST", CLASSIFY, body=body)
    response = connection.getresponse()
    return response.status, response.read()


def through_server(server, stream, concurrency):
    """Sends each (name, bytes) of `stream` once, `concurrency` at a time, one
    keep-alive connection per client thread; returns top-1 per name and the figures."""
    next_index, lock = [0], threading.Lock()
    top1, seconds, failures = {}, [], []

    def client():
        connection = connect(server)
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= len(stream):
                return
            name, body = stream[i]
            t = time.perf_counter()
            status, answer = classify(connection, body)
            elapsed = time.perf_counter() - t
            with lock:
                if status != 200:
                    failures.append(f"{name}: {status} {answer[:200]!r}")
                    continue
                top1[name] = json.loads(answer)[0]["index"]
                seconds.append(elapsed)

    warm_up(server)
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if failures:
        sys.exit(f"{len(failures)} requests failed, first: {failures[0]}")
    return top1, {"images_per_s": len(stream) / wall, "p50_ms": statistics.median(seconds) * 1e3,
                  "p99_ms": quantile(seconds, 0.99) * 1e3, "concurrency": concurrency}


def warm_up(server):
    """A few requests of a photo that is not in any stream, so that no stream image is
    cached by the warm-up."""
    connection = connect(server)
    body = (ROOT / "tests/data/images/coffee.jpg").read_bytes()
    for _ in range(8):
        classify(connection, body)


def agreement(reference, top1):
    same = sum(top1[name] == reference[name] for name in top1)
    return f"{same}/{len(top1)}"


def cached_repository(out):
    repo = out / "cached" / MODEL
    (repo / "1").mkdir(parents=True)
    source = ROOT / "models" / MODEL
    os.link(source / "1/model.onnx", repo / "1/model.onnx")
    shutil.copy(source / "labels.txt", repo / "labels.txt")
    config = (source / "config.pbtxt").read_text() + "\nresponse_cache { enable: true }\n"
    (repo / "config.pbtxt").write_text(config)
    return repo.parent


def repeated_stream(files):
    """IMAGES requests: a share REPEATED_SHARE of them repeat an image sent earlier."""
    rng = random.Random(7)
    fresh = iter(files)
    sent = []
    for i in range(IMAGES):
        if sent and rng.random() < REPEATED_SHARE:
            sent.append(rng.choice(sent))
        else:
            sent.append(next(fresh))
    return sent


def main():
    binary, out = sys.argv[1], Path(sys.argv[2])
    os.environ["FERROSERVE_BIN"] = binary  # the harness's Server starts this binary
    shutil.rmtree(out, ignore_errors=True)
    files, bases = make_images(out / "images")
    stream = [(p.name, p.read_bytes()) for p in files]
    rows = []

    print("python loop ...", file=sys.stderr)
    reference, figures = python_loop(files)
    rows.append(("Python loop: Pillow + onnxruntime, one image at a time", figures, "reference"))

    print("ferroserve classify ...", file=sys.stderr)
    top1, figures = classify_cli(binary, out / "images", len(files))
    rows.append(("`ferroserve classify` on the folder (no server)", figures, agreement(reference, top1)))

    for name, flags in [("`ferroserve serve --naive`", ["--naive"]), ("`ferroserve serve`", [])]:
        with Server(*flags) as server:
            for concurrency in (1, 4):
                print(f"{name} c={concurrency} ...", file=sys.stderr)
                top1, figures = through_server(server, stream, concurrency)
                rows.append((f"{name}, POST /classify, cache off", figures, agreement(reference, top1)))

    repeated = repeated_stream(files)
    share = 1 - len(set(repeated)) / len(repeated)
    cached_stream = [(p.name, p.read_bytes()) for p in repeated]
    with Server("--model-repository", str(cached_repository(out))) as server:
        print("ferroserve serve, cache on ...", file=sys.stderr)
        top1, figures = through_server(server, cached_stream, 4)
        rows.append((f"`ferroserve serve`, POST /classify, cache on, {share:.0%} repeated",
                     figures, agreement(reference, top1)))

    result = {"cpu": cpu_name(), "cores": os.cpu_count(), "images": IMAGES, "base_photos": bases,
              "repeated_share": share, "python": platform.python_version(),
              "onnxruntime": ort.__version__,
              "rows": [{"name": n, **f, "top1_agreement": a} for n, f, a in rows]}
    (out / "seed-table.json").write_text(json.dumps(result, indent=1))
    print(table(result))


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def table(result):
    base = result["rows"][0]["images_per_s"]
    lines = [f"{result['images']} images ({result['base_photos']} shipped photos, each cropped "
             f"and re-encoded into distinct copies), {result['cpu']}, {result['cores']} cores", "",
             "| path | concurrency | images/s | vs Python loop | p50 ms | p99 ms | top-1 = Python loop |",
             "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        p50 = f"{row['p50_ms']:.1f}" if "p50_ms" in row else "-"
        p99 = f"{row['p99_ms']:.1f}" if "p99_ms" in row else "-"
        lines.append(f"| {row['name']} | {row['concurrency']} | {row['images_per_s']:.1f} | "
                     f"{row['images_per_s'] / base:.2f}x | {p50} | {p99} | {row['top1_agreement']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
