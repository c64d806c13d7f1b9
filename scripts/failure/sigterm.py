"""SIGTERM under load: 4 clients (images and tensors), then SIGTERM with a drain delay.
Readiness must turn 503 at once, every request sent before the clients stop (they stop
as a load balancer would, once readiness failed) must get a complete 200, and the process
must exit 0.

    scripts/failure/sigterm.py [--quick] [--json FILE]
"""

import argparse
import json
import sys
import time

from harness import Server, build_name, cpu_name, table
from reload_race import Load


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    server = Server("--drain-delay-secs", "2", "--exit-timeout-secs", "30")
    load = Load(server)
    time.sleep(1 if args.quick else 5)
    server.process.terminate()
    signalled = time.monotonic()
    while server.get("/v2/health/ready", timeout=1)[0] == 200:
        time.sleep(0.01)
    not_ready_after = time.monotonic() - signalled
    time.sleep(0.5)  # the balancer's reaction time, inside the drain delay
    answers, slowest = load.finish()
    code = server.process.wait(timeout=60)
    exited_after = time.monotonic() - signalled
    lost = {f"{m} {s}": n for (m, s), n in answers.items() if s != 200}
    print(f"SIGTERM under 4 clients, --drain-delay-secs 2; {build_name()} build, {cpu_name()}")
    print(table([[sum(answers.values()), lost or "none", f"{not_ready_after * 1000:.0f}",
                  f"{exited_after:.1f}", code]],
                ["requests", "not answered 200", "readiness 503 after (ms)", "exited after (s)",
                 "exit status"]))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"requests": sum(answers.values()), "lost": lost, "exit": code,
                       "not_ready_after_s": not_ready_after}, out, indent=1)
    sys.exit(0 if not lost and code == 0 else 1)


if __name__ == "__main__":
    main()
