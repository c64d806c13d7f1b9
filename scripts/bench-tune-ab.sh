#!/usr/bin/env bash
# Is `serve --tune` ever worse than the static settings? Alternates, ROUNDS times, three
# servers of the bundled efficientnet-lite0 under the same HTTP loads (binary tensors,
# closed loop, each level in LEVELS in turn):
#   default  the static default: the bundled config's 2 instances x 1 thread;
#   1x2      one instance on both cores (`count: 1`, --intra-op-threads 2), what a lone
#            client wants;
#   tune     `--tune`, given TUNE_WARMUP at each level to settle before it is measured.
# Then per level the median over rounds of each server's throughput, p50 and p99, and
# --tune's ratios to the best static one. One run, one machine: compare its rows only.
# Environment: ROUNDS (default 3), LEVELS (default 1,4,16), DURATION (default 10s),
# TUNE_WARMUP (default 30s), ENGINE (default onnxruntime). Results in target/bench-tune-ab/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/wait-ready.sh
ROUNDS=${ROUNDS:-3}
LEVELS=${LEVELS:-1,4,16}
DURATION=${DURATION:-10s}
TUNE_WARMUP=${TUNE_WARMUP:-30s}
ENGINE=${ENGINE:-onnxruntime}
BIN=target/release/ferroserve
OUT=target/bench-tune-ab
PORT=18950
scripts/setup-onnxruntime.sh
[ "$ENGINE" = openvino ] && scripts/setup-openvino.sh
cargo build --release -q -p ferroserve
rm -rf "$OUT" && mkdir -p "$OUT/one-instance/efficientnet-lite0/1"
one=$OUT/one-instance/efficientnet-lite0
cp models/efficientnet-lite0/1/model.onnx "$one/1/"
cp models/efficientnet-lite0/labels.txt "$one/"
sed 's/^    count: 2$/    count: 1/' models/efficientnet-lite0/config.pbtxt >"$one/config.pbtxt"
grep -q '^    count: 1$' "$one/config.pbtxt"

echo "== $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p')" \
  "model $(lscpu | sed -n 's/^Model: *//p'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"

server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null || true' EXIT
# run NAME WARMUP [serve flags...]: one server, every level, results in $OUT/NAME-ROUND.json.
run() {
  local name=$1 warmup=$2
  shift 2
  "$BIN" serve --engine "$ENGINE" --load-model efficientnet-lite0 --model-control-mode explicit \
    --host 127.0.0.1 --http-port $PORT --grpc-port $((PORT + 1)) --metrics-port $((PORT + 2)) \
    --log warn,ferroserve_runtime::tune=info "$@" 2>>"$OUT/$name.log" &
  server=$!
  wait_ready "http://127.0.0.1:$PORT/v2/models/efficientnet-lite0/ready" 60 "$server" ||
    { echo "$name: efficientnet-lite0 did not become ready: $OUT/$name.log" >&2; exit 1; }
  "$BIN" bench --quiet --protocol http --url "http://127.0.0.1:$PORT" \
    --input tests/data/images/cat.input.f32 --concurrency "$LEVELS" --warmup "$warmup" \
    --duration "$DURATION" --json "$OUT/$name-$round.json" >/dev/null
  kill -TERM "$server" && wait "$server" || true
  server=
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS" >&2
  run default 3s
  run 1x2 3s --model-repository "$OUT/one-instance" --intra-op-threads 2
  run tune "$TUNE_WARMUP" --tune
done
trap - EXIT

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
names = ["default", "1x2", "tune"]
runs = {n: [{r["concurrency"]: r for r in json.load(open(f"{out}/{n}-{k}.json"))["runs"]}
            for k in range(1, rounds + 1)] for n in names}
levels = sorted(runs["tune"][0])
med = lambda n, c, key: statistics.median(r[c][key] for r in runs[n])
print(f"HTTP binary, closed loop; medians of {rounds} alternating rounds "
      "(req/s; p50 and p99 in ms)\n")
print("| concurrency | " + " | ".join(names) + " | --tune / best static req/s | "
      "--tune p50 - best static p50 |")
print("| --- |" + " --- |" * (len(names) + 2))
for c in levels:
    cells = [f"{med(n, c, 'throughput'):.1f}; {med(n, c, 'p50_ms'):.2f}; {med(n, c, 'p99_ms'):.2f}"
             for n in names]
    best = max(["default", "1x2"], key=lambda n: med(n, c, "throughput"))
    ratio = med("tune", c, "throughput") / med(best, c, "throughput")
    p50 = med("tune", c, "p50_ms") - med(best, c, "p50_ms")
    print(f"| {c} | " + " | ".join(cells) + f" | {ratio:.2f} ({best}) | {p50:+.2f} ms |")
print("\nPer round, --tune / default req/s: " + "; ".join(
    f"c={c}: " + ", ".join(f"{runs['tune'][k][c]['throughput'] / runs['default'][k][c]['throughput']:.2f}"
                           for k in range(rounds)) for c in levels))
PY
grep -h "tuner:" "$OUT/tune.log" | tail -3 || true
