#!/usr/bin/env bash
# Compares ferroserve with two peer servers on the same ONNX models, one server at a time,
# all on 127.0.0.1, with Triton's perf_analyzer as the client:
#   - ferroserve (this repository, release build);
#   - Triton Inference Server 2.51 (PyPI nvidia-pytriton), Python backend running onnxruntime;
#   - Seldon MLServer 1.7 (PyPI mlserver), a custom MLModel running onnxruntime.
# ferroserve and Triton run each model with 2 instances of 1 intra-op thread; MLServer
# with its fastest setting here, inference in its own process with 2 intra-op threads.
# No dynamic batching, no response cache. perf_analyzer sends the same batch-1
# tensor (target/compare/repos/MODEL/perf-data) at concurrency 1, 4 and 16 over HTTP
# (binary tensors), HTTP with JSON tensors, and gRPC.
#
#   usage: scripts/compare.sh            full run (5 s windows; 20 to 40 minutes)
#          QUICK=1 scripts/compare.sh    smoke run (1 s windows, loose stability)
#
# Environment (defaults in brackets):
#   MODELS ["efficientnet-lite0 mobilenet-v2-random"]  SERVERS ["ferroserve triton mlserver"]
#   PROTOCOLS ["http http-json grpc"]  CONCURRENCY ["1 4 16"]
#   INTERVAL_MS [5000; QUICK 1000]  STABILITY [10; QUICK 50] (perf_analyzer percent)
#   MAX_TRIALS [10; QUICK 6]  BENCH_SECS [10; QUICK 2] (ferroserve bench --duration)
#   MLSERVER_WORKERS [0]  MLSERVER_THREADS [2]  (MLServer parallel_workers, intra-op threads)
#   FERROSERVE_PORT [18000]  TRITON_PORT [28000]  MLSERVER_PORT [38000]  (HTTP; gRPC +1, metrics +2)
#   PERF_ANALYZER [~/.cache/perf-analyzer/perf_analyzer]
#   BUILD [1] (0: skip `cargo build --release --workspace`)
#
# Writes raw results to target/compare/raw-DATE/ (raw-latest: the newest), the report to
# docs/comparison.md and charts to docs/comparison/. The machine should be otherwise idle:
# client and server share its cores.
# The settings, setup and the functions to start a server and run perf_analyzer are in
# scripts/compare/common.sh, shared with the image workload (scripts/compare-images.sh).
# shellcheck source=SCRIPTDIR/compare/common.sh
source "$(dirname "$0")/compare/common.sh"

MODELS=${MODELS:-"efficientnet-lite0 mobilenet-v2-random"}
SERVERS=${SERVERS:-"ferroserve ferroserve-tune triton mlserver"}
PROTOCOLS=${PROTOCOLS:-"http http-json grpc"}

# perf_analyzer's request tensor: the reference cat image.
INPUT_TENSOR=$PWD/tests/data/images/cat.input.f32
INPUT_SOURCE="the reference cat image"
[ -f "$INPUT_TENSOR" ] || INPUT_SOURCE="uniform random in [-1, 1], seed 0"

new_raw_dir raw
write_settings "\"input_tensor\": \"$INPUT_SOURCE\""

model_onnx() {
  case $1 in
    efficientnet-lite0) echo "$ROOT/models/efficientnet-lite0/1/model.onnx" ;;
    mobilenet-v2-random) echo "$PWD/tests/data/models/mobilenet-v2-random/model.onnx" ;;
    *) echo "unknown model $1" >&2; return 1 ;;
  esac
}

# ---------------------------------------------------------------- measurements

# measure SERVER MODEL PROTOCOL CONCURRENCY: one perf_analyzer run into
# raw/SERVER__MODEL__PROTOCOL__cN.csv (see run_perf_analyzer).
measure() {
  local server=$1 model=$2 protocol=$3 c=$4
  local args=(-m "$model" --input-data "$OUT/repos/$model/perf-data")
  case $protocol in
    http) args+=(-i http -u "127.0.0.1:$(http_port "$server")") ;;
    http-json) args+=(-i http -u "127.0.0.1:$(http_port "$server")"
                      --input-tensor-format json --output-tensor-format json) ;;
    grpc) args+=(-i grpc -u "127.0.0.1:$(grpc_port "$server")") ;;
  esac
  if [ "$server" = ferroserve-tune ]; then
    # Let the tuner settle on this load first (it measures 1 s windows).
    local bench_protocol=$protocol
    [ "$protocol" = http-json ] && bench_protocol=http
    "$FERRO" bench --quiet --model "$model" --protocol "$bench_protocol" \
      --url "http://127.0.0.1:$(http_port "$server")" --grpc-url "http://127.0.0.1:$(grpc_port "$server")" \
      --concurrency "$c" --warmup 0s --duration "${TUNE_SETTLE_SECS}s" >/dev/null 2>&1 || true
  fi
  if [ "$server" = mlserver ]; then
    # mlserver_serve.py reports max_batch_size 0, so the shape names the batch dimension.
    read -r -a shape_flags <"$OUT/repos/$model/batch1-shape-flags"
    args+=("${shape_flags[@]}")
  fi
  run_perf_analyzer "$RAW/${server}__${model}__${protocol}__c$c" "${args[@]}"
}

# ---- Hook: the in-process engine ceiling, from `ferroserve bench` -------------------------
# Runs only once the binary has a `bench` subcommand. Its JSON ({"runs": [{concurrency,
# throughput, p50_ms, p99_ms}, ...]}, or such runs per entry of "arrangements") becomes the
# "in-process" rows of the report.
ferroserve_bench() {
  local model=$1
  if ! "$FERRO" bench --help >/dev/null 2>&1; then
    echo "  ferroserve bench: not available in this build; no in-process rows"
    return 0
  fi
  local levels same=()
  levels=$(echo "$CONCURRENCY" | tr ' ' ',')
  # The ceiling is the best arrangement of the engine (every instances x threads split
  # `serve --tune` chooses among), on the same input as perf_analyzer's.
  same=(--input "$OUT/repos/$model/perf-data/input")
  if "$FERRO" bench --in-process --model-repository "$OUT/repos/$model/ferroserve" \
      --model "$model" --concurrency "$levels" --duration "${BENCH_SECS}s" "${same[@]}" \
      --json "$RAW/ferroserve-in-process__${model}.json" >"$OUT/logs/bench-$model.log" 2>&1; then
    echo "  ferroserve bench: $RAW/ferroserve-in-process__${model}.json"
  else
    echo "  ferroserve bench failed; its log:" >&2
    tail -n 20 "$OUT/logs/bench-$model.log" >&2
    FAILED=1
  fi
}

for model in $MODELS; do
  onnx=$(model_onnx "$model")
  own_config=()
  # The bundled model is served with the project's own config, as a user would.
  if [ -f "$ROOT/models/$model/config.pbtxt" ]; then
    own_config=(--ferroserve-config "$ROOT/models/$model/config.pbtxt")
  fi
  "$PY" scripts/compare/make_repos.py --model "$model" --onnx "$onnx" --out "$OUT/repos/$model" \
    --instances "$INSTANCES" --max-batch "$MAX_BATCH" --threads "$THREADS" \
    --mlserver-threads "$MLSERVER_THREADS" --input-tensor "$INPUT_TENSOR" \
    "${own_config[@]}"

  for server in $SERVERS; do
    echo "== $server, $model"
    start_server "$server" "$model"
    json_only=()
    [ "$server" = mlserver ] && json_only=(--json-only)
    # A wrong answer would make the numbers meaningless: stop here if one is wrong.
    "$PY" scripts/compare/check_outputs.py --server "$server" --model "$model" --onnx "$onnx" \
      --tensor "$OUT/repos/$model/perf-data/input" --http "127.0.0.1:$(http_port "$server")" \
      --grpc "127.0.0.1:$(grpc_port "$server")" "${json_only[@]}" | tee -a "$RAW/checks.txt"
    for protocol in $PROTOCOLS; do
      # MLServer's REST API has no binary tensor extension: JSON only.
      if [ "$server" = mlserver ] && [ "$protocol" = http ]; then continue; fi
      for c in $CONCURRENCY; do
        measure "$server" "$model" "$protocol" "$c"
      done
    done
    stop_server
  done

  ferroserve_bench "$model"
done

"$PY" scripts/compare/report.py report --raw "$RAW" --md docs/comparison.md --charts docs/comparison
echo "report: docs/comparison.md, charts in docs/comparison/, raw data in $RAW"
exit "$FAILED"
