"""Sends each image of the image workload to a running server and checks its top-1 class.

    check_images.py --server NAME --images FILE... [--http HOST:PORT] [--grpc HOST:PORT]
                    [--base64] [--classify-url HOST:PORT] [--classify-json FILE]

The expected answer is computed here: scripts/pillow_preprocess.py's preprocessing, then
onnxruntime on the bundled efficientnet-lite0. --http and --grpc send the image as the
one BYTES element of the input `image` of efficientnet-lite0-image (HTTP with binary
tensors; --base64: the image as base64 text in JSON tensors, for MLServer).
--classify-url POSTs the image to ferroserve's /v2/models/efficientnet-lite0/classify;
--classify-json reads what `ferroserve classify --json` printed for the same files.

The check is the top-1 class: each server's own preprocessing (decoder, resize rounding)
may move the logits a little, which is printed as max |diff| where logits come back.
Prints one line per image and way; exits 1 on a mismatch.
"""

import argparse
import base64
import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from pillow_preprocess import preprocess  # noqa: E402

MODEL = "efficientnet-lite0-image"
CLASSIFIER = "efficientnet-lite0"
ONNX = ROOT / "models" / CLASSIFIER / "1" / "model.onnx"


def infer_logits(protocol, url, encoded, as_base64):
    """The logits a server answers for one encoded image, over HTTP or gRPC."""
    element = base64.b64encode(encoded) if as_base64 else encoded
    batch = np.array([[element]], dtype=np.object_)
    if protocol == "http":
        client = httpclient.InferenceServerClient(url=url)
        tensor = httpclient.InferInput("image", [1, 1], "BYTES")
        tensor.set_data_from_numpy(batch, binary_data=not as_base64)
        wanted = httpclient.InferRequestedOutput("logits", binary_data=not as_base64)
    else:
        client = grpcclient.InferenceServerClient(url=url)
        tensor = grpcclient.InferInput("image", [1, 1], "BYTES")
        tensor.set_data_from_numpy(batch)
        wanted = grpcclient.InferRequestedOutput("logits")
    result = client.infer(MODEL, [tensor], outputs=[wanted])
    return result.as_numpy("logits")


def classify_top1(url, encoded):
    request = urllib.request.Request(
        f"http://{url}/v2/models/{CLASSIFIER}/classify?top_k=1", data=encoded,
        headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request) as response:
        return int(json.load(response)[0]["index"])


def cli_top1s(path):
    """{file name: top-1 index} from `ferroserve classify --json` output."""
    found = {}
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        found[Path(record["path"]).name] = int(record["classes"][0]["index"])
    return found


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True, help="name to print")
    p.add_argument("--images", required=True, nargs="+", type=Path)
    p.add_argument("--http")
    p.add_argument("--grpc")
    p.add_argument("--base64", action="store_true")
    p.add_argument("--classify-url")
    p.add_argument("--classify-json")
    args = p.parse_args()

    session = ort.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"])
    cli = cli_top1s(args.classify_json) if args.classify_json else {}
    failed = False
    for path in args.images:
        encoded = path.read_bytes()
        (expected,) = session.run(["logits"], {"input": preprocess(encoded)})
        want = int(expected.argmax())
        answers = []  # (way, top-1 or None, max |diff| or None)
        for protocol, url in (("http", args.http), ("grpc", args.grpc)):
            if url:
                got = infer_logits(protocol, url, encoded, args.base64)
                ok_shape = got is not None and got.shape == expected.shape
                way = "http-json" if protocol == "http" and args.base64 else protocol
            answers.append((way, int(got.argmax()) if ok_shape else None,
                                float(np.max(np.abs(got - expected))) if ok_shape else None))
        if args.classify_url:
            answers.append(("classify endpoint", classify_top1(args.classify_url, encoded), None))
        if args.classify_json:
            answers.append(("classify cli", cli.get(path.name), None))
        for way, top1, diff in answers:
            ok = top1 == want
            diff_text = "" if diff is None else f" max |diff| {diff:.2e}"
            print(f"check {args.server:<10} {path.name:<22} {way:<17} top-1 {top1} "
                  f"(expected {want}){diff_text} {'ok' if ok else 'MISMATCH'}")
            failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
