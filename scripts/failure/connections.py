"""Connections: IDLE idle connections and SLOW slow-loris ones (a request head sent a
byte a second) on the HTTP port, and as many on the gRPC port (silent ones, and ones
sending the HTTP/2 preface a byte a second), under a 1,024-descriptor limit, while
health checks and a normal client of each protocol keep going (both at once, before
and during the flood). The slow ones must be cut by the header timeout, and the others
must not notice: health checks answered, each client's throughput near what it was
before.

    scripts/failure/connections.py [--quick] [--idle 2000] [--slow 500] [--json FILE]

--quick (CI): 1,000 idle and 100 slow connections per port (over the cap, so room is
made), 2 s timeouts, the mechanism checked.
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


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def slow_loris(address, count, stop, grpc=False):
    """Opens `count` connections that each send a request head a byte a second (on
    gRPC, the HTTP/2 preface); returns them once `stop` is set."""
    host, port = address.rsplit(":", 1)
    sockets = []
    for _ in range(count):
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(HTTP2_PREFACE[:1] if grpc else b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n")
            sockets.append(s)
        except OSError:
            break
    sent = 1
    while not stop.wait(1.0):
        byte = HTTP2_PREFACE[sent % len(HTTP2_PREFACE):][:1] if grpc else b"X"
        sent += 1
        for s in sockets:
            try:
                s.send(byte)
            except OSError:
                pass
    return sockets


def closed_by_server(s):
    """Whether the server has ended the connection: end of stream or a reset, after
    whatever it sent before (a 408, HTTP/2 settings). Nothing more to read yet: still
    open."""
    s.setblocking(False)
    try:
        while s.recv(4096):
            pass
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
    idle_count, slow_count = (1000, 100) if args.quick else (args.idle, args.slow)
    timeout = 2 if args.quick else 10
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the client's own sockets
    protocols = ("http", "grpc")

    def load(protocol):
        return ["--protocol", protocol, "--input", str(IMAGES / "cat.input.f32"),
                "--concurrency", "2", "--warmup", "1s", "--duration", f"{timeout * 2}s"]

    def both_clients(server):
        """The HTTP and the gRPC client at once: each one's run."""
        runs = {}

        def measure(protocol):
            # A client that finds no connection slot, for one, gets no run at all.
            report = bench(server, *load(protocol), check=False)
            runs[protocol] = (report.get("runs") or [
                {"throughput": 0, "errors": report.get("failed", "no run")}])[0]

        clients = [threading.Thread(target=measure, args=(p,), daemon=True) for p in protocols]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        return runs

    with Server("--header-timeout-secs", str(timeout), limit_files=1024) as server:
        baseline = both_clients(server)
        idle = {p: open_idle(getattr(server, p), idle_count) for p in protocols}
        stop = threading.Event()
        slow = {p: [] for p in protocols}
        lorises = [threading.Thread(
            target=lambda p=p: slow[p].extend(slow_loris(getattr(server, p), slow_count, stop,
                                                         grpc=p == "grpc")),
            daemon=True) for p in protocols]
        for loris in lorises:
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
            during = both_clients(server)
            time.sleep(timeout + 1)
        finally:
            stop.set()
        for loris in lorises:
            loris.join()
        checker.join()
        cut_idle = {p: sum(closed_by_server(s) for s in idle[p]) for p in protocols}
        cut_slow = {p: sum(closed_by_server(s) for s in slow[p]) for p in protocols}
        for p in protocols:
            for s in idle[p] + slow[p]:
                s.close()
        after = server.get("/v2/health/ready")[0]
    ok = [seconds for status, seconds in health if status == 200]
    result = {
        "health_checks": len(health),
        "health_ok": len(ok),
        "health_p50_ms": round(statistics.median(ok) * 1000, 2) if ok else None,
        "health_max_ms": round(max(ok) * 1000, 2) if ok else None,
        "ready_after": after,
    }
    for p in protocols:
        result[p] = {
            "idle_opened": len(idle[p]),
            "idle_cut": cut_idle[p],
            "slow_opened": len(slow[p]),
            "slow_cut": cut_slow[p],
            "client_baseline": baseline[p]["throughput"],
            "client_during": during[p]["throughput"],
            "client_errors": during[p]["errors"],
        }
    print(f"connections under a 1,024-descriptor limit, header timeout {timeout} s, "
          f"{build_name()} build, {cpu_name()}; health checks 200: "
          f'{result["health_ok"]}/{result["health_checks"]}, p50 {result["health_p50_ms"]} ms, '
          f'max {result["health_max_ms"]} ms')
    print(table([[p, f'{r["idle_opened"]} ({r["idle_cut"]} cut)',
                  f'{r["slow_opened"]} ({r["slow_cut"]} cut)',
                  f'{r["client_baseline"]} -> {r["client_during"]}',
                  r["client_errors"] or "none"] for p, r in ((p, result[p]) for p in protocols)],
                ["port", "idle connections", "slow connections",
                 "client req/s before -> during", "client errors"]))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
    healthy = (result["health_ok"] == result["health_checks"] and after == 200
               and not any(baseline[p]["errors"] for p in protocols)
               and all(result[p]["slow_cut"] == result[p]["slow_opened"]
                       and result[p]["idle_cut"] == result[p]["idle_opened"]
                       and not result[p]["client_errors"] for p in protocols))
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
