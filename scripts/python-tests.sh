#!/usr/bin/env bash
# Runs the Python suite (Triton's tritonclient, HTTP and gRPC; the OpenAPI document; the
# page in headless Chromium) against a real ferroserve, and the deploy checks
# (scripts/check-deploy.sh, in test_deploy.py). Installs its packages from PyPI
# into .venv on first use, and Debian's chromium and chromium-driver when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import tritonclient.grpc, tritonclient.http, pytest, onnx, selenium, schemathesis, openapi_spec_validator" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tests/python/requirements.txt
fi
# promtool (Debian's prometheus package) lints a metrics scrape in test_operations.py.
if ! command -v promtool >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "python-tests: installing promtool (Debian package prometheus)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package may start a Prometheus server; the tests need only promtool.
  pkill -x prometheus 2>/dev/null || true
fi
# The browser test drives Debian's Chromium; without apt it is skipped, loudly.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "python-tests: WARNING: no chromium and no apt-get as root to install it;" \
      "SKIPPING the browser test (tests/python/test_browser.py)" >&2
    export FERROSERVE_BROWSER=skip
  fi
fi
# `make test` passes the binary `cargo test --workspace` just built (building it again
# alone would resolve other dependency features and recompile much of the tree).
if [ -z "${FERROSERVE_BIN:-}" ]; then
  cargo build -q --workspace
fi
exec .venv/bin/python -m pytest -q tests/python "$@"
