#!/usr/bin/env python3
"""The verdict and chart of scripts/replicas.sh, from what it left in its folder:

- haproxy.log: HAProxy's log (RFC 5424), one `request STATUS SERVER MS` line per request
  and a `Server replicas/NAME is UP|DOWN` line per health change;
- events.tsv: `UNIX_TIME EVENT NAME` lines written by the script (start, ready, sigterm,
  exited, load-start, load-end);
- bench.json: `ferroserve bench --json`.

Writes throughput.tsv (per second: successes in total and per replica, failures) and
throughput.png (gnuplot), prints a summary, and exits 1 if any request failed.

    scripts/replicas-report.py target/replicas
"""

import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

LINE = re.compile(r"^<\d+>1 (\S+) \S+ \S+ \S+ \S+ \S+ (.*)$")
REQUEST = re.compile(r"^request (-?\d+) (\S+) (-?\d+)")
HEALTH = re.compile(r"Server replicas/(\w+) is (UP|DOWN)")


def main():
    out = Path(sys.argv[1])
    events = []
    for line in (out / "events.tsv").read_text().splitlines():
        t, event, name = line.split()
        events.append((float(t), event, name))
    t0 = next(t for t, e, _ in events if e == "load-start")
    t_end = next((t for t, e, _ in events if e == "load-end"), None)
    replicas = sorted({n for _, e, n in events if e == "start"})

    ok = defaultdict(Counter)  # second -> replica -> successes
    failed = Counter()  # second -> failures
    failures = Counter()  # (status, server) -> count
    health = []  # (second, replica, UP|DOWN)
    for line in (out / "haproxy.log").read_text().splitlines():
        m = LINE.match(line)
        if not m:
            continue
        when = datetime.fromisoformat(m.group(1)).timestamp() - t0
        message = m.group(2)
        if r := REQUEST.match(message):
            status, server = int(r.group(1)), r.group(2)
            if 200 <= status < 300:
                ok[int(when)][server] += 1
            else:
                failed[int(when)] += 1
                failures[(status, server)] += 1
        elif h := HEALTH.search(message):
            health.append((when, h.group(1), h.group(2)))

    seconds = range(0, int((t_end - t0) if t_end else max(ok) + 1) + 1)
    with open(out / "throughput.tsv", "w") as f:
        f.write("second\ttotal\t" + "\t".join(replicas) + "\tfailed\n")
        for s in seconds:
            row = [s, sum(ok[s].values())] + [ok[s][r] for r in replicas] + [failed[s]]
            f.write("\t".join(map(str, row)) + "\n")

    # A replica is out of rotation from its SIGTERM until HAProxy marks it UP again.
    out_of_rotation = []
    for t, e, name in events:
        if e == "sigterm":
            start = t - t0
            back = [w for w, n, state in health if n == name and state == "UP" and w > start]
            out_of_rotation.append((name, start, min(back) if back else None))

    bench = json.loads((out / "bench.json").read_text())
    run = bench["runs"][0]
    total_ok = sum(sum(c.values()) for c in ok.values())
    total_failed = sum(failed.values())
    bench_errors = sum(run.get("errors", {}).values())

    plot(out, replicas, out_of_rotation, len(seconds))

    print(f"balancer: {total_ok} requests answered 200, {total_failed} failed"
          + (f" {dict(failures)}" if failures else ""))
    print(f"client:   {run['requests']} requests in the measured window, "
          f"{run['throughput']:.1f} req/s, p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
          f"errors {run.get('errors', {})}")
    for name, start, back in out_of_rotation:
        gap = f"back in rotation after {back - start:.1f} s" if back else "never back"
        print(f"{name}: SIGTERM at {start:.1f} s, {gap}")
    per_replica = Counter()
    for c in ok.values():
        per_replica.update(c)
    print("share: " + ", ".join(f"{r} {per_replica[r]}" for r in replicas))
    print(f"chart: {out / 'throughput.png'}")
    if total_failed or bench_errors:
        print("FAILED: requests were lost during the restarts")
        sys.exit(1)
    print("PASSED: no request failed while the replicas restarted one at a time")


def plot(out, replicas, out_of_rotation, length):
    lines = [
        "set terminal pngcairo size 1100,520 font 'sans,10'",
        f"set output '{out / 'throughput.png'}'",
        "set title 'ferroserve: 3 replicas behind HAProxy, restarted one at a time under load'",
        "set xlabel 'seconds since the load started'",
        "set ylabel 'requests per second (answered 200)'",
        "set key outside right top",
        "set grid ytics",
        f"set xrange [0:{length}]",
        "set yrange [0:*]",
        "set style fill transparent solid 0.15 noborder",
    ]
    for k, (name, start, back) in enumerate(out_of_rotation, 1):
        end = back if back is not None else length
        lines.append(f"set object {k} rect from {start:.2f}, graph 0 to {end:.2f}, graph 1 "
                     "fc rgb '#999999' behind")
        lines.append(f"set label {k} '{name} restarting' at {start:.2f}, graph 0.96 font ',9'")
    series = [f"'{out / 'throughput.tsv'}' using 1:2 with lines lw 2.5 lc rgb '#1f4e9c' "
              "title 'total'"]
    colors = ["#2ca02c", "#ff7f0e", "#9467bd"]
    for k, name in enumerate(replicas):
        series.append(f"'' using 1:{k + 3} with lines lw 1 lc rgb '{colors[k % 3]}' "
                      f"title '{name}'")
    series.append(f"'' using 1:{len(replicas) + 3} with impulses lw 3 lc rgb '#d62728' "
                  "title 'failed'")
    lines.append("plot " + ", \\\n     ".join(series))
    subprocess.run(["gnuplot"], input="\n".join(lines) + "\n", text=True, check=True)


if __name__ == "__main__":
    main()
