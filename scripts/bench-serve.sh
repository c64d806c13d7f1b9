#!/usr/bin/env bash
# Reproduces the serving numbers of docs/performance.md on this machine:
#   1. `ferroserve classify` throughput over 200 photos, on ONNX Runtime and on tract;
#   2. Triton's perf_analyzer against `ferroserve serve` (bundled efficientnet-lite0,
#      preprocessed tensor input) over HTTP and gRPC at concurrency 1, 4 and 16.
# Needs perf_analyzer (scripts/install-perf-analyzer.sh, or PERF_ANALYZER=path).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/wait-ready.sh
scripts/setup-onnxruntime.sh
cargo build --release -q --workspace
BIN=target/release/ferroserve
OUT=target/bench-data
mkdir -p "$OUT"

echo "== classify: 200 photos (the 4 samples x 50), 2 cores =="
rm -rf "$OUT/photos" && mkdir -p "$OUT/photos"
for i in $(seq 1 50); do
  for f in tests/data/images/*.jpg tests/data/images/*.png; do cp "$f" "$OUT/photos/$i-$(basename "$f")"; done
done
for engine in onnxruntime tract; do
  "$BIN" classify --engine "$engine" "$OUT/photos" 2>&1 >/dev/null | tail -n 1
done

PA=${PERF_ANALYZER:-$HOME/.cache/perf-analyzer/perf_analyzer}
if [ ! -x "$PA" ]; then bash scripts/install-perf-analyzer.sh >/dev/null; fi
echo "== perf_analyzer against ferroserve serve =="
"$BIN" serve --host 127.0.0.1 --http-port 18000 --grpc-port 18001 --metrics-port 18002 2>"$OUT/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
wait_ready http://127.0.0.1:18000/v2/health/ready 60 "$server"
printf '%-5s %11s %12s %9s %9s\n' proto concurrency "infer/s" "p50 ms" "p99 ms"
for proto in http grpc; do
  port=$([ "$proto" = http ] && echo 18000 || echo 18001)
  for c in 1 4 16; do
    "$PA" -m efficientnet-lite0 -u "127.0.0.1:$port" -i "$proto" --concurrency-range "$c:$c" \
      --measurement-interval 4000 -f "$OUT/pa-$proto-$c.csv" >/dev/null
    python3 - "$OUT/pa-$proto-$c.csv" "$proto" "$c" <<'PY'
import csv, sys
row = next(csv.DictReader(open(sys.argv[1])))
print(f"{sys.argv[2]:<5} {sys.argv[3]:>11} {float(row['Inferences/Second']):>12.1f} "
      f"{int(row['p50 latency'])/1000:>9.2f} {int(row['p99 latency'])/1000:>9.2f}")
PY
  done
done
