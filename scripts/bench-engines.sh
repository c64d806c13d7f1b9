#!/usr/bin/env bash
# The in-process ceiling of each engine, in one run: for the bundled efficientnet-lite0
# and tests/data/models/mobilenet-v2-random, `ferroserve bench --in-process` on ONNX
# Runtime and on OpenVINO (every arrangement `--tune` chooses among, on 2 cores 2x1 and
# 1x2), then OpenVINO from Python on the same model and arrangements as the reference
# (scripts/bench-openvino-python.py). Batch 1, the cat's reference tensor, closed loop.
# ROUNDS rounds of it, each with the load average of the machine before and after, for a
# machine whose cores other processes share: compare rows of one round.
# Environment: LEVELS (default 1,4,16), DURATION (default 10, seconds), PRECISION
# (default f32), ENGINES (default "onnxruntime openvino"), ROUNDS (default 1). Results in
# target/bench-engines/ROUND/.
set -euo pipefail
cd "$(dirname "$0")/.."
LEVELS=${LEVELS:-1,4,16}
DURATION=${DURATION:-10}
PRECISION=${PRECISION:-f32}
ENGINES=${ENGINES:-"onnxruntime openvino"}
ROUNDS=${ROUNDS:-1}
BIN=target/release/ferroserve
OUT=target/bench-engines
INPUT=tests/data/images/cat.input.f32
scripts/setup-onnxruntime.sh
scripts/setup-openvino.sh
cargo build --release -q --workspace
rm -rf "$OUT" && mkdir -p "$OUT/repo/mobilenet-v2-random/1"
# The random-weight MobileNetV2 as a repository of its own, its configuration completed
# from the model (a copy: a link out of the repository would be refused).
cp tests/data/models/mobilenet-v2-random/model.onnx "$OUT/repo/mobilenet-v2-random/1/"

echo "== $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
  mkdir -p "$OUT/$round"
  echo "== round $round; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for model in efficientnet-lite0 mobilenet-v2-random; do
    repository=models
    [ "$model" = mobilenet-v2-random ] && repository=$OUT/repo
    for engine in $ENGINES; do
      echo "== $model, ferroserve bench --in-process --engine $engine --precision $PRECISION"
      "$BIN" bench --quiet --in-process --model-repository "$repository" --model "$model" \
        --engine "$engine" --precision "$PRECISION" --input "$INPUT" --concurrency "$LEVELS" \
        --duration "${DURATION}s" --json "$OUT/$round/$model-$engine.json"
    done
    echo "== $model, OpenVINO from Python (scripts/bench-openvino-python.py)"
    scripts/bench-openvino-python.py --model-file "$repository/$model/1/model.onnx" \
      --precision "$PRECISION" --concurrency "$LEVELS" --duration "$DURATION" \
      --json "$OUT/$round/$model-openvino-python.json"
  done
  echo "== round $round done; load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
