#!/usr/bin/env bash
# Does --tune find a setting as good as the best static one? Reproduces the tuning table
# of docs/performance.md:
#   1. a sweep of static settings of the bundled efficientnet-lite0 (instances x threads,
#      dynamic batching's max batch and queue delay), each served by `ferroserve serve`
#      and loaded by `ferroserve bench` over gRPC at each concurrency;
#   2. `ferroserve serve --tune` under the same loads, given time to settle first;
#   3. per concurrency: the best static setting whose p99 meets the target, and the
#      tuned server's throughput as a share of it.
# Environment: TARGET_MS (p99 target, default 100), LEVELS (default 1,4,16), DURATION
# (measurement per level, default 5s), TUNE_WARMUP (default 30s), TUNE_DURATION (the
# tuned server's measurement per level, default 20s), QUICK=1 (a smaller
# grid, for a smoke run), TUNED_ONLY=1 (measure --tune again against the static runs
# already in target/bench-tune).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/wait-ready.sh
TARGET_MS=${TARGET_MS:-100}
LEVELS=${LEVELS:-1,4,16}
DURATION=${DURATION:-5s}
TUNE_WARMUP=${TUNE_WARMUP:-30s}
# Longer than DURATION: the tuner probes a neighbour now and then, and its cost belongs
# in the average, not in or out of a short window by chance.
TUNE_DURATION=${TUNE_DURATION:-20s}
BIN=target/release/ferroserve
OUT=target/bench-tune
PORT=18500
scripts/setup-onnxruntime.sh
cargo build --release -q --workspace
if [ "${TUNED_ONLY:-0}" != 1 ]; then rm -rf "$OUT"; fi
mkdir -p "$OUT/repos" "$OUT/runs"
cores=$(nproc)

# A repository holding the bundled model with `instance_group` and `dynamic_batching`
# replaced: make_repo NAME INSTANCES MAX_BATCH DELAY_US (MAX_BATCH 1: no batching).
make_repo() {
  local dir="$OUT/repos/$1/efficientnet-lite0"
  mkdir -p "$dir/1"
  ln -s "$PWD/models/efficientnet-lite0/1/model.onnx" "$dir/1/model.onnx"
  ln -s "$PWD/models/efficientnet-lite0/labels.txt" "$dir/labels.txt"
  # Everything but the instance group, which is rewritten below.
  sed '/^instance_group \[/,/^\]/d' models/efficientnet-lite0/config.pbtxt >"$dir/config.pbtxt"
  printf 'instance_group [ { count: %s kind: KIND_CPU } ]\n' "$2" >>"$dir/config.pbtxt"
  if [ "$3" -gt 1 ]; then
    printf 'dynamic_batching { preferred_batch_size: [ %s ] max_queue_delay_microseconds: %s }\n' \
      "$3" "$4" >>"$dir/config.pbtxt"
    sed -i "s/^max_batch_size: .*/max_batch_size: $3/" "$dir/config.pbtxt"
  fi
}

# serve_and_bench NAME WARMUP DURATION [serve flags...]: one server, the whole sweep.
serve_and_bench() {
  local name=$1 warmup=$2 duration=$3
  shift 3
  "$BIN" serve --host 127.0.0.1 --http-port $PORT --grpc-port $((PORT + 1)) \
    --metrics-port $((PORT + 2)) "$@" 2>"$OUT/runs/$name.log" &
  local server=$!
  wait_ready "http://127.0.0.1:$PORT/v2/health/ready" 60 "$server" ||
    { echo "$name: see $OUT/runs/$name.log" >&2; exit 1; }
  "$BIN" bench --quiet --protocol grpc --grpc-url "http://127.0.0.1:$((PORT + 1))" \
    --input tests/data/images/cat.input.f32 --concurrency "$LEVELS" \
    --warmup "$warmup" --duration "$duration" --json "$OUT/runs/$name.json" >/dev/null
  curl -s "http://127.0.0.1:$((PORT + 2))/metrics" | grep '^ferroserve_tuned' \
    >"$OUT/runs/$name.tuned" || true
  kill "$server" && wait "$server" || true
}

if [ "${QUICK:-0}" = 1 ]; then
  batches="1 4"; delays="0"
else
  batches="1 2 4 8"; delays="0 500 2000"
fi
instances=$cores
[ "${TUNED_ONLY:-0}" = 1 ] && instances=0
while [ "$instances" -ge 1 ]; do
  for batch in $batches; do
    for delay in $delays; do
      [ "$batch" = 1 ] && [ "$delay" != 0 ] && continue
      name="static-${instances}x$((cores / instances))-b$batch-d$delay"
      make_repo "$name" "$instances" "$batch" "$delay"
      echo "== $name" >&2
      serve_and_bench "$name" 2s "$DURATION" --model-repository "$OUT/repos/$name" --load-model efficientnet-lite0 \
        --model-control-mode explicit
    done
  done
  instances=$((instances / 2))
done
echo "== tuned (p99 target $TARGET_MS ms)" >&2
serve_and_bench tuned "$TUNE_WARMUP" "$TUNE_DURATION" --tune --latency-target-ms "$TARGET_MS" \
  --load-model efficientnet-lite0 --model-control-mode explicit

python3 - "$OUT/runs" "$TARGET_MS" <<'PY'
import glob, json, os, sys
runs, target = sys.argv[1], float(sys.argv[2])
def load(path):
    return {r["concurrency"]: r for r in json.load(open(path))["runs"]}
static = {os.path.basename(p)[7:-5]: load(p) for p in glob.glob(f"{runs}/static-*.json")}
tuned = load(f"{runs}/tuned.json")
print(f"p99 target {target:g} ms; gRPC, closed loop; throughput in infer/s\n")
print("| concurrency | best static setting | its infer/s | its p99 | --tune infer/s | --tune p99 | --tune / best |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for c in sorted(tuned):
    ok = [(r[c]["throughput"], name, r[c]) for name, r in static.items()
          if c in r and r[c]["p99_ms"] <= target]
    t = tuned[c]
    if not ok:
        print(f"| {c} | none meets the target | | | {t['throughput']:.1f} | {t['p99_ms']:.2f} ms | |")
        continue
    best, name, r = max(ok)
    print(f"| {c} | {name} | {best:.1f} | {r['p99_ms']:.2f} ms | {t['throughput']:.1f} | "
          f"{t['p99_ms']:.2f} ms | {t['throughput'] / best:.0%} |")
print("\nEvery static setting (infer/s, p99 ms):\n")
levels = sorted(tuned)
print("| setting | " + " | ".join(f"c={c}" for c in levels) + " |")
print("| --- |" + " --- |" * len(levels))
for name in sorted(static):
    cells = [f"{static[name][c]['throughput']:.1f}, {static[name][c]['p99_ms']:.1f}" for c in levels]
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
echo "tuned server's final choice:"; cat "$OUT/runs/tuned.tuned"
