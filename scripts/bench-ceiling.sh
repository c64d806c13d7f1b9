#!/usr/bin/env bash
# The served model against the in-process ceiling, in one run, and what the client costs:
#   1. `ferroserve bench --in-process` (the engine alone, every arrangement);
#   2. `ferroserve serve` loaded by `ferroserve bench` over HTTP and gRPC;
#   3. the same server loaded by perf_analyzer over HTTP, with the CPU time each process
#      used, to show how much of the two cores the client takes.
# Environment: LEVELS (default 1,16), DURATION (default 10s), ENGINE (default: the
# model's configuration, ONNX Runtime), PRECISION (default: the configuration's, f32).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/wait-ready.sh
LEVELS=${LEVELS:-1,16}
DURATION=${DURATION:-10s}
BIN=target/release/ferroserve
OUT=target/bench-ceiling${ENGINE:+-$ENGINE}
PORT=18700
PA=${PERF_ANALYZER:-$HOME/.cache/perf-analyzer/perf_analyzer}
INPUT=tests/data/images/cat.input.f32
ENGINE_FLAGS=()
[ -n "${ENGINE:-}" ] && ENGINE_FLAGS+=(--engine "$ENGINE")
[ -n "${PRECISION:-}" ] && ENGINE_FLAGS+=(--precision "$PRECISION")
scripts/setup-onnxruntime.sh
scripts/setup-openvino.sh
cargo build --release -q --workspace
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== in-process (the engine alone)"
"$BIN" bench --quiet --in-process "${ENGINE_FLAGS[@]}" --input "$INPUT" --concurrency "$LEVELS" \
  --duration "$DURATION" --json "$OUT/in-process.json"

"$BIN" serve "${ENGINE_FLAGS[@]}" --host 127.0.0.1 --http-port $PORT --grpc-port $((PORT + 1)) \
  --metrics-port $((PORT + 2)) --model-control-mode explicit \
  --load-model efficientnet-lite0 2>"$OUT/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
wait_ready "http://127.0.0.1:$PORT/v2/health/ready" 60 "$server"
for protocol in http grpc; do
  echo "== served, ferroserve bench, $protocol"
  "$BIN" bench --quiet --protocol "$protocol" --url "http://127.0.0.1:$PORT" \
    --grpc-url "http://127.0.0.1:$((PORT + 1))" --input "$INPUT" --concurrency "$LEVELS" \
    --duration "$DURATION" --json "$OUT/served-$protocol.json"
done

# CPU seconds (user + system) a process has used so far.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
if [ -x "$PA" ]; then
  for c in ${LEVELS//,/ }; do
    mkdir -p "$OUT/pa-data"
    before=$(cpu_seconds $server)
    "$PA" -m efficientnet-lite0 -u "127.0.0.1:$PORT" -i http --concurrency-range "$c:$c" \
      --measurement-interval 5000 -f "$OUT/pa-$c.csv" >"$OUT/pa-$c.log" 2>&1 &
    pa=$!
    start=$(date +%s.%N)
    pa_cpu=0
    while kill -0 $pa 2>/dev/null; do
      pa_cpu=$(cpu_seconds $pa 2>/dev/null || echo "$pa_cpu")
      sleep 0.2
    done
    end=$(date +%s.%N)
    after=$(cpu_seconds $server)
    python3 - "$OUT/pa-$c.csv" "$c" "$pa_cpu" "$before" "$after" "$start" "$end" <<'PY'
import csv, sys
row = next(csv.DictReader(open(sys.argv[1])))
c, pa = sys.argv[2], float(sys.argv[3])
server = float(sys.argv[5]) - float(sys.argv[4])
wall = float(sys.argv[7]) - float(sys.argv[6])
print(f"== served, perf_analyzer, http, c={c}: {float(row['Inferences/Second']):.1f} infer/s, "
      f"p50 {int(row['p50 latency'])/1000:.2f} ms; CPU over {wall:.0f} s: "
      f"perf_analyzer {pa / wall:.2f} cores, server {server / wall:.2f} cores")
PY
  done
fi
