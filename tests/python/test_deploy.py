"""The deployment files (deploy/: Dockerfile, Helm chart, kustomize base and overlays,
KServe runtime, dashboard), checked by scripts/check-deploy.sh without a cluster. It
installs its pinned tools into .cache/deploy/ on first use (about a minute on a fresh
machine, 10 s after that). Without a kubectl with kustomize v5 it still checks
everything else and says so; that is reported here as a warning, not hidden."""

import subprocess
import warnings

from conftest import ROOT


def test_check_deploy():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "check-deploy.sh")], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"check-deploy.sh failed:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    for line in done.stderr.splitlines():
        if "SKIPPED" in line:
            warnings.warn(line)
