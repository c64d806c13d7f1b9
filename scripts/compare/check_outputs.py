"""Sends one reference tensor to a running server over HTTP and gRPC and checks the answer.

    check_outputs.py --model NAME --onnx PATH --tensor FILE --http HOST:PORT --grpc HOST:PORT [--json-only]

The expected output is computed here with onnxruntime on the same ONNX file. Checks: the
output's name and shape [1, classes], the same top-1 class, and values within a tolerance
(different thread counts and builds may reorder float sums). --json-only sends JSON
tensors over HTTP, for servers without the binary tensor extension (MLServer).
Prints one line per protocol; exits 1 on a mismatch.
"""

import argparse
import sys

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--onnx", required=True)
    p.add_argument("--tensor", required=True, help="raw float32 file, one [C,H,W] image")
    p.add_argument("--http", required=True)
    p.add_argument("--grpc", required=True)
    p.add_argument("--json-only", action="store_true")
    p.add_argument("--server", default="server", help="name to print")
    args = p.parse_args()

    session = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    in_meta, out_meta = session.get_inputs()[0], session.get_outputs()[0]
    image_shape = [d for d in in_meta.shape[1:]]
    batch = np.fromfile(args.tensor, dtype=np.float32).reshape([1, *image_shape])
    (expected,) = session.run([out_meta.name], {in_meta.name: batch})

    failed = False
    for protocol, module, url in (("http", httpclient, args.http), ("grpc", grpcclient, args.grpc)):
        client = module.InferenceServerClient(url=url)
        tensor = module.InferInput(in_meta.name, list(batch.shape), "FP32")
        wanted = module.InferRequestedOutput(out_meta.name)
        if protocol == "http":
            binary = not args.json_only
            tensor.set_data_from_numpy(batch, binary_data=binary)
            wanted = httpclient.InferRequestedOutput(out_meta.name, binary_data=binary)
        else:
            tensor.set_data_from_numpy(batch)
        result = client.infer(args.model, [tensor], outputs=[wanted])
        got = result.as_numpy(out_meta.name)
        ok = got is not None and got.shape == expected.shape
        diff = float(np.max(np.abs(got - expected))) if ok else float("nan")
        ok = ok and int(got.argmax()) == int(expected.argmax()) and diff < 1e-3 * max(1.0, float(np.max(np.abs(expected))))
        print(f"check {args.server:<10} {args.model:<20} {protocol:<4} shape {None if got is None else list(got.shape)} "
              f"top-1 {None if got is None else int(got.argmax())} (expected {int(expected.argmax())}) "
              f"max |diff| {diff:.2e} {'ok' if ok else 'MISMATCH'}")
        failed |= not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
