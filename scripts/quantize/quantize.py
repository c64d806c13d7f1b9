"""Turns an f32 ONNX image classifier into an int8 one (QDQ), from calibration images, and
chooses the recipe by accuracy: each candidate is scored by how often it gives the f32
model's top-1 (and the same top-5) on images it was not calibrated on.

    scripts/quantize/quantize.sh [--model models/efficientnet-lite0] [--version 1]
                                 [--images tests/data/accuracy] [--out DIR]

The model folder's config.pbtxt gives the preprocessing (its preprocess.* parameters), so
calibration sees what the server feeds the model. The accuracy set is split by photo:
photos with an even index (sorted by name) and their variants calibrate, the others are
held out. Writes DIR/1/model.onnx, DIR/config.pbtxt (the source's, renamed, with the
chosen recipe and its scores) and DIR/quantization.json (every candidate's scores).
"""

import argparse
import io
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]


def preprocessing(config_text: str):
    """resize_short_side, crop, mean, std from the preprocess.* parameters."""
    params = dict(re.findall(r'key:\s*"preprocess\.(\w+)"\s*value\s*\{\s*string_value:\s*"([^"]*)"',
                             config_text))
    crop = int(params.get("crop", "224").split("x")[0])
    short = int(params.get("resize_short_side", round(crop * 256 / 224)))
    triple = lambda v: [float(x) for x in v.split(",")] * (3 if "," not in v else 1)
    mean = triple(params.get("mean", "123.675,116.28,103.53"))
    std = triple(params.get("std", "58.395,57.12,57.375"))
    return short, crop, np.array(mean, np.float32), np.array(std, np.float32)


def tensor(path: Path, short: int, crop: int, mean, std) -> np.ndarray:
    """Pillow's bicubic resize of the short side, centre crop, (p - mean) / std, NCHW."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(path.read_bytes()))).convert("RGB")
    w, h = image.size
    scale = short / min(w, h)
    size = (round(w * scale), round(h * scale))
    image = image.resize(size, Image.BICUBIC)
    left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
    image = image.crop((left, top, left + crop, top + crop))
    hwc = (np.asarray(image, dtype=np.float32) - mean) / std
    return np.ascontiguousarray(hwc.transpose(2, 0, 1))[np.newaxis]


def split(images: Path):
    photos = sorted((images / "photos").glob("*.jpg"))
    calibrate, held_out = [], []
    for i, photo in enumerate(photos):
        family = [photo, *sorted((images / "variants").glob(f"{photo.stem}.*.jpg"))]
        (calibrate if i % 2 == 0 else held_out).extend(family)
    return calibrate, held_out


def session(model) -> ort.InferenceSession:
    """One-thread ONNX Runtime session of a model file or an in-memory model."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def logits(sess, inputs):
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: x})[0][0] for x in inputs]


def agreement(reference, candidate):
    top1 = np.mean([np.argmax(r) == np.argmax(c) for r, c in zip(reference, candidate)])
    top5 = np.mean([set(np.argsort(r)[-5:]) == set(np.argsort(c)[-5:])
                    for r, c in zip(reference, candidate)])
    return round(float(top1), 4), round(float(top5), 4)


def recipes(model_path: Path, calibration, input_name):
    """Candidate int8 models, by name: ONNX Runtime's static QDQ quantization, and NNCF's
    post-training quantization as it comes and with full bias correction and the most
    sensitive layers (the first convolutions, the classifier) left in f32."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    import nncf
    import tempfile

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {input_name: x}

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ort.onnx"
        quantize_static(str(model_path), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        yield "onnxruntime-minmax-per-channel", onnx.load(str(out))
    model = onnx.load(str(model_path))
    dataset = nncf.Dataset(calibration, lambda x: {input_name: x})
    yield "nncf", nncf.quantize(model, dataset, subset_size=len(calibration))
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    heads = [n.name for n in model.graph.node if n.op_type in ("Gemm", "MatMul")]
    for first in (3, 6):
        keep = nncf.IgnoredScope(names=convs[:first] + heads)
        yield (f"nncf-bias-correction-f32-first{first}-and-classifier",
               nncf.quantize(model, dataset, subset_size=len(calibration),
                             fast_bias_correction=False, ignored_scope=keep))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models/efficientnet-lite0")
    parser.add_argument("--version", default="1")
    parser.add_argument("--images", type=Path, default=ROOT / "tests/data/accuracy")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or ROOT / "tests/data/models" / f"{args.model.name}-int8"
    config_text = (args.model / "config.pbtxt").read_text()
    prep = preprocessing(config_text)
    calibrate_files, held_out_files = split(args.images)
    calibration = [tensor(p, *prep) for p in calibrate_files]
    held_out = [tensor(p, *prep) for p in held_out_files]
    model_path = args.model / args.version / "model.onnx"
    reference_session = session(model_path)
    input_name = reference_session.get_inputs()[0].name
    reference = logits(reference_session, held_out)
    scores, best = [], None
    for name, candidate in recipes(model_path, calibration, input_name):
        started = time.time()
        top1, top5 = agreement(reference, logits(session(candidate), held_out))
        scores.append({"recipe": name, "top1_agreement": top1, "top5_agreement": top5})
        print(f"{name}: top-1 agreement {top1:.3f}, top-5 {top5:.3f} "
              f"({len(held_out)} held-out images, scored in {time.time() - started:.0f} s)", flush=True)
        if best is None or (top1, top5) > (best[1]["top1_agreement"], best[1]["top5_agreement"]):
            best = (candidate, scores[-1])
    model, chosen = best
    (out / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / "1" / "model.onnx"))
    name = out.name
    header = (f"# {name}: {args.model.name} quantized to int8 (QDQ) by scripts/quantize/quantize.sh,\n"
              f"# recipe {chosen['recipe']}, calibrated on {len(calibration)} images of "
              f"{args.images.relative_to(ROOT) if args.images.is_relative_to(ROOT) else args.images};\n"
              f"# on {len(held_out)} held-out images it gives the f32 model's top-1 "
              f"{chosen['top1_agreement']:.1%} of the time and its top-5 {chosen['top5_agreement']:.1%}.\n"
              f"# Its precision is int8 (INFERENCE_PRECISION_HINT below): the weights and activations\n"
              f"# are int8 in the graph itself, on ONNX Runtime and on OpenVINO alike.\n")
    body = re.sub(r'name:\s*"[^"]*"', f'name: "{name}"', config_text, count=1)
    body = re.sub(r'(?m)^#.*\n(?=(#.*\n)*parameters \{ key: "INFERENCE_PRECISION_HINT")', "", body)
    body = re.sub(r'(?m)^parameters \{ key: "INFERENCE_PRECISION_HINT".*\n', "", body)
    body += 'parameters { key: "INFERENCE_PRECISION_HINT" value { string_value: "int8" } }\n'
    (out / "config.pbtxt").write_text(header + body)
    labels = args.model / "labels.txt"
    if labels.exists():
        shutil.copy(labels, out / "labels.txt")
    (out / "quantization.json").write_text(json.dumps(
        {"source": f"{args.model.name}/{args.version}/model.onnx", "chosen": chosen["recipe"],
         "calibration_images": [str(p.relative_to(args.images)) for p in calibrate_files],
         "held_out_images": [str(p.relative_to(args.images)) for p in held_out_files],
         "candidates": scores}, indent=1) + "\n")
    print(f"wrote {out}: {chosen}")


if __name__ == "__main__":
    main()
