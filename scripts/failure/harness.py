"""What the failure scripts share: a real ferroserve on ephemeral ports, its resident
memory sampled while it runs, and `ferroserve bench` as the load.

The binary is FERROSERVE_BIN, else target/release/ferroserve, else target/debug/ferroserve.
Only the standard library is used, so the scripts run from any Python 3.9+.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "tests" / "data" / "images"
READY = re.compile(r"ready: HTTP ([\d.:]+|off), gRPC ([\d.:]+|off), metrics ([\d.:]+)")


def binary() -> str:
    if os.environ.get("FERROSERVE_BIN"):
        return os.environ["FERROSERVE_BIN"]
    for build in ("release", "debug"):
        path = ROOT / "target" / build / "ferroserve"
        if path.exists():
            return str(path)
    sys.exit("no ferroserve binary: run `cargo build --release` or set FERROSERVE_BIN")


def build_name() -> str:
    return "debug" if "/debug/" in binary() else "release"


class Server:
    """`ferroserve serve` with `args`, started on ephemeral ports and ready."""

    def __init__(self, *args, limit_files=None):
        command = [binary(), "serve", "--host", "127.0.0.1", "--http-port", "0",
                   "--grpc-port", "0", "--metrics-port", "0", *args]
        preexec = None
        if limit_files:
            import resource

            def preexec():
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit_files, limit_files))
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                                        preexec_fn=preexec)
        self.log = []
        for line in self.process.stderr:
            self.log.append(line)
            found = READY.search(line)
            if found:
                break
        else:
            self.process.wait(timeout=10)
            raise RuntimeError("ferroserve did not start:\n" + "".join(self.log))
        self.http, self.grpc, self.metrics = found.groups()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.process.stderr:
            self.log.append(line)

    @property
    def url(self) -> str:
        return f"http://{self.http}"

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def get(self, path: str, timeout: float = 5.0):
        """(status, seconds) of a GET; status 0 when the connection failed."""
        started = time.monotonic()
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as reply:
                reply.read()
                status = reply.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = 0
        return status, time.monotonic() - started

    def post(self, path: str, body: bytes, timeout: float = 60.0):
        """(status, body) of a POST; status 0 when no answer came."""
        request = urllib.request.Request(self.url + path, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError as error:
            return 0, str(error).encode()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


class RssSampler:
    """Samples a server's resident memory every `period` seconds in a thread."""

    def __init__(self, server: Server, period: float = 0.25):
        self.server, self.period = server, period
        self.samples = []  # (monotonic seconds, MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self.server.rss_mb()))
            except (OSError, AttributeError):
                return
            self._stop.wait(self.period)

    def peak(self, since: float = 0.0) -> float:
        return max((mb for t, mb in self.samples if t >= since), default=0.0)

    def stop(self):
        self._stop.set()
        self._thread.join()


def bench(server: Server, *args, check: bool = True) -> dict:
    """Runs `ferroserve bench` against `server` with `args`; returns its JSON report, with
    the end of its error output as "failed" if it failed (and `check` is off)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        command = [binary(), "bench", "--url", server.url, "--grpc-url", f"http://{server.grpc}",
                   "--quiet", "--json", report.name, *args]
        done = subprocess.run(command, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"bench failed ({done.returncode}): {done.stderr[-2000:]}")
        found = json.loads(Path(report.name).read_text() or "{}")
        if done.returncode != 0:
            found["failed"] = done.stderr.strip()[-500:]
        return found


def table(rows, header):
    """A Markdown table of `rows` (lists of cells) under `header`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    return "unknown CPU"
