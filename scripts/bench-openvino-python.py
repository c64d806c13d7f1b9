#!/usr/bin/env python3
"""OpenVINO from Python, in-process: the reference ferroserve's OpenVINO engine is
measured against (the best OpenVINO Model Server, which runs OpenVINO, can do here).

The same measurement as `ferroserve bench --in-process`: a closed loop of C clients, each
sending one batch-1 request (tests/data/images/cat.input.f32, the cat's preprocessed
tensor) and waiting for its result before sending the next; latency from submit to
result; a warm-up, then a measurement window. OpenVINO runs it the way it is meant to
serve many clients: one compiled model of I streams of T threads each, and an
AsyncInferQueue of C infer requests (OpenVINO's own benchmark_app does the same). Each
arrangement IxT is measured at each concurrency, as ferroserve's are. Threads are not
pinned to cores unless --cpu-pinning YES, as ferroserve does not pin them (on a machine
whose cores other processes share, pinned streams measured slower).

    scripts/bench-openvino-python.py [--model M] [--arrangements 2x1,1x2]
        [--concurrency 1,4,16] [--precision f32|bf16|f16] [--cpu-pinning NO|YES]
        [--duration 10] [--warmup 2] [--json FILE]

The first run installs openvino==2026.4.1 from PyPI into .venv-peers/openvino (ignored by
git) and runs again in it. --model is a folder of a model repository with 1/model.onnx
(default: the bundled efficientnet-lite0); --model-file names the file directly.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-peers" / "openvino"
VERSION = "2026.4.1"


def in_venv():
    """Runs this script again in the virtual environment holding OpenVINO."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit(f"openvino=={VERSION} is not importable in {VENV}")
    if not python.exists():
        print(f"bench-openvino-python: installing openvino=={VERSION} into {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             f"openvino=={VERSION}"],
            check=True,
        )
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


try:
    import numpy as np
    import openvino as ov
except ImportError:
    in_venv()


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index]


def measure(compiled, tensor, concurrency, warmup, duration):
    """Closed loop of `concurrency` requests in flight; throughput and latencies (ms)."""
    queue = ov.AsyncInferQueue(compiled, concurrency)
    latencies = []
    window = {"start": 0.0, "end": 0.0}
    lock = threading.Lock()

    def done(request, submitted):
        finished = time.perf_counter()
        if window["start"] <= finished < window["end"]:
            with lock:
                latencies.append((finished - submitted) * 1000.0)

    queue.set_callback(done)
    now = time.perf_counter()
    window["start"] = now + warmup
    window["end"] = window["start"] + duration
    # One is sent as one is answered: wait for an idle request, then time from its start.
    while time.perf_counter() < window["end"]:
        queue.get_idle_request_id()
        queue.start_async({0: tensor}, time.perf_counter())
    queue.wait_all()
    latencies.sort()
    return {
        "concurrency": concurrency,
        "throughput": len(latencies) / duration,
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "requests": len(latencies),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "efficientnet-lite0"))
    parser.add_argument("--model-file", help="the model file (default: MODEL/1/model.onnx)")
    parser.add_argument("--input", default=str(ROOT / "tests/data/images/cat.input.f32"))
    parser.add_argument("--arrangements", default="2x1,1x2",
                        help="INSTANCESxTHREADS, comma-separated: streams x threads per stream")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--precision", default="f32", choices=["f32", "bf16", "f16"])
    parser.add_argument("--cpu-pinning", default="NO", choices=["NO", "YES"])
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args()

    model_file = Path(args.model_file or Path(args.model) / "1" / "model.onnx")
    core = ov.Core()
    capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    cpu = core.get_property("CPU", "FULL_DEVICE_NAME")
    needs = {"bf16": "BF16", "f16": "FP16"}.get(args.precision)
    if needs and needs not in capabilities:
        sys.exit(f"{args.precision} is not native on {cpu} (capabilities: {' '.join(capabilities)})")
    model = core.read_model(str(model_file))
    row = np.fromfile(args.input, dtype="<f4").reshape(1, 3, 224, 224)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    print(f"OpenVINO {ov.get_version()} from Python on {cpu} ({' '.join(capabilities)}), "
          f"{model_file.relative_to(ROOT) if model_file.is_relative_to(ROOT) else model_file}, "
          f"{args.precision}, CPU pinning {args.cpu_pinning}, batch 1, "
          f"{args.warmup:g} s warm-up + {args.duration:g} s per level")
    print(f"{'arrangement':>11} {'c':>3} {'infer/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    results = []
    for arrangement in args.arrangements.split(","):
        instances, threads = (int(n) for n in arrangement.split("x"))
        compiled = core.compile_model(model, "CPU", {
            "NUM_STREAMS": str(instances),
            "INFERENCE_NUM_THREADS": str(instances * threads),
            "INFERENCE_PRECISION_HINT": args.precision,
            "ENABLE_CPU_PINNING": args.cpu_pinning,
        })
        got = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        if got != args.precision:
            sys.exit(f"OpenVINO compiled in {got}, not {args.precision}")
        for concurrency in concurrencies:
            level = measure(compiled, row, concurrency, args.warmup, args.duration)
            level["arrangement"] = arrangement
            results.append(level)
            print(f"{arrangement:>11} {concurrency:>3} {level['throughput']:9.1f} "
                  f"{level['p50_ms']:8.2f} {level['p90_ms']:8.2f} {level['p99_ms']:8.2f}",
                  flush=True)
        del compiled
    print("best per concurrency:")
    for concurrency in concurrencies:
        best = max((r for r in results if r["concurrency"] == concurrency),
                   key=lambda r: r["throughput"])
        print(f"  c={concurrency}: {best['arrangement']} {best['throughput']:.1f} infer/s, "
              f"p50 {best['p50_ms']:.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "engine": f"openvino {ov.get_version()} (python)",
            "cpu": cpu,
            "model": str(model_file),
            "precision": args.precision,
            "runs": results,
        }, indent=2))


if __name__ == "__main__":
    main()
