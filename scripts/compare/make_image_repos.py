"""Writes the model repositories of the image workload, one per server, and perf_analyzer's
request data for each image.

    make_image_repos.py --out DIR --images FILE... [--instances 2] [--max-batch 8]
                        [--threads 1] [--mlserver-threads 2]

Each server takes one encoded image (a BYTES element) per batch row in the input `image`,
decodes and preprocesses it itself, and answers the classifier's `logits`. The
preprocessing is the bundled efficientnet-lite0's (models/efficientnet-lite0/config.pbtxt,
`preprocess.*`): short side 256 (Pillow's bicubic), center crop 224, (x - 127) / 128,
RGB, NCHW float32; the peers run scripts/pillow_preprocess.py's `preprocess`. Layout under DIR:

    ferroserve -> models/          the bundled repository (efficientnet-lite0, efficientnet-lite0-image)
    triton/efficientnet-lite0-image/config.pbtxt                  ensemble: preprocess, then classify
    triton/efficientnet-lite0-preprocess/{config.pbtxt, 1/model.py, 1/pillow_preprocess.py}
    triton/efficientnet-lite0/{config.pbtxt, 1/model.py, 1/model.onnx}   as in the tensor workload
    mlserver/efficientnet-lite0-image/{model-settings.json, image_runtime.py, ...}
    perf-data/IMAGE.json          the image as raw bytes (ferroserve, Triton)
    perf-data/IMAGE.base64.json   the image as base64 text (MLServer, whose REST API is JSON only)
    batch1-shape-flags            --shape for servers that report no max_batch_size (MLServer)

Model files are symbolic links, not copies.
"""

import argparse
import base64
import json
import os
import shutil
import struct
from pathlib import Path

from make_repos import fresh_dir, link, pbtxt_tensors

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODELS = ROOT / "models"
ONNX = MODELS / "efficientnet-lite0" / "1" / "model.onnx"
PILLOW_PREPROCESS = ROOT / "scripts" / "pillow_preprocess.py"

IMAGE_MODEL = "efficientnet-lite0-image"
PREPROCESS_MODEL = "efficientnet-lite0-preprocess"
CLASSIFIER = "efficientnet-lite0"
IMAGE_INPUT = ("image", "STRING", [1])
TENSOR = ("input", "FP32", [3, 224, 224])
LOGITS = ("logits", "FP32", [1000])


def write_ferroserve(root):
    """The bundled repository itself, as shipped: ferroserve needs no code for images.
    A link to the folder, not to each file: ferroserve refuses symbolic links that lead
    outside its repository."""
    repo = root / "ferroserve"
    if repo.is_symlink() or repo.is_file():
        repo.unlink()
    elif repo.exists():
        shutil.rmtree(repo)
    os.symlink(MODELS, repo)


def triton_config(name, backend, inputs, outputs, args, extra=""):
    # No dynamic_batching block (each request runs alone) and no response_cache block.
    return (f'name: "{name}"\n'
            f'backend: "{backend}"\n'
            f"max_batch_size: {args.max_batch}\n"
            + pbtxt_tensors("input", inputs)
            + pbtxt_tensors("output", outputs)
            + f"instance_group [ {{ count: {args.instances} kind: KIND_CPU }} ]\n"
            + extra)


def write_triton(root, args):
    repo = fresh_dir(root / "triton")

    classifier = repo / CLASSIFIER
    (classifier / "1").mkdir(parents=True)
    link(ONNX, classifier / "1" / "model.onnx")
    shutil.copy(HERE / "triton_model.py", classifier / "1" / "model.py")
    (classifier / "config.pbtxt").write_text(triton_config(
        CLASSIFIER, "python", [TENSOR], [LOGITS], args,
        f'parameters {{ key: "intra_op_num_threads" value {{ string_value: "{args.threads}" }} }}\n'))

    preprocess = repo / PREPROCESS_MODEL
    (preprocess / "1").mkdir(parents=True)
    shutil.copy(HERE / "triton_preprocess.py", preprocess / "1" / "model.py")
    shutil.copy(PILLOW_PREPROCESS, preprocess / "1" / "pillow_preprocess.py")
    (preprocess / "config.pbtxt").write_text(triton_config(
        PREPROCESS_MODEL, "python", [IMAGE_INPUT], [TENSOR], args))

    # The ensemble has no instances of its own: Triton's scheduler passes each request's
    # tensors from one step to the next.
    ensemble = repo / IMAGE_MODEL
    (ensemble / "1").mkdir(parents=True)
    (ensemble / "config.pbtxt").write_text(
        f'name: "{IMAGE_MODEL}"\n'
        'platform: "ensemble"\n'
        f"max_batch_size: {args.max_batch}\n"
        + pbtxt_tensors("input", [IMAGE_INPUT])
        + pbtxt_tensors("output", [LOGITS])
        + "ensemble_scheduling {\n  step [\n"
        f'    {{ model_name: "{PREPROCESS_MODEL}" model_version: -1\n'
        '      input_map { key: "image" value: "image" }\n'
        '      output_map { key: "input" value: "preprocessed" } },\n'
        f'    {{ model_name: "{CLASSIFIER}" model_version: -1\n'
        '      input_map { key: "input" value: "preprocessed" }\n'
        '      output_map { key: "logits" value: "logits" } }\n'
        "  ]\n}\n")


def write_mlserver(root, args):
    repo = fresh_dir(root / "mlserver")
    model_dir = repo / IMAGE_MODEL
    model_dir.mkdir()
    link(ONNX, model_dir / "model.onnx")
    # MLServer puts the model folder on sys.path while it loads the implementation.
    shutil.copy(HERE / "mlserver_runtime.py", model_dir / "onnx_runtime.py")
    shutil.copy(HERE / "mlserver_image_runtime.py", model_dir / "image_runtime.py")
    shutil.copy(PILLOW_PREPROCESS, model_dir / "pillow_preprocess.py")
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": IMAGE_MODEL,
        "implementation": "image_runtime.ImageClassifier",
        # Adaptive batching off (no max_batch_size / max_batch_time), as on the others.
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1, 1],
                    "parameters": {"content_type": "base64"}}],
        "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}],
        "parameters": {
            "uri": "./model.onnx",
            "version": "1",
            "extra": {"intra_op_num_threads": args.mlserver_threads},
        },
    }, indent=2) + "\n")


def write_perf_data(root, images):
    """perf_analyzer's --input-data JSON files, one request per file.

    A BYTES element in `b64` content is the element's 4-byte little-endian length, then
    its bytes (perf_analyzer's docs/input_data.md)."""
    data = fresh_dir(root / "perf-data")
    for path in images:
        encoded = path.read_bytes()
        raw = base64.b64encode(struct.pack("<I", len(encoded)) + encoded).decode()
        (data / f"{path.stem}.json").write_text(json.dumps({"data": [{"image": {"b64": raw}}]}))
        text = base64.b64encode(encoded).decode()
        (data / f"{path.stem}.base64.json").write_text(json.dumps({"data": [{"image": [text]}]}))
    (root / "batch1-shape-flags").write_text("--shape=image:1,1\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--images", required=True, nargs="+", type=Path)
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mlserver-threads", type=int, default=2)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write_ferroserve(args.out)
    write_triton(args.out, args)
    write_mlserver(args.out, args)
    write_perf_data(args.out, args.images)


if __name__ == "__main__":
    main()
