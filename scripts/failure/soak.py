"""Soak: MINUTES at 70% of capacity, mixed protocols (HTTP binary tensors, gRPC, images),
as three open loops of equal rate. Capacity is measured the same way, the three clients
at once (closed loops), so that their own CPU is counted. Each minute is measured on its
own: its p99 per protocol, and the server's resident memory. Memory must not grow (slope
about 0 MB per minute once warm) and p99 must not drift (the last minutes within 10% of
the first).

    scripts/failure/soak.py [--quick] [--minutes 30] [--load 0.7] [--json FILE]

--quick (CI): three 5-second windows, the mechanism checked, no figures claimed.
"""

import argparse
import json
import statistics
import sys
import threading
import time

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
            results = together(server, "--rate", str(rate), "--warmup", "0s", "--duration", window)
            minutes.append({"minute": minute + 1, "rss_mb": round(server.rss_mb(), 1),
                            **{f"{p}_p99_ms": r["p99_ms"] for p, r in results.items()},
                            **{f"{p}_errors": r["errors"] for p, r in results.items()}})
            print(minutes[-1], file=sys.stderr)
    warm = minutes[1:] if len(minutes) > 2 else minutes
    rss_slope = slope([(m["minute"], m["rss_mb"]) for m in warm])
    drift = {}
    for p in PROTOCOLS:
        head = [m[f"{p}_p99_ms"] for m in warm[:3] if m[f"{p}_p99_ms"]]
        tail = [m[f"{p}_p99_ms"] for m in warm[-3:] if m[f"{p}_p99_ms"]]
        drift[p] = round(statistics.median(tail) / statistics.median(head) - 1, 3) if head and tail else None
    errors = sum(sum(m[f"{p}_errors"].values()) for m in minutes for p in PROTOCOLS)
    print(f"soak: {windows} x {window} at {args.load:.0%} of capacity ({rate} req/s on each of "
          f"{', '.join(PROTOCOLS)}), {build_name()} build, {cpu_name()}")
    print(table([[m["minute"], m["rss_mb"], *[m[f"{p}_p99_ms"] for p in PROTOCOLS],
                  sum(sum(m[f"{p}_errors"].values()) for p in PROTOCOLS)] for m in minutes],
                ["window", "RSS MB", *[f"{p} p99 ms" for p in PROTOCOLS], "errors"]))
    print(f"\nRSS slope {rss_slope:+.2f} MB per window (after the first); p99 drift, last "
          f"3 windows against the first 3: {drift}; capacity, the three together at c=2 each: "
          f"{capacity}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"capacity": capacity, "rate_each": rate, "minutes": minutes,
                       "rss_slope_mb_per_window": rss_slope, "p99_drift": drift}, out, indent=1)
    sys.exit(0 if errors == 0 else 1)


if __name__ == "__main__":
    main()
