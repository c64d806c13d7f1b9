#!/usr/bin/env bash
# Installs the peer servers of the comparison (Triton from nvidia-pytriton, MLServer) and
# their onnxruntime into .venv-peers at the repository root, with the pins of
# requirements-peers.txt. Safe to run again: it does nothing while the pins are unchanged.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=.venv-peers
REQ=scripts/compare/requirements-peers.txt
STAMP=$VENV/.installed-requirements

if [ -f "$STAMP" ] && cmp -s "$REQ" "$STAMP"; then
  exit 0
fi
echo "setup: installing the peer servers into $VENV (a few minutes the first time)" >&2
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r "$REQ"
"$VENV/bin/python" -m pip check >&2
cp "$REQ" "$STAMP"
echo "setup: done" >&2
