"""Running ferroserve as a platform runs Triton: the drain on SIGTERM, Triton's metric
names on a scrape, JSON access logs, and the flags KServe's Triton runtime passes."""

import json
import threading
import time
import urllib.error
import urllib.request

from conftest import IMAGES, ROOT, start_server

MODEL = "efficientnet-lite0"

# What Triton's public Kubernetes example (Grafana dashboard and HPA rule) queries, and
# the rest of Triton's per-model inference and cache metrics.
TRITON_METRICS = [
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    "nv_inference_pending_request_count",
    "nv_cache_num_hits_per_model",
    "nv_cache_num_misses_per_model",
    "nv_cache_hit_duration_per_model",
    "nv_cache_miss_duration_per_model",
]


def classify(http, timeout=30):
    """POSTs cat.jpg to /classify; returns the HTTP status (or the exception)."""
    body = (IMAGES / "cat.jpg").read_bytes()
    request = urllib.request.Request(
        f"http://{http}/v2/models/{MODEL}/classify?top_k=1", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
            assert answer[0]["label"], answer
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def ready(http):
    try:
        with urllib.request.urlopen(f"http://{http}/v2/health/ready", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_sigterm_drains_without_losing_an_accepted_request():
    server = start_server(ROOT / "models", "--model-control-mode", "explicit",
                          "--load-model", MODEL, "--drain-delay-secs", "2",
                          "--exit-timeout-secs", "30")
    results, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            results.append(classify(server.http))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for c in clients:
        c.start()
    time.sleep(1.0)
    served_before = len(results)
    server.process.terminate()
    signalled = time.monotonic()
    # Readiness turns 503 at once, while requests are still served.
    while ready(server.http) != 503:
        assert time.monotonic() - signalled < 1.0, "readiness still 200 a second after SIGTERM"
        time.sleep(0.02)
    time.sleep(0.5)
    # The balancer has stopped sending: the clients finish what they sent, and stop.
    stop.set()
    for c in clients:
        c.join()
    code = server.process.wait(timeout=30)
    assert code == 0, f"exit status {code}"
    assert served_before > 0 and len(results) > served_before, results
    assert all(status == 200 for status in results), [s for s in results if s != 200]


def test_metrics_have_tritons_names():
    server = start_server(ROOT / "models", "--model-control-mode", "explicit",
                          "--load-model", MODEL)
    try:
        assert classify(server.http) == 200
        with urllib.request.urlopen(f"http://{server.metrics}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    for name in TRITON_METRICS:
        assert any(line.startswith(name + "{") and f'model="{MODEL}"' in line
                   for line in text.splitlines()), f"{name} missing from the scrape"
    success = next(line for line in text.splitlines()
                   if line.startswith("nv_inference_request_success{") and f'model="{MODEL}"' in line)
    assert float(success.rsplit(" ", 1)[1]) >= 1, success
    for name in ("process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total"):
        assert any(line.startswith(name + " ") for line in text.splitlines()), f"{name} missing"


def test_a_scrape_passes_promtool():
    """Prometheus's own linter (Debian's prometheus package, installed by
    scripts/python-tests.sh) on a scrape after traffic."""
    import shutil
    import subprocess
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/python-tests.sh installs it"
    server = start_server(ROOT / "models", "--model-control-mode", "explicit", "--load-model", MODEL)
    try:
        assert classify(server.http) == 200
        with urllib.request.urlopen(f"http://{server.metrics}/metrics", timeout=10) as response:
            text = response.read()
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    problems = (checked.stdout + checked.stderr).decode()
    # 0: clean; 3: lint findings; anything else: the scrape does not parse.
    assert checked.returncode in (0, 3), problems
    # The only findings allowed are on Triton's own names (counters without `_total`,
    # `_us` units), kept as Triton spells them so that its dashboards work unchanged.
    findings = [line for line in problems.splitlines() if line.strip()]
    assert all(line.startswith("nv_") for line in findings), problems


def test_json_logs_have_one_access_line_per_request():
    server = start_server(ROOT / "models", "--model-control-mode", "explicit",
                          "--load-model", MODEL, "--log-format", "json",
                          "--log", "warn,access=info")
    try:
        assert classify(server.http) == 200
        deadline = time.monotonic() + 10
        while not any('"access"' in line for line in server.log):
            assert time.monotonic() < deadline, server.log
            time.sleep(0.05)
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    access = [json.loads(line) for line in server.log if '"access"' in line]
    assert len(access) == 1, access
    fields = access[0]["fields"]
    assert fields["model"] == MODEL and fields["status"] == 200, fields
    assert fields["protocol"] == "http" and fields["latency_us"] > 0, fields
    for line in server.log:
        if line.startswith("{"):
            json.loads(line)
        assert "\x1b[" not in line, "no colour codes when stderr is not a terminal"


def test_kserve_triton_flags():
    server = start_server(None, "--model-store=" + str(ROOT / "models"),
                          "--allow-http=true", "--allow-grpc=false",
                          "--model-control-mode", "explicit", "--load-model", MODEL)
    try:
        assert server.grpc == "off"
        assert classify(server.http) == 200
    finally:
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0


def test_single_model_layout_serves_one_onnx_file(tmp_path):
    import shutil
    shutil.copy(ROOT / "models" / MODEL / "1" / "model.onnx", tmp_path / "model.onnx")
    server = start_server(tmp_path, "--model-name", "lite")
    try:
        with urllib.request.urlopen(f"http://{server.http}/v2/models/lite", timeout=10) as response:
            metadata = json.loads(response.read())
        with urllib.request.urlopen(f"http://{server.http}/v2/models/lite/config",
                                    timeout=10) as response:
            config = json.loads(response.read())
    finally:
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0
    assert metadata["inputs"][0]["name"] == "input", metadata
    assert config["name"] == "lite" and config["input"][0]["data_type"] == "TYPE_FP32", config
