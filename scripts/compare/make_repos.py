"""Writes one model repository per server for one ONNX model.

    make_repos.py --model NAME --onnx PATH --out DIR [--ferroserve-config FILE]
                  [--instances 2] [--max-batch 8] [--threads 1] [--mlserver-threads 1]
                  [--input-tensor FILE]

Tensor names, data types and shapes come from the ONNX file itself, so the three servers
see the same signature. Layout under DIR:

    ferroserve/NAME/{config.pbtxt, 1/model.onnx}       ferroserve's own config, or a minimal one
    triton/NAME/{config.pbtxt, 1/model.py, 1/model.onnx}   Python backend running onnxruntime
    mlserver/NAME/{model-settings.json, onnx_runtime.py, model.onnx}   custom MLModel
    perf-data/INPUT_NAME, batch1-shape-flags                 perf_analyzer's request data

The model files are links to the ONNX file, not copies (ferroserve's a hard link).
"""

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent

# ONNX element type names (as onnxruntime prints them) to KServe v2 / Triton names.
ONNX_TO_V2 = {"tensor(float)": "FP32", "tensor(float16)": "FP16", "tensor(double)": "FP64",
              "tensor(int64)": "INT64", "tensor(int32)": "INT32", "tensor(uint8)": "UINT8"}


def signature(onnx_path):
    """[(name, v2 datatype, dims without the batch dimension)] for inputs and outputs."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def describe(args):
        out = []
        for arg in args:
            dims = [d if isinstance(d, int) else -1 for d in arg.shape[1:]]
            out.append((arg.name, ONNX_TO_V2[arg.type], dims))
        return out

    return describe(session.get_inputs()), describe(session.get_outputs())


def fresh_dir(path):
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def link(target, link_path):
    os.symlink(os.path.abspath(target), link_path)


def pbtxt_tensors(kind, tensors):
    items = ",\n".join(
        f'  {{ name: "{n}" data_type: TYPE_{t} dims: [ {", ".join(map(str, d))} ] }}'
        for n, t, d in tensors)
    return f"{kind} [\n{items}\n]\n"


def write_ferroserve(root, args):
    model_dir = fresh_dir(root / "ferroserve" / args.model)
    (model_dir / "1").mkdir()
    # A hard link (or a copy), not a symbolic link: ferroserve refuses symbolic links that
    # lead outside its repository.
    try:
        os.link(args.onnx, model_dir / "1" / "model.onnx")
    except OSError:
        shutil.copy(args.onnx, model_dir / "1" / "model.onnx")
    if args.ferroserve_config:
        # The project's own config (and its labels), as a user of ferroserve would deploy it.
        src = Path(args.ferroserve_config)
        shutil.copy(src, model_dir / "config.pbtxt")
        for extra in src.parent.glob("*.txt"):
            shutil.copy(extra, model_dir / extra.name)
    else:
        # Minimal config: ferroserve completes inputs and outputs from the ONNX file.
        (model_dir / "config.pbtxt").write_text(
            f'name: "{args.model}"\n'
            'backend: "onnxruntime"\n'
            f"max_batch_size: {args.max_batch}\n"
            f"instance_group [ {{ count: {args.instances} kind: KIND_CPU }} ]\n")


def write_triton(root, args, inputs, outputs):
    model_dir = fresh_dir(root / "triton" / args.model)
    (model_dir / "1").mkdir()
    link(args.onnx, model_dir / "1" / "model.onnx")
    shutil.copy(HERE / "triton_model.py", model_dir / "1" / "model.py")
    # No dynamic_batching block (each request runs alone, as in ferroserve's config) and no
    # response_cache block (the cache stays off).
    (model_dir / "config.pbtxt").write_text(
        f'name: "{args.model}"\n'
        'backend: "python"\n'
        f"max_batch_size: {args.max_batch}\n"
        + pbtxt_tensors("input", inputs)
        + pbtxt_tensors("output", outputs)
        + f"instance_group [ {{ count: {args.instances} kind: KIND_CPU }} ]\n"
        f'parameters {{ key: "intra_op_num_threads" value {{ string_value: "{args.threads}" }} }}\n')


def write_mlserver(root, args, inputs, outputs):
    repo = root / "mlserver"
    model_dir = fresh_dir(repo / args.model)
    link(args.onnx, model_dir / "model.onnx")
    # MLServer puts the model folder on sys.path while it loads the implementation.
    shutil.copy(HERE / "mlserver_runtime.py", model_dir / "onnx_runtime.py")

    def tensors(items):
        return [{"name": n, "datatype": t, "shape": [-1, *d]} for n, t, d in items]

    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": args.model,
        "implementation": "onnx_runtime.OnnxRuntimeModel",
        # max_batch_size / max_batch_time are left out: MLServer's adaptive batching stays
        # off, as dynamic batching does on the two other servers.
        "inputs": tensors(inputs),
        "outputs": tensors(outputs),
        "parameters": {
            "uri": "./model.onnx",
            "version": "1",
            "extra": {"intra_op_num_threads": args.mlserver_threads},
        },
    }, indent=2) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--onnx", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ferroserve-config")
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mlserver-threads", type=int, default=1)
    p.add_argument("--input-tensor", help="raw float32 file for perf_analyzer's requests")
    args = p.parse_args()

    inputs, outputs = signature(args.onnx)
    root = Path(args.out)
    write_ferroserve(root, args)
    write_triton(root, args, inputs, outputs)
    write_mlserver(root, args, inputs, outputs)
    write_perf_data(root, args, inputs)


def write_perf_data(root, args, inputs):
    """perf_analyzer's --input-data directory (one raw batch-1 file per input, named after
    it) and the --shape flags for servers that report no max_batch_size (MLServer).

    The reference image tensor when given, else a fixed pseudo-random one: perf_analyzer's
    own random bytes include NaN and Inf, which JSON cannot carry and which can send a CPU
    into slow paths."""
    data = fresh_dir(root / "perf-data")
    rng = np.random.default_rng(0)
    flags = []
    for name, datatype, dims in inputs:
        if datatype != "FP32" or -1 in dims:
            raise SystemExit(f"{name}: only fixed-shape FP32 inputs are supported, got {datatype} {dims}")
        count = int(np.prod(dims))
        tensor = None
        if args.input_tensor and os.path.exists(args.input_tensor):
            tensor = np.fromfile(args.input_tensor, dtype=np.float32)
            if tensor.size != count:
                tensor = None
        if tensor is None:
            tensor = rng.uniform(-1.0, 1.0, count).astype(np.float32)
        tensor.tofile(data / name)
        flags.append(f"--shape={name}:{','.join(map(str, [1, *dims]))}")
    (root / "batch1-shape-flags").write_text(" ".join(flags) + "\n")


if __name__ == "__main__":
    main()
