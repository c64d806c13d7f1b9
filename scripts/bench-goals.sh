#!/usr/bin/env bash
# Issue 9's four speed goals, every figure from one run, for a machine whose cores other
# processes share (compare rows of one run only):
#   1. ONNX Runtime f32 in-process, the baseline (c=1 and c=16, best arrangement);
#   2. OpenVINO from Python in PRECISION, the ceiling OpenVINO Model Server cannot beat;
#   3. `ferroserve serve --engine openvino --precision PRECISION` with its default
#      arrangement, HTTP binary at c=16, alternating ROUNDS times with 2. (the server
#      stopped with SIGSTOP while Python runs, so neither loads the other);
#   4. `serve --tune`, HTTP at c=1 after 15 s of the same load.
# Then the goals as ratios. Environment: PRECISION (default bf16; f32 on a CPU without
# it), DURATION (default 8, seconds), ROUNDS (default 2). Results in target/bench-goals/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/wait-ready.sh
PRECISION=${PRECISION:-bf16}
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-2}
BIN=target/release/ferroserve
OUT=target/bench-goals
INPUT=tests/data/images/cat.input.f32
PORT=18900
scripts/setup-onnxruntime.sh
scripts/setup-openvino.sh
cargo build --release -q -p ferroserve
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p')" \
  "model $(lscpu | sed -n 's/^Model: *//p'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== ONNX Runtime f32, in-process"
"$BIN" bench --quiet --in-process --engine onnxruntime --precision f32 --input "$INPUT" \
  --concurrency 1,16 --duration "${DURATION}s" --json "$OUT/onnxruntime.json" | grep best
python=(scripts/bench-openvino-python.py --precision "$PRECISION" --duration "$DURATION")
echo "== OpenVINO from Python $PRECISION, in-process, c=1"
"${python[@]}" --concurrency 1 --json "$OUT/python-c1.json" | tail -1

serve() {
  "$BIN" serve --engine openvino --precision "$PRECISION" "$@" --host 127.0.0.1 \
    --http-port $PORT --grpc-port $((PORT + 1)) --metrics-port $((PORT + 2)) \
    2>>"$OUT/serve.log" &
  server=$!
  wait_ready "http://127.0.0.1:$PORT/v2/models/efficientnet-lite0/ready" 60 "$server" && return
  echo "efficientnet-lite0 did not become ready (a precision this CPU lacks?): $OUT/serve.log" >&2
  exit 1
}
stop() { kill -CONT "$server" 2>/dev/null || true; kill -TERM "$server"; wait "$server" || true; }
trap 'kill -CONT $server 2>/dev/null; kill $server 2>/dev/null || true' EXIT
http() {
  "$BIN" bench --quiet --protocol http --url "http://127.0.0.1:$PORT" --input "$INPUT" "$@"
}

serve
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round: OpenVINO from Python $PRECISION c=16, then served c=16"
  kill -STOP "$server"
  "${python[@]}" --concurrency 16 --json "$OUT/python-c16-$round.json" | tail -1
  kill -CONT "$server"
  http --concurrency 16 --duration "${DURATION}s" --json "$OUT/served-c16-$round.json" | tail -1
done
stop
echo "== serve --tune, HTTP c=1 after 15 s"
serve --tune
http --concurrency 1 --warmup 15s --duration "${DURATION}s" --json "$OUT/tune-c1.json" | tail -1
stop
trap - EXIT

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
load = lambda name: json.load(open(f"{out}/{name}.json"))
def best(runs, c):
    return max((r for r in runs if r["concurrency"] == c), key=lambda r: r["throughput"])
ort = [r for a in load("onnxruntime")["arrangements"] for r in a["runs"]]
python_c1 = best(load("python-c1")["runs"], 1)
tune = load("tune-c1")["runs"][0]
print(f"ONNX Runtime f32: c=1 p50 {best(ort, 1)['p50_ms']:.2f} ms, c=16 {best(ort, 16)['throughput']:.1f} req/s")
for r in range(1, rounds + 1):
    py = best(load(f"python-c16-{r}")["runs"], 16)["throughput"]
    served = load(f"served-c16-{r}")["runs"][0]["throughput"]
    print(f"round {r}: served c=16 {served:.1f} / Python {py:.1f} = {served / py:.2f}x (goal 0.9x)")
print(f"serve --tune c=1 p50 {tune['p50_ms']:.2f} ms, Python {python_c1['p50_ms']:.2f} ms: "
      f"{tune['p50_ms'] - python_c1['p50_ms']:+.2f} ms (goal within 0.3 ms)")
PY
echo "== done; load $(cut -d' ' -f1-3 /proc/loadavg)"
