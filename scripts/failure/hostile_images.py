"""Hostile images: decompression bombs, lying headers, noise and truncations sent to
/classify by 4 clients for SECONDS. Every one must be refused with a 4xx, except the bomb
whose data really inflates to its declared 8000x8000 (a black picture under the pixel
limit, which may be classified); the server's resident memory must stay bounded while they
arrive (under one such image, 512 MB, plus 64 MiB per preprocessing thread, above idle)
and return near idle afterwards, and a good image must still be classified.

    scripts/failure/hostile_images.py [--quick] [--seconds 30] [--json FILE]
"""

import argparse
import json
import random
import struct
import sys
import threading
import time
import zlib

from harness import IMAGES, RssSampler, Server, build_name, cpu_name, table


def png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png(width: int, height: int, bit_depth: int, color: int, idat: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def zeros_compressed(row_bytes: int, rows: int) -> bytes:
    """The zlib stream of `rows` rows of zeros (filter byte 0 each): a few hundred KB that
    inflate to row_bytes x rows bytes."""
    packer = zlib.compressobj(9)
    row = bytes(row_bytes + 1)
    return b"".join(packer.compress(row) for _ in range(rows)) + packer.flush()


def catalogue():
    cat = (IMAGES / "cat.jpg").read_bytes()
    rng = random.Random(7)
    start = cat.index(b"\xff\xda") + 2 + int.from_bytes(cat[cat.index(b"\xff\xda") + 2:][:2], "big")
    noisy = bytearray(cat)
    noisy[start:-2] = bytes(rng.getrandbits(8) for _ in range(len(cat) - 2 - start))
    huge_jpeg = bytearray(cat)
    sof = next(i for i in range(len(cat) - 1) if cat[i] == 0xFF and cat[i + 1] in (0xC0, 0xC2))
    huge_jpeg[sof + 5:sof + 9] = struct.pack(">HH", 65535, 65535)
    return {
        # 8000x8000 RGBA16: a 512 MB decode under the 64 Mi pixel limit, 69 bytes on the wire.
        "png, 69 bytes declaring 8000x8000 RGBA16": png(8000, 8000, 16, 6, zlib.compress(b"\0")),
        # The same picture whose compressed data really inflates to 512 MB of zeros.
        "png bomb, 8000x8000 RGBA16 of zeros": png(8000, 8000, 16, 6, zeros_compressed(8000 * 8, 8000)),
        "png declaring 100000x100000": png(100000, 100000, 8, 2, zlib.compress(b"\0")),
        "jpeg declaring 65535x65535": bytes(huge_jpeg),
        "jpeg whose scan is noise": bytes(noisy),
        "jpeg truncated at half": cat[: len(cat) // 2],
        "noise": bytes(rng.getrandbits(8) for _ in range(50_000)),
        "empty": b"",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--json")
    args = parser.parse_args()
    seconds = 3 if args.quick else args.seconds
    images = catalogue()
    path = "/v2/models/efficientnet-lite0/classify"
    with Server() as server:
        time.sleep(1)
        idle = server.rss_mb()
        sampler = RssSampler(server, period=0.1)
        answers = {name: {} for name in images}
        lock = threading.Lock()
        deadline = time.monotonic() + seconds

        def client(offset):
            names = list(images)
            i = offset
            while time.monotonic() < deadline:
                name = names[i % len(names)]
                status, _ = server.post(path, images[name])
                with lock:
                    answers[name][status] = answers[name].get(status, 0) + 1
                i += 1

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        during = sampler.peak(started)
        time.sleep(2 if args.quick else 10)
        after = server.rss_mb()
        sampler.stop()
        good, _ = server.post(path + "?top_k=1", (IMAGES / "cat.jpg").read_bytes())
    within_limits = "png bomb, 8000x8000 RGBA16 of zeros"
    refused = all(all(400 <= s < 500 for s in a) and (a or args.quick)
                  for name, a in answers.items() if name != within_limits)
    bounded = during - idle < 512 + 64 * 4 and after - idle < 100
    print(f"hostile images for {seconds} s, 4 clients, {build_name()} build, {cpu_name()}")
    print(table([[name, answers[name]] for name in images], ["image", "answers (status: count)"]))
    print(f"\nRSS: idle {idle:.0f} MB, peak while attacked {during:.0f} MB, "
          f"{2 if args.quick else 10} s later {after:.0f} MB; cat.jpg afterwards: {good}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"answers": answers, "rss_idle_mb": idle, "rss_peak_mb": during,
                       "rss_after_mb": after, "good_after": good}, out, indent=1)
    sys.exit(0 if refused and bounded and good == 200 else 1)


if __name__ == "__main__":
    main()
