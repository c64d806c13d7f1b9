"""The failure scripts of scripts/failure/, in their short versions (--quick): each starts
its own server, attacks it, and exits 0 only if the server held (no 5xx, nothing lost,
the hostile input refused, memory given back). Their full versions, with figures, are
run by hand; docs/reliability.md has the results."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

SCRIPTS = ["overload", "connections", "hostile_images", "reload_race", "sigterm", "soak"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_failure_script_quick(script):
    env = dict(os.environ)
    env.setdefault("FERROSERVE_BIN", str(ROOT / "target" / "debug" / "ferroserve"))
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "failure" / f"{script}.py"),
                           "--quick"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"{script} --quick failed:\n{done.stdout}\n{done.stderr[-4000:]}"
