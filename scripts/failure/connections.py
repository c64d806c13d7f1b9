"""Connections: IDLE idle connections and SLOW slow-loris ones (a request head sent a
byte a second), under a 1,024-descriptor limit, while health checks and a normal client
keep going. The slow ones must be cut by the header timeout, and the others must not
notice: health checks answered, the client's throughput near what it was before.

    scripts/failure/connections.py [--quick] [--idle 2000] [--slow 500] [--json FILE]

--quick (CI): 300 idle and 50 slow connections, 2 s timeouts, the mechanism checked.
"""

import argparse
import json
import resource
import socket
import statistics
import sys
import threading
import time

from harness import IMAGES, Server, bench, build_name, cpu_name, table


def open_idle(address, count):
    host, port = address.rsplit(":", 1)
    sockets = []
    for _ in range(count):
        try:
            sockets.append(socket.create_connection((host, int(port)), timeout=5))
        except OSError:
            break
    return sockets


def slow_loris(address, count, stop):
    """Opens `count` connections that each send a request head a byte a second; returns
    them once `stop` is set."""
    host, port = address.rsplit(":", 1)
    sockets = []
    for _ in range(count):
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n")
            sockets.append(s)
        except OSError:
            break
    while not stop.wait(1.0):
        for s in sockets:
            try:
                s.send(b"X")
            except OSError:
                pass
    return sockets


def closed_by_server(s):
    """Whether the server has ended the connection: end of stream, a reset, or an
    answer (a 408) before it closes. Nothing to read yet: still open."""
    s.setblocking(False)
    try:
        s.recv(4096)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--slow", type=int, default=500)
    parser.add_argument("--json")
    args = parser.parse_args()
    idle_count, slow_count = (300, 50) if args.quick else (args.idle, args.slow)
    timeout = 2 if args.quick else 10
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the client's own sockets
    load = ["--protocol", "http", "--input", str(IMAGES / "cat.input.f32"), "--concurrency", "2",
            "--warmup", "1s", "--duration", f"{timeout * 2}s"]
    with Server("--header-timeout-secs", str(timeout), limit_files=1024) as server:
        baseline = bench(server, *load)["runs"][0]["throughput"]
        idle = open_idle(server.http, idle_count)
        stop = threading.Event()
        slow = []
        loris = threading.Thread(target=lambda: slow.extend(slow_loris(server.http, slow_count, stop)),
                                 daemon=True)
        loris.start()
        health = []

        def check_health():
            while not stop.is_set():
                health.append(server.get("/v2/health/ready"))
                time.sleep(0.1)

        checker = threading.Thread(target=check_health, daemon=True)
        checker.start()
        try:
            time.sleep(1)
            # A client that finds every connection slot taken gets no run at all.
            runs = bench(server, *load, check=False).get("runs") or [
                {"throughput": 0, "errors": "no connection: every slot held"}]
            during = runs[0]
            time.sleep(timeout + 1)
        finally:
            stop.set()
        loris.join()
        checker.join()
        cut_idle = sum(closed_by_server(s) for s in idle)
        cut_slow = sum(closed_by_server(s) for s in slow)
        for s in idle + slow:
            s.close()
        after = server.get("/v2/health/ready")[0]
    ok = [seconds for status, seconds in health if status == 200]
    result = {
        "idle_opened": len(idle),
        "idle_cut": cut_idle,
        "slow_opened": len(slow),
        "slow_cut": cut_slow,
        "health_checks": len(health),
        "health_ok": len(ok),
        "health_p50_ms": round(statistics.median(ok) * 1000, 2) if ok else None,
        "health_max_ms": round(max(ok) * 1000, 2) if ok else None,
        "client_baseline": baseline,
        "client_during": during["throughput"],
        "client_errors": during["errors"],
        "ready_after": after,
    }
    print(f"connections under a 1,024-descriptor limit, header timeout {timeout} s, "
          f"{build_name()} build, {cpu_name()}")
    print(table([[f'{result["idle_opened"]} ({result["idle_cut"]} cut)',
                  f'{result["slow_opened"]} ({result["slow_cut"]} cut)',
                  f'{result["health_ok"]}/{result["health_checks"]}',
                  result["health_p50_ms"], result["health_max_ms"],
                  f'{result["client_baseline"]} -> {result["client_during"]}',
                  result["client_errors"] or "none"]],
                ["idle connections", "slow-loris connections", "health checks 200",
                 "health p50 ms", "health max ms", "client req/s before -> during",
                 "client errors"]))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
    healthy = (result["health_ok"] == result["health_checks"] and after == 200
               and result["slow_cut"] == result["slow_opened"] and not result["client_errors"])
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
