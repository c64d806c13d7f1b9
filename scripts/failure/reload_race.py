"""Reloads and unloads under load. 4 clients send requests (half images to
efficientnet-lite0-image's /classify, half tensors to efficientnet-lite0) while both models
are reloaded RELOADS times through the repository API: no request may fail. Then one model
is unloaded under the same load: requests for it must be refused at once (503 or 400),
none may hang, and the other model must keep serving.

    scripts/failure/reload_race.py [--quick] [--reloads 100] [--json FILE]
"""

import argparse
import json
import sys
import threading
import time

from harness import IMAGES, Server, build_name, cpu_name, table

TENSOR_MODEL, IMAGE_MODEL = "efficientnet-lite0", "efficientnet-lite0-image"


def infer_body():
    """A binary-extension request of cat's input tensor."""
    tensor = (IMAGES / "cat.input.f32").read_bytes()
    header = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(tensor)}}]}).encode()
    return header + tensor, len(header)


class Load:
    """4 clients until stopped, counting answers by model and status, and the slowest."""

    def __init__(self, server):
        import urllib.request
        self.server, self.stop = server, threading.Event()
        self.answers, self.slowest, self.lock = {}, 0.0, threading.Lock()
        image = (IMAGES / "cat.jpg").read_bytes()
        body, header_length = infer_body()
        requests = {
            IMAGE_MODEL: lambda: urllib.request.Request(
                f"{server.url}/v2/models/{IMAGE_MODEL}/classify?top_k=1", data=image, method="POST"),
            TENSOR_MODEL: lambda: urllib.request.Request(
                f"{server.url}/v2/models/{TENSOR_MODEL}/infer", data=body, method="POST",
                headers={"Inference-Header-Content-Length": str(header_length)}),
        }
        self.threads = [threading.Thread(target=self._client, args=(requests[m], m))
                        for m in (IMAGE_MODEL, TENSOR_MODEL, IMAGE_MODEL, TENSOR_MODEL)]
        for t in self.threads:
            t.start()

    def _client(self, request, model):
        import urllib.error
        import urllib.request
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request(), timeout=30) as reply:
                    reply.read()
                    status = reply.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = "no answer"
            with self.lock:
                key = (model, status)
                self.answers[key] = self.answers.get(key, 0) + 1
                self.slowest = max(self.slowest, time.monotonic() - started)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        with self.lock:
            answers, self.answers = self.answers, {}
            slowest, self.slowest = self.slowest, 0.0
        return answers, slowest


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reloads", type=int, default=100)
    parser.add_argument("--json")
    args = parser.parse_args()
    reloads = 5 if args.quick else args.reloads
    with Server("--model-control-mode", "explicit", "--load-model", TENSOR_MODEL,
                "--load-model", IMAGE_MODEL) as server:
        load = Load(server)
        failed_loads = 0
        for _ in range(reloads):
            for model in (TENSOR_MODEL, IMAGE_MODEL):
                status, _ = server.post(f"/v2/repository/models/{model}/load", b"")
                failed_loads += status != 200
        reload_answers, reload_slowest = load.finish()

        load = Load(server)
        time.sleep(1)
        unloaded, _ = server.post(f"/v2/repository/models/{IMAGE_MODEL}/unload", b"")
        time.sleep(2)
        unload_answers, unload_slowest = load.finish()
    lost = {k: v for k, v in reload_answers.items() if k[1] != 200}
    hung = {k: v for k, v in unload_answers.items() if k[1] == "no answer"}
    tensor_failed = {k: v for k, v in unload_answers.items() if k[0] == TENSOR_MODEL and k[1] != 200}
    print(f"{reloads} reloads of each model under 4 clients, then an unload; {build_name()} build, "
          f"{cpu_name()}")
    rows = [["reloads", sum(reload_answers.values()), lost or "none", f"{reload_slowest:.2f}",
             f"{failed_loads} failed loads"],
            ["unload", sum(unload_answers.values()),
             {f"{m} {s}": n for (m, s), n in sorted(unload_answers.items(), key=str)},
             f"{unload_slowest:.2f}", f"unload answered {unloaded}"]]
    print(table(rows, ["phase", "requests", "answers other than 200 / all answers", "slowest s",
                       "control"]))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"reloads": reloads, "requests": sum(reload_answers.values()),
                       "lost": {str(k): v for k, v in lost.items()},
                       "unload_answers": {str(k): v for k, v in unload_answers.items()}}, out, indent=1)
    ok = not lost and not failed_loads and not hung and not tensor_failed and unloaded == 200
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
