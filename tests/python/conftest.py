"""Starts one real ferroserve server for the whole session, on ephemeral ports, and
hands its addresses to the tests. The binary is FERROSERVE_BIN, else target/debug/ferroserve."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "data" / "images"


class RunningServer:
    def __init__(self, process, http, grpc, metrics, repository, log):
        self.process = process
        self.http = http
        self.grpc = grpc
        self.metrics = metrics
        self.repository = repository
        # Every stderr line after the ready line, as it arrives.
        self.log = log


def start_server(repository, *extra):
    binary = os.environ.get("FERROSERVE_BIN", str(ROOT / "target" / "debug" / "ferroserve"))
    command = [binary, "serve", "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "0",
               "--metrics-port", "0", *extra]
    if repository is not None:
        command += ["--model-repository", str(repository)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:
        lines.append(line)
        found = re.search(r"ready: HTTP ([\d.:]+|off), gRPC ([\d.:]+|off), metrics ([\d.:]+)", line)
        if found:
            break
    else:
        process.wait(timeout=10)
        raise RuntimeError("ferroserve did not start:\n" + "".join(lines))
    # Keep draining stderr so the server never blocks on a full pipe.
    import threading
    log = []

    def drain():
        for line in process.stderr:
            log.append(line)
            sys.stderr.write(line)

    threading.Thread(target=drain, daemon=True).start()
    return RunningServer(process, found.group(1), found.group(2), found.group(3), repository, log)


def stop_server(server):
    server.process.terminate()
    code = server.process.wait(timeout=60)
    assert code == 0, f"ferroserve exited with {code} on SIGTERM"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("models")
    for model in ("efficientnet-lite0", "efficientnet-lite0-image"):
        shutil.copytree(ROOT / "models" / model, repository / model, symlinks=False)
    running = start_server(repository)
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def expected():
    return json.loads((IMAGES / "expected.json").read_text())


@pytest.fixture(scope="session")
def reference_inputs():
    import numpy as np
    return {
        name: np.fromfile(IMAGES / f"{Path(name).stem}.input.f32", dtype="<f4").reshape(1, 3, 224, 224)
        for name in ("cat.jpg", "coffee.jpg", "motorcycle.jpg", "astronaut.png")
    }
