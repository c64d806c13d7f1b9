"""Soak: MINUTES at 70% of capacity, mixed protocols (HTTP binary tensors, gRPC, images),
as three open loops of equal rate. Capacity is measured the same way, the three clients
at once (closed loops), so that their own CPU is counted. Each minute is measured on its
own: its p99 per protocol, the server's resident memory, and the server's own account of
where a tensor request's time went (its /metrics, for the tensor model that the HTTP and
gRPC clients load): computing, waiting in the queue, and the rest, the server's own
handling. Memory must not grow
(slope about 0 MB per minute once warm) and p99 must not drift (the last minutes within
10% of the first).

On a VM whose cores slow down and speed up, a fixed rate is a moving share of what the
machine can do, and p99 follows it through the queue. The compute time tells the two
apart: when it moves, the machine did; the server's own handling time, and memory, are
the server's drift.

    scripts/failure/soak.py [--quick] [--minutes 30] [--load 0.7] [--json FILE]

--quick (CI): three 5-second windows, the mechanism checked, no figures claimed.
"""

import argparse
import json
import re
import statistics
import sys
import threading
import time
import urllib.request

from harness import IMAGES, Server, bench, build_name, cpu_name, table

PROTOCOLS = {
    "http": ["--protocol", "http", "--input", str(IMAGES / "cat.input.f32")],
    "grpc": ["--protocol", "grpc", "--input", str(IMAGES / "cat.input.f32")],
    "image": ["--protocol", "image", "--image", str(IMAGES / "cat.jpg")],
}


def slope(points):
    """Least-squares slope of (x, y) points."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


STAGES = ("request", "queue", "compute")
TENSOR_MODEL = "efficientnet-lite0"
SUM = re.compile(r'^ferroserve_(\w+)_duration_seconds_(sum|count)\{model="' + TENSOR_MODEL
                 + r'",[^}]*\} (\S+)$', re.M)


def server_seconds(server):
    """The server's own totals from /metrics for the tensor model: seconds spent per
    stage, and the requests (or, for compute, the engine runs) counted."""
    with urllib.request.urlopen(f"http://{server.metrics}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    totals = {}
    for stage, kind, value in SUM.findall(text):
        if stage in STAGES:
            totals[(stage, kind)] = totals.get((stage, kind), 0.0) + float(value)
    return totals


def per_request_ms(before, after):
    """Mean milliseconds between two `server_seconds` readings: of an engine run, of a
    request's wait in the queue, and of the server's own handling (the whole request,
    from decoded to answer ready, less its queue time and its batch's engine run)."""
    def mean(stage):
        count = after.get((stage, "count"), 0) - before.get((stage, "count"), 0)
        total = after.get((stage, "sum"), 0) - before.get((stage, "sum"), 0)
        return total / count * 1000 if count else 0.0
    handling = mean("request") - mean("queue") - mean("compute")
    return {"compute_ms": round(mean("compute"), 2), "queue_ms": round(mean("queue"), 2),
            "handling_ms": round(handling, 3)}


def drift_of(values):
    """The median of the last 3 against the median of the first 3, less 1."""
    head, tail = [v for v in values[:3] if v], [v for v in values[-3:] if v]
    return round(statistics.median(tail) / statistics.median(head) - 1, 3) if head and tail else None


def together(server, *load):
    """One `ferroserve bench` per protocol, all at once, with the `load` flags; each
    protocol's run."""
    results = {}

    def run(protocol):
        results[protocol] = bench(server, *PROTOCOLS[protocol], *load, check=False)["runs"][0]

    threads = [threading.Thread(target=run, args=(p,)) for p in PROTOCOLS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--load", type=float, default=0.7)
    parser.add_argument("--json")
    args = parser.parse_args()
    windows, window = (3, "5s") if args.quick else (args.minutes, "60s")
    with Server() as server:
        # Capacity as the soak loads the server: the three clients at once, closed loops,
        # since each client process takes CPU from the server on a small machine.
        capacity = {p: r["throughput"] for p, r in together(
            server, "--concurrency", "2", "--warmup", "1s",
            "--duration", "2s" if args.quick else "10s").items()}
        rate = round(sum(capacity.values()) * args.load / len(PROTOCOLS), 1)
        minutes = []
        for minute in range(windows):
            before = server_seconds(server)
            results = together(server, "--rate", str(rate), "--warmup", "0s", "--duration", window)
            minutes.append({"minute": minute + 1, "rss_mb": round(server.rss_mb(), 1),
                            **per_request_ms(before, server_seconds(server)),
                            **{f"{p}_p99_ms": r["p99_ms"] for p, r in results.items()},
                            **{f"{p}_errors": r["errors"] for p, r in results.items()}})
            print(minutes[-1], file=sys.stderr)
    warm = minutes[1:] if len(minutes) > 2 else minutes
    rss_slope = slope([(m["minute"], m["rss_mb"]) for m in warm])
    drift = {p: drift_of([m[f"{p}_p99_ms"] for m in warm]) for p in PROTOCOLS}
    machine = drift_of([m["compute_ms"] for m in warm])
    handling = drift_of([m["handling_ms"] for m in warm])
    errors = sum(sum(m[f"{p}_errors"].values()) for m in minutes for p in PROTOCOLS)
    print(f"soak: {windows} x {window} at {args.load:.0%} of capacity ({rate} req/s on each of "
          f"{', '.join(PROTOCOLS)}), {build_name()} build, {cpu_name()}")
    print(table([[m["minute"], m["rss_mb"], *[m[f"{p}_p99_ms"] for p in PROTOCOLS],
                  m["compute_ms"], m["queue_ms"], m["handling_ms"],
                  sum(sum(m[f"{p}_errors"].values()) for p in PROTOCOLS)] for m in minutes],
                ["window", "RSS MB", *[f"{p} p99 ms" for p in PROTOCOLS], "compute ms",
                 "queue ms", "handling ms", "errors"]))
    print(f"\nRSS slope {rss_slope:+.2f} MB per window (after the first); drift, last "
          f"3 windows against the first 3: p99 {drift}, compute time {machine} (the "
          f"machine's), the server's own handling time {handling}; capacity, the three "
          f"together at c=2 each: {capacity}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"capacity": capacity, "rate_each": rate, "minutes": minutes,
                       "rss_slope_mb_per_window": rss_slope, "p99_drift": drift,
                       "compute_drift": machine, "handling_drift": handling}, out, indent=1)
    sys.exit(0 if errors == 0 else 1)


if __name__ == "__main__":
    main()
