#!/usr/bin/env bash
# What each serving technique is worth: `ferroserve serve --naive` (all of them off),
# then the techniques turned back on one at a time, each step measured under the same
# load (`ferroserve bench`, HTTP binary tensors, closed loop). Reproduces the
# before/after table of docs/performance.md.
# Environment: LEVELS (default 1,4,16), DURATION (default 5s), PROTOCOL (default http).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/wait-ready.sh
LEVELS=${LEVELS:-1,4,16}
DURATION=${DURATION:-5s}
PROTOCOL=${PROTOCOL:-http}
BIN=target/release/ferroserve
OUT=target/bench-naive
PORT=18600
scripts/setup-onnxruntime.sh
cargo build --release -q --workspace
rm -rf "$OUT" && mkdir -p "$OUT"

# The bundled model with the response cache turned on, for the last step.
cached="$OUT/cached/efficientnet-lite0"
mkdir -p "$cached/1"
ln -s "$PWD/models/efficientnet-lite0/1/model.onnx" "$cached/1/model.onnx"
ln -s "$PWD/models/efficientnet-lite0/labels.txt" "$cached/labels.txt"
cp models/efficientnet-lite0/config.pbtxt "$cached/config.pbtxt"
echo 'response_cache { enable: true }' >>"$cached/config.pbtxt"

# step NAME [serve flags...]
step() {
  local name=$1
  shift
  "$BIN" serve --host 127.0.0.1 --http-port $PORT --grpc-port $((PORT + 1)) \
    --metrics-port $((PORT + 2)) --model-control-mode explicit \
    --load-model efficientnet-lite0 "$@" 2>"$OUT/$name.log" &
  local server=$!
  wait_ready "http://127.0.0.1:$PORT/v2/health/ready" 60 "$server" ||
    { echo "$name: see $OUT/$name.log" >&2; exit 1; }
  echo "== $name" >&2
  "$BIN" bench --quiet --protocol "$PROTOCOL" --url "http://127.0.0.1:$PORT" \
    --grpc-url "http://127.0.0.1:$((PORT + 1))" --input tests/data/images/cat.input.f32 \
    --concurrency "$LEVELS" --duration "$DURATION" --json "$OUT/$name.json" >/dev/null
  kill "$server" && wait "$server" || true
}

step 1-naive --naive
step 2-nodelay --naive=one-instance,buffers,batching,cache
step 3-instances --naive=buffers,batching,cache
step 4-default
step 5-cache --model-repository "$OUT/cached"

python3 - "$OUT" "$PROTOCOL" <<'PY'
import glob, json, os, sys
out, protocol = sys.argv[1], sys.argv[2]
names = {
    "1-naive": "`--naive`: one instance on all cores, Nagle on, buffers per run, no cache",
    "2-nodelay": "+ TCP_NODELAY",
    "3-instances": "+ one instance per core (2 x 1 thread)",
    "4-default": "+ tensor buffers reused: the default server (the bundled config has no dynamic batching and no cache)",
    "5-cache": "+ response cache (the same tensor every time: all hits)",
}
steps = [(os.path.basename(p)[:-5], json.load(open(p))["runs"]) for p in sorted(glob.glob(f"{out}/*.json"))]
levels = [r["concurrency"] for r in steps[0][1]]
print(f"{protocol}, closed loop; infer/s and p99 per concurrency\n")
print("| step | " + " | ".join(f"c={c} infer/s | c={c} p99" for c in levels) + " |")
print("| --- |" + " --- | --- |" * len(levels))
for name, runs in steps:
    cells = [f"{r['throughput']:.1f} | {r['p99_ms']:.2f} ms" for r in runs]
    print(f"| {names.get(name, name)} | " + " | ".join(cells) + " |")
PY
