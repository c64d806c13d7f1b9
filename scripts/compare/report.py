"""Machine facts and the comparison report of scripts/compare.sh.

    report.py machine                                   JSON facts about this machine, on stdout
    report.py report --raw DIR --md FILE --charts DIR   docs/comparison.md and its PNG charts
    report.py images --raw DIR --md FILE --charts DIR   the image workload's section of it

`report` reads what compare.sh left in the raw folder: perf_analyzer CSVs named
SERVER__MODEL__PROTOCOL__cN.csv (with SERVER__MODEL__PROTOCOL__cN.unstable beside a run that
missed the stability target), ferroserve-in-process__MODEL.json from `ferroserve bench`,
notes.md (optional, printed under the title: say there when rows were measured again),
SERVER.server.json (each server's GET /v2), settings.json, machine.json and checks.txt.
It rewrites the whole file but keeps the image workload's section as it was.

`images` reads what compare-images.sh left in its raw folder: perf_analyzer CSVs named
SERVER__IMAGE__PROTOCOL__cN.csv (IMAGE: the file's stem), ferroserve-classify__IMAGE.json
from `ferroserve bench --protocol image`, ferroserve-cli__IMAGE.txt (the summary line of
`ferroserve classify`), and the same settings, machine and check files. It replaces only
the section between IMAGES_BEGIN and IMAGES_END (appending it the first time).
"""

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

SERVERS = ["ferroserve", "ferroserve-tune", "triton", "mlserver"]
PROTOCOLS = ["http", "http-json", "grpc", "in-process"]
PROTOCOL_NAMES = {"http": "HTTP (binary tensors)", "http-json": "HTTP (JSON tensors)",
                  "grpc": "gRPC", "in-process": "in-process (no network)"}
SERVER_COLORS = {"ferroserve": "tab:red", "ferroserve-tune": "tab:orange",
                 "triton": "tab:green", "mlserver": "tab:blue"}
PROTOCOL_STYLES = {"http": "-", "http-json": ":", "grpc": "--", "in-process": "-."}
ANY_ROW = {"server": "ferroserve", "protocol": "http", "concurrency": 0}


def machine():
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    os_name = platform.system()
    release = Path("/etc/os-release")
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    facts = {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
             "os": os_name, "kernel": platform.release()}
    return {**facts, **lscpu()}


def lscpu():
    """The CPU as lscpu names it: model name, family and model numbers, hypervisor."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    wanted = {"Model name": "lscpu_model_name", "CPU family": "cpu_family", "Model": "cpu_model",
              "Hypervisor vendor": "hypervisor"}
    return {key: fields[name].strip() for name, key in wanted.items() if name in fields}


def cpu_text(host):
    """'AMD EPYC (lscpu: family 25, model 1; KVM guest)', or what of it is known."""
    name = host.get("lscpu_model_name", host["cpu"])
    details = []
    if "cpu_family" in host:
        details.append(f"family {host['cpu_family']}, model {host.get('cpu_model', '?')}")
    if "hypervisor" in host:
        details.append(f"{host['hypervisor']} guest")
    return f"{name} (lscpu: {'; '.join(details)})" if details else name


def perf_analyzer_rows(raw):
    """[{server, model, protocol, concurrency, throughput, p50_ms, p99_ms, unstable}] from
    the CSVs SERVER__MODEL__PROTOCOL__cN.csv (MODEL: the image's stem in the image workload)."""
    rows = []
    for path in sorted(raw.glob("*__*__*__c*.csv")):
        server, model, protocol, c = path.stem.split("__")
        with open(path) as f:
            record = next(csv.DictReader(f))
        rows.append({
            "server": server, "model": model, "protocol": protocol,
            "concurrency": int(c[1:]),
            "throughput": float(record["Inferences/Second"]),
            "p50_ms": int(record["p50 latency"]) / 1000,
            "p99_ms": int(record["p99 latency"]) / 1000,
            "unstable": path.with_suffix(".unstable").exists(),
        })
    return rows


def load_rows(raw):
    """perf_analyzer's rows and the in-process rows of `ferroserve bench`."""
    rows = perf_analyzer_rows(raw)
    for path in sorted(raw.glob("ferroserve-in-process__*.json")):
        model = path.stem.split("__", 1)[1]
        bench = json.loads(path.read_text())
        # Runs per arrangement (instances x threads) where the bench reports them, else
        # the top-level runs.
        groups = [(a.get("arrangement"), a["runs"]) for a in bench.get("arrangements", [])]
        # The ceiling: the best arrangement at each concurrency.
        groups.append(("best", bench.get("runs", [])))
        for arrangement, runs in groups:
            for run in runs:
                rows.append({
                    "server": "ferroserve", "model": model,
                    "protocol": f"in-process {arrangement}" if arrangement else "in-process",
                    "concurrency": int(run["concurrency"]),
                    "throughput": float(run["throughput"]),
                    "p50_ms": float(run["p50_ms"]), "p99_ms": float(run["p99_ms"]),
                    "unstable": False,
                })
    return rows


def base_protocol(protocol):
    return protocol.split()[0]


def order(row):
    protocol = base_protocol(row["protocol"])
    return (PROTOCOLS.index(protocol) if protocol in PROTOCOLS else 99, row["protocol"],
            row["concurrency"],
            SERVERS.index(row["server"]) if row["server"] in SERVERS else 99)


def read_json(path, default):
    return json.loads(path.read_text()) if path.exists() else default


def version_of(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def mlserver_workers_text(workers):
    if workers == 0:
        return ("inference runs in the server process itself, one request at a time, "
                "with no hand-off to a worker process")
    return f"inference in {workers} worker processes, each with its own copy of the model"


def ratio_table(rows, columns, baseline, order_key):
    """A markdown table of `rows` (one model's or one image's), each peer's row set against
    the ferroserve row at the key `baseline(row)` gives: (protocol, concurrency). `columns`
    names the protocol column, the rate column and the rate in the ratio's heading."""
    way, rate, ratio = columns
    ferro = {(r["protocol"], r["concurrency"]): r for r in rows if r["server"] == "ferroserve"}
    lines = [f"| server | {way} | concurrency | {rate} | p50 ms | p99 ms | {ratio} / ferroserve | p99 / ferroserve |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sorted(rows, key=order_key):
        base = ferro.get(baseline(r))
        if r["server"] == "ferroserve" or base is None:
            tput_ratio = p99_ratio = "—"
        else:
            tput_ratio = f"{r['throughput'] / base['throughput']:.2f}x"
            p99_ratio = f"{r['p99_ms'] / base['p99_ms']:.2f}x"
        mark = " *" if r["unstable"] else ""
        level = "—" if r["concurrency"] is None else r["concurrency"]
        lines.append(f"| {r['server']} | {r['protocol']} | {level} | "
                     f"{r['throughput']:.1f}{mark} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{tput_ratio} | {p99_ratio} |")
    return "\n".join(lines)


def model_table(rows, model):
    return ratio_table([r for r in rows if r["model"] == model], ("protocol", "infer/s", "throughput"),
                       lambda r: (r["protocol"], r["concurrency"]), order)


def charts(rows, model, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for metric, label, log_y in (("throughput", "inferences / s", False),
                                 ("p99_ms", "p99 latency (ms)", True)):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        series = sorted({(r["server"], r["protocol"]) for r in rows if r["model"] == model},
                        key=lambda sp: (SERVERS.index(sp[0]), order({**ANY_ROW, "protocol": sp[1]})))
        for server, protocol in series:
            points = sorted((r["concurrency"], r[metric]) for r in rows
                            if r["model"] == model and r["server"] == server
                            and r["protocol"] == protocol)
            xs, ys = zip(*points)
            ax.plot(xs, ys, PROTOCOL_STYLES.get(base_protocol(protocol), "-"), marker="o",
                    color=SERVER_COLORS[server], label=f"{server}, {protocol}")
        ax.set_xscale("log", base=2)
        levels = sorted({r["concurrency"] for r in rows if r["model"] == model})
        ax.set_xticks(levels, [str(c) for c in levels])
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("concurrent requests (perf_analyzer --concurrency-range)")
        ax.set_ylabel(label)
        ax.set_title(f"{model}: {label} vs concurrency")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        name = f"{model}-{'throughput' if metric == 'throughput' else 'p99'}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def report(raw, md_path, chart_dir):
    rows = load_rows(raw)
    if not rows:
        sys.exit(f"report: no results in {raw}")
    settings = read_json(raw / "settings.json", {})
    host = read_json(raw / "machine.json", machine())
    servers = {s: read_json(raw / f"{s}.server.json", {}) for s in SERVERS}
    checks = (raw / "checks.txt").read_text().strip() if (raw / "checks.txt").exists() else ""
    models = sorted({r["model"] for r in rows}, key=lambda m: (m != "efficientnet-lite0", m))
    chart_dir.mkdir(parents=True, exist_ok=True)
    rel_charts = os.path.relpath(chart_dir, md_path.parent)

    quick = settings.get("quick") == 1
    instances, threads = settings.get("instances", 2), settings.get("threads", 1)
    workers, ml_threads = settings.get("mlserver_workers", 0), settings.get("mlserver_threads", 2)
    ferro_version = servers["ferroserve"].get("version", "?")
    triton_version = servers["triton"].get("version", "?")
    mlserver_version = servers["mlserver"].get("version", version_of("mlserver"))

    out = ["# ferroserve against Triton and MLServer", ""]
    out.append("Generated by `scripts/compare.sh`, and its image workload section by "
               "`scripts/compare-images.sh` (both through `scripts/compare/report.py`); do not "
               "edit by hand.")
    out.append("")
    notes = raw / "notes.md"
    if notes.exists():
        out += [notes.read_text().strip(), ""]
    if quick:
        out += ["> **Smoke run (QUICK=1)**: short measurement windows and a loose stability target,",
                "> on a machine shared with builds. It shows that every path works; its numbers are",
                "> not results. A full run is `scripts/compare.sh` on an otherwise idle machine.", ""]
    out += [
        f"- Date: {settings.get('started', '?')}",
        f"- Machine: {cpu_text(host)}, {host['cores']} cores, {host['memory_gib']} GiB, "
        f"{host['os']} (Linux {host['kernel']}), no GPU. Client and server share the cores.",
        f"- Client: perf_analyzer {settings.get('perf_analyzer', '?')}, "
        f"{settings.get('interval_ms', '?')} ms measurement windows, stability target "
        f"{settings.get('stability_percent', '?')}% over at most {settings.get('max_trials', '?')} windows; "
        "synchronous requests, one batch-1 tensor each "
        f"({settings.get('input_tensor', 'the reference cat image')}, `input` [1,3,224,224] FP32) "
        "read from `target/compare/repos/MODEL/perf-data`.",
        "",
        "## Servers and settings",
        "",
        "All three serve the same ONNX file with ONNX Runtime 1.32.0 on the CPU, with no "
        "dynamic batching and no response cache, on 127.0.0.1, one server at a time. "
        f"ferroserve and Triton run {instances} model instances of {threads} intra-op thread "
        "each (2 cores); MLServer runs the fastest of the settings tried for it "
        "(scripts/compare.sh says which and why).",
        "",
        f"- **ferroserve {ferro_version}** (release build): `ferroserve serve` on the model's "
        "config.pbtxt (efficientnet-lite0: the bundled one; mobilenet-v2-random: `backend: "
        f"\"onnxruntime\"`, max_batch_size {settings.get('max_batch_size', 8)}, instance_group count "
        f"{instances}); ONNX Runtime from libonnxruntime.so.1.32.0 of the PyPI wheel; intra-op "
        "threads: its default, the cores shared among the instances (1 each).",
        f"- **ferroserve-tune**: the same server with `--tune --latency-target-ms "
        f"{settings.get('tune_target_ms', 100)}`, given {settings.get('tune_settle_secs', 15)} s of "
        "the coming load (`ferroserve bench`) before each measurement, so that it has chosen "
        "its instances x threads, batch size and queue delay for that load.",
        f"- **Triton Inference Server {triton_version}** from PyPI nvidia-pytriton "
        f"{version_of('nvidia-pytriton')} (the `tritonserver` binary and Python backend it ships; "
        "pytriton's own Python API is not used). Python backend, `model.py` "
        "(scripts/compare/triton_model.py) running onnxruntime "
        f"{version_of('onnxruntime')}: instance_group count {instances} KIND_CPU (one stub "
        f"process each), intra_op_num_threads {threads}, max_batch_size "
        f"{settings.get('max_batch_size', 8)}, no dynamic_batching block, no --cache-config.",
        f"- **MLServer {mlserver_version}**: a custom runtime (scripts/compare/mlserver_runtime.py, "
        f"an `MLModel` running onnxruntime {version_of('onnxruntime')}) with parallel_workers "
        f"{workers} ({mlserver_workers_text(workers)}) and intra_op_num_threads "
        f"{ml_threads}; debug (access log) off; adaptive batching off. MLServer's REST "
        "API has no binary tensor extension, so its HTTP rows are JSON only.",
        "",
        "Ratios are the peer's value divided by ferroserve's at the same protocol and "
        "concurrency: throughput below 1x and p99 above 1x mean ferroserve did better. "
        "`*` marks a run that missed the stability target (rerun with a loose one).",
        "",
    ]
    for model in models:
        out += [f"## {model}", "", model_table(rows, model), ""]
        for name in charts(rows, model, chart_dir):
            out.append(f"![{name}]({rel_charts}/{name})")
        out.append("")
    if checks:
        out += ["## Output checks", "",
                "Before measuring, each server answered the reference tensor over HTTP and gRPC; "
                "its output was compared with onnxruntime run locally on the same file:", "",
                "```", checks, "```", ""]
    out += [
        "## How perf_analyzer talks to each server",
        "",
        "- ferroserve and Triton: `perf_analyzer -m MODEL -u 127.0.0.1:PORT -i http|grpc "
        "--concurrency-range C:C --input-data DIR` (plus `--input-tensor-format json "
        "--output-tensor-format json` for the JSON rows).",
        "- MLServer implements the KServe v2 protocol but not Triton's model-configuration "
        "extension, which perf_analyzer reads first (HTTP GET /v2/models/NAME/config, gRPC "
        "ModelConfig). scripts/compare/mlserver_serve.py starts MLServer with that one "
        "read-only endpoint added, answering max_batch_size 0; perf_analyzer then needs "
        "`--shape input:1,3,224,224` and sends the same [1,3,224,224] tensor as to the others. "
        "HTTP rows use JSON tensors. Its runtime builds outputs without MLServer's "
        "`content_type` parameter, because Triton's HTTP client reads `binary_data_size` "
        "from any output parameters.",
        "- perf_analyzer's default random input is raw random bytes (NaN and Inf among "
        "them), which JSON cannot carry; every server gets the real image tensor instead.",
        "",
    ]
    kept = image_section(md_path.read_text()) if md_path.exists() else ""
    md_path.write_text("\n".join(out) + (f"\n{kept}\n" if kept else ""))


# ---------------------------------------------------------------- the image workload

IMAGES_BEGIN = "<!-- image workload: generated by scripts/compare-images.sh -->"
IMAGES_END = "<!-- image workload: end -->"
IMAGE_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "compare-images"
# The ways a client sends an image, in table order: perf_analyzer on the BYTES model over
# three protocols, then ferroserve's own /classify endpoint and command line.
IMAGE_WAYS = ["http", "http-json", "grpc", "classify endpoint", "classify cli"]
IMAGE_WAY_STYLES = {"http": "-", "http-json": ":", "grpc": "--", "classify endpoint": "-."}
CLI_SUMMARY = re.compile(r"(\d+) images, (\d+) failed, ([\d.]+) images/s, "
                         r"latency p50 ([\d.]+) ms, p99 ([\d.]+) ms")


def image_section(text):
    """The image workload's section of a report, markers included, or ''."""
    start, end = text.find(IMAGES_BEGIN), text.find(IMAGES_END)
    if start < 0 or end < start:
        return ""
    return text[start:end + len(IMAGES_END)]


def image_rows(raw):
    """[{server, image, protocol (the way), concurrency, throughput, p50_ms, p99_ms,
    unstable}]; the command line's row has concurrency None."""
    rows = [{**r, "image": r.pop("model")} for r in perf_analyzer_rows(raw)]
    for path in sorted(raw.glob("ferroserve-classify__*.json")):
        image = path.stem.split("__", 1)[1]
        for run in json.loads(path.read_text()).get("runs", []):
            rows.append({"server": "ferroserve", "image": image, "protocol": "classify endpoint",
                         "concurrency": int(run["concurrency"]),
                         "throughput": float(run["throughput"]), "p50_ms": float(run["p50_ms"]),
                         "p99_ms": float(run["p99_ms"]), "unstable": False})
    for path in sorted(raw.glob("ferroserve-cli__*.txt")):
        image = path.stem.split("__", 1)[1]
        match = CLI_SUMMARY.search(path.read_text())
        if match:
            rows.append({"server": "ferroserve", "image": image, "protocol": "classify cli",
                         "concurrency": None, "throughput": float(match[3]),
                         "p50_ms": float(match[4]), "p99_ms": float(match[5]), "unstable": False})
    return rows


def image_order(row):
    way = row["protocol"]
    return (IMAGE_WAYS.index(way) if way in IMAGE_WAYS else 99,
            row["concurrency"] if row["concurrency"] is not None else 1 << 30,
            SERVERS.index(row["server"]) if row["server"] in SERVERS else 99)


def image_table(rows, image):
    # The baseline: ferroserve under perf_analyzer on the same transport (MLServer's HTTP
    # JSON against ferroserve's HTTP with binary tensors).
    def same_transport(r):
        return ("http" if r["protocol"] == "http-json" else r["protocol"], r["concurrency"])
    return ratio_table([r for r in rows if r["image"] == image], ("way", "images/s", "images/s"),
                       same_transport, image_order)


def image_charts(rows, images, out_dir):
    """Throughput and p99 against concurrency, one panel per image."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for metric, label, log_y in (("throughput", "images / s", False),
                                 ("p99_ms", "p99 latency (ms)", True)):
        columns = 2 if len(images) > 1 else 1
        rows_of_panels = (len(images) + columns - 1) // columns
        fig, axes = plt.subplots(rows_of_panels, columns, figsize=(11, 4 * rows_of_panels),
                                 squeeze=False)
        for ax, image in zip(axes.flat, images):
            series = sorted({(r["server"], r["protocol"]) for r in rows
                             if r["image"] == image and r["concurrency"] is not None},
                            key=lambda sp: (SERVERS.index(sp[0]), IMAGE_WAYS.index(sp[1])))
            for server, way in series:
                points = sorted((r["concurrency"], r[metric]) for r in rows
                                if r["image"] == image and r["server"] == server
                                and r["protocol"] == way)
                xs, ys = zip(*points)
                ax.plot(xs, ys, IMAGE_WAY_STYLES.get(way, "-"), marker="o",
                        color=SERVER_COLORS[server], label=f"{server}, {way}")
            levels = sorted({r["concurrency"] for r in rows
                             if r["image"] == image and r["concurrency"] is not None})
            ax.set_xscale("log", base=2)
            ax.set_xticks(levels, [str(c) for c in levels])
            if log_y:
                ax.set_yscale("log")
            ax.set_title(image, fontsize=10)
            ax.set_xlabel("concurrent requests")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(images):]:
            ax.axis("off")
        fig.suptitle(f"image workload: {label} vs concurrency")
        fig.tight_layout()
        name = f"images-{'throughput' if metric == 'throughput' else 'p99'}.png"
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        written.append(name)
    return written


def image_file_line(name):
    from PIL import Image

    path = IMAGE_DIR / name
    if not path.exists():
        return f"  - `{name}`"
    with Image.open(path) as image:
        size, kind = image.size, image.format
    return f"  - `{name}`: {size[0]}x{size[1]} {kind}, {path.stat().st_size / 1000:.0f} kB"


def images_report(raw, md_path, chart_dir):
    rows = image_rows(raw)
    if not rows:
        sys.exit(f"report: no image workload results in {raw}")
    settings = read_json(raw / "settings.json", {})
    host = read_json(raw / "machine.json", machine())
    servers = {s: read_json(raw / f"{s}.server.json", {}) for s in SERVERS}
    checks = (raw / "checks.txt").read_text().strip() if (raw / "checks.txt").exists() else ""
    names = settings.get("images", "").split() or sorted({r["image"] for r in rows})
    images = [n.rsplit(".", 1)[0] for n in names]
    images += sorted({r["image"] for r in rows} - set(images))
    chart_dir.mkdir(parents=True, exist_ok=True)
    rel_charts = os.path.relpath(chart_dir, md_path.parent)
    instances, threads = settings.get("instances", 2), settings.get("threads", 1)
    workers, ml_threads = settings.get("mlserver_workers", 0), settings.get("mlserver_threads", 2)

    out = [IMAGES_BEGIN, "", "## Image workload: encoded images in, classes out", ""]
    if settings.get("quick") == 1:
        out += ["> **Smoke run (QUICK=1)**: short measurement windows and a loose stability target,",
                "> on a machine shared with builds. It shows that every path works; its numbers are",
                "> not results. A full run is `scripts/compare-images.sh` on an otherwise idle machine.", ""]
    out += [
        f"- Date: {settings.get('started', '?')}",
        f"- Machine: {cpu_text(host)}, {host['cores']} cores, {host['memory_gib']} GiB, "
        f"{host['os']} (Linux {host['kernel']}), no GPU. Client and server share the cores.",
        f"- Client: perf_analyzer {settings.get('perf_analyzer', '?')}, "
        f"{settings.get('interval_ms', '?')} ms measurement windows, stability target "
        f"{settings.get('stability_percent', '?')}% over at most {settings.get('max_trials', '?')} "
        "windows; synchronous requests, each one encoded image, the same bytes to every server. "
        f"`ferroserve bench`: {settings.get('bench_secs', '?')} s per level after 2 s of warm-up. "
        f"`ferroserve classify`: {settings.get('classify_copies', '?')} links to the image in a folder.",
        "- Images (tests/data/compare-images, provenance and licences in its README; the two "
        "large JPEGs are real photos upscaled, whose JPEG decodes somewhat faster than a "
        "real phone photo's):",
        *[image_file_line(n) for n in names],
        "",
        "Every server decodes and preprocesses the image itself, as the bundled "
        "efficientnet-lite0's configuration says (`preprocess.*`: short side 256 with "
        "Pillow's bicubic filter, center crop 224, (x - 127) / 128, RGB, NCHW float32), then "
        "runs the same ONNX file with ONNX Runtime 1.32.0 on the CPU; no dynamic batching, "
        f"no response cache, one server at a time. Model instances: {instances} of {threads} "
        "intra-op thread, as in the tensor workload.",
        "",
        f"- **ferroserve {servers['ferroserve'].get('version', '?')}**, the bundled repository "
        "as shipped (`models/`), three ways: `http`/`grpc`: the model "
        "`efficientnet-lite0-image`, whose BYTES input `image` takes the encoded file, under "
        "perf_analyzer; `classify endpoint`: `POST /v2/models/efficientnet-lite0/classify` "
        "with the file as the body, under `ferroserve bench --protocol image` (its own "
        "client, not perf_analyzer); `classify cli`: `ferroserve classify FOLDER` in one "
        "process, no server, every file in flight at once up to its limit, so no "
        "concurrency level (images/s and per-image latency from its summary line). "
        "Load shedding by expected queue wait (`--max-queue-wait-ms`, 500 by default) is "
        f"set to {settings.get('ferroserve_max_queue_wait_ms', '?')} (0: off) for this "
        "workload: at concurrency 16 a 12-megapixel image waits longer than 500 ms on 2 "
        "cores, and the peers queue every request rather than refuse it.",
        f"- **Triton Inference Server {servers['triton'].get('version', '?')}** (nvidia-pytriton "
        f"{version_of('nvidia-pytriton')}): `efficientnet-lite0-image` is an ensemble (platform "
        "`ensemble`) of a Python-backend model `efficientnet-lite0-preprocess` "
        f"(scripts/compare/triton_preprocess.py: Pillow {version_of('pillow')}, "
        f"{instances} instances) and the tensor workload's Python-backend onnxruntime "
        f"classifier `efficientnet-lite0` ({instances} instances, intra_op_num_threads "
        f"{threads}). Each step runs in its own stub process.",
        f"- **MLServer {servers['mlserver'].get('version', version_of('mlserver'))}**: a custom "
        "runtime (scripts/compare/mlserver_image_runtime.py) doing the same Pillow "
        "preprocessing and onnxruntime, with parallel_workers "
        f"{workers} and intra_op_num_threads {ml_threads}, as in the tensor workload. Its "
        "REST API is JSON only, so the image travels as base64 text (MLServer's `base64` "
        "content type, 4/3 of the bytes) over HTTP (`http-json`) and, to keep one runtime, "
        "over gRPC as well.",
        "",
        "The preprocessing of Triton and MLServer is scripts/pillow_preprocess.py's, the "
        "reference ferroserve's own (Rust, ferroserve-vision) follows. Ratios are the "
        "peer's value divided by ferroserve's under perf_analyzer on the same transport "
        "(MLServer's HTTP JSON against ferroserve's HTTP) and concurrency: images/s below "
        "1x and p99 above 1x mean ferroserve did better. `*` marks a run that missed the "
        "stability target (rerun with a loose one).",
        "",
    ]
    for image in images:
        out += [f"### {image}", "", image_table(rows, image), ""]
    for name in image_charts(rows, images, chart_dir):
        out.append(f"![{name}]({rel_charts}/{name})")
    out.append("")
    if checks:
        out += ["### Top-1 checks", "",
                "Before measuring, each server answered every image over every way it is "
                "measured by; its top-1 class was compared with Pillow and onnxruntime run "
                "locally (max |diff|: the largest logit difference, where logits come back):",
                "", "```", checks, "```", ""]
    out += [
        "### How the image reaches each server",
        "",
        "- perf_analyzer: `--input-data FILE`, a JSON file with one request, "
        "`{\"data\": [{\"image\": {\"b64\": ...}}]}`, the base64 of the BYTES element as "
        "Triton serialises it (a 4-byte little-endian length, then the file's bytes); "
        "`target/compare/repos/images/perf-data/IMAGE.json`. For MLServer the element is "
        "the file's base64 text (`IMAGE.base64.json`), with `--shape image:1,1` and, over "
        "HTTP, `--input-tensor-format json --output-tensor-format json`.",
        "",
        IMAGES_END,
    ]
    section = "\n".join(out)
    text = md_path.read_text() if md_path.exists() else ""
    old = image_section(text)
    if old:
        text = text.replace(old, section)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    md_path.write_text(text.rstrip("\n") + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("machine")
    for command in ("report", "images"):
        r = sub.add_parser(command)
        r.add_argument("--raw", required=True, type=Path)
        r.add_argument("--md", required=True, type=Path)
        r.add_argument("--charts", required=True, type=Path)
    args = p.parse_args()
    if args.command == "machine":
        json.dump(machine(), sys.stdout)
        print()
    elif args.command == "report":
        report(args.raw, args.md, args.charts)
    else:
        images_report(args.raw, args.md, args.charts)


if __name__ == "__main__":
    main()
