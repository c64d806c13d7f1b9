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
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  INTERVAL_MS=${INTERVAL_MS:-1000}; STABILITY=${STABILITY:-50}; MAX_TRIALS=${MAX_TRIALS:-6}
  BENCH_SECS=${BENCH_SECS:-2}
else
  INTERVAL_MS=${INTERVAL_MS:-5000}; STABILITY=${STABILITY:-10}; MAX_TRIALS=${MAX_TRIALS:-10}
  BENCH_SECS=${BENCH_SECS:-10}
fi
MODELS=${MODELS:-"efficientnet-lite0 mobilenet-v2-random"}
SERVERS=${SERVERS:-"ferroserve ferroserve-tune triton mlserver"}
# ferroserve-tune: `serve --tune` with this p99 target, given TUNE_SETTLE_SECS of the
# coming load (from `ferroserve bench`) before each measurement.
TUNE_TARGET_MS=${TUNE_TARGET_MS:-100}
TUNE_SETTLE_SECS=${TUNE_SETTLE_SECS:-15}
PROTOCOLS=${PROTOCOLS:-"http http-json grpc"}
CONCURRENCY=${CONCURRENCY:-"1 4 16"}
PA=${PERF_ANALYZER:-$HOME/.cache/perf-analyzer/perf_analyzer}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-180}
# HTTP ports; gRPC and metrics take the next two.
FERROSERVE_PORT=${FERROSERVE_PORT:-18000}
FERROSERVE_TUNE_PORT=${FERROSERVE_TUNE_PORT:-18010}
TRITON_PORT=${TRITON_PORT:-28000}
MLSERVER_PORT=${MLSERVER_PORT:-38000}

# ferroserve and Triton: 2 cores, so 2 instances x 1 intra-op thread.
INSTANCES=2
THREADS=1
MAX_BATCH=8
# MLServer: inference in the server process (parallel_workers 0) with 2 intra-op threads.
# The fastest of the settings tried on the 2-core machine (efficientnet-lite0, gRPC,
# concurrency 4 and 16, three alternating 2 s rounds): 0 workers x 2 threads 103-116
# infer/s; 2 workers x 1 thread 70-101 (each request is pickled to a worker process and
# back); 1 worker x 2 threads 43-64.
MLSERVER_WORKERS=${MLSERVER_WORKERS:-0}
MLSERVER_THREADS=${MLSERVER_THREADS:-2}

OUT=$ROOT/target/compare
# One folder per run, so an aborted run leaves earlier results alone; raw-latest points
# at the newest.
RAW=$OUT/raw-$(date -u +%Y%m%dT%H%M%SZ)
VENV=$ROOT/.venv-peers
PY=$VENV/bin/python
FERRO=$ROOT/target/release/ferroserve

# ---------------------------------------------------------------- setup

scripts/compare/setup.sh
scripts/setup-onnxruntime.sh
# Blocks on the cargo lock while someone else builds; that is fine. BUILD=0 measures the
# binary already in target/release.
if [ "${BUILD:-1}" = 1 ]; then cargo build --release -q --workspace; fi
if [ ! -x "$PA" ]; then bash scripts/install-perf-analyzer.sh >/dev/null; fi

# The wheel's binary calls itself "Version 0.0.0"; the installer's unpacked wheel names
# the release.
perf_analyzer_version() {
  local info=("$(dirname "$PA")"/pa/perf_analyzer-*.dist-info)
  if [ -d "${info[0]}" ]; then basename "${info[0]}" .dist-info | sed 's/^perf_analyzer-//'
  else "$PA" --version 2>&1 | head -n1; fi
}

# perf_analyzer's request tensor: the reference cat image.
INPUT_TENSOR=$PWD/tests/data/images/cat.input.f32
INPUT_SOURCE="the reference cat image"
[ -f "$INPUT_TENSOR" ] || INPUT_SOURCE="uniform random in [-1, 1], seed 0"

mkdir -p "$RAW" "$OUT/logs"
ln -sfn "$(basename "$RAW")" "$OUT/raw-latest"
"$PY" scripts/compare/report.py machine > "$RAW/machine.json"
cat > "$RAW/settings.json" <<EOF
{"started": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "quick": $QUICK, "interval_ms": $INTERVAL_MS,
 "stability_percent": $STABILITY, "max_trials": $MAX_TRIALS, "bench_secs": $BENCH_SECS,
 "instances": $INSTANCES, "threads": $THREADS, "max_batch_size": $MAX_BATCH,
 "tune_target_ms": $TUNE_TARGET_MS, "tune_settle_secs": $TUNE_SETTLE_SECS,
 "mlserver_workers": $MLSERVER_WORKERS, "mlserver_threads": $MLSERVER_THREADS,
 "perf_analyzer": "$(perf_analyzer_version)", "input_tensor": "$INPUT_SOURCE"}
EOF

# Triton's Python backend looks for its stub program next to libtriton_python.so in the
# backend directory. The wheel ships one stub per Python version; take the one matching
# the venv, whose interpreter the stub embeds.
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
TRITON_DIST=$SITE/pytriton/tritonserver
PY_VERSION=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
PY_LIBDIR=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
rm -rf "$OUT/triton-backends"
mkdir -p "$OUT/triton-backends/python"
cp "$TRITON_DIST/backends/python/libtriton_python.so" \
   "$TRITON_DIST/backends/python/triton_python_backend_utils.py" \
   "$TRITON_DIST/python_backend_stubs/$PY_VERSION/triton_python_backend_stub" \
   "$OUT/triton-backends/python/"

model_onnx() {
  case $1 in
    efficientnet-lite0) echo "$ROOT/models/efficientnet-lite0/1/model.onnx" ;;
    mobilenet-v2-random) echo "$PWD/tests/data/models/mobilenet-v2-random/model.onnx" ;;
    *) echo "unknown model $1" >&2; return 1 ;;
  esac
}

# ---------------------------------------------------------------- servers

# Each server's HTTP port; gRPC is the next one, metrics the one after.
http_port() {
  case $1 in
    ferroserve) echo "$FERROSERVE_PORT" ;; ferroserve-tune) echo "$FERROSERVE_TUNE_PORT" ;; triton) echo "$TRITON_PORT" ;; mlserver) echo "$MLSERVER_PORT" ;;
  esac
}
grpc_port() { echo $(($(http_port "$1") + 1)); }
metrics_port() { echo $(($(http_port "$1") + 2)); }

# Refuses to start on a port something already listens on: readiness and load would
# otherwise go to that other process (another `ferroserve serve`, say) without notice.
check_ports_free() {
  local port
  for port in $(http_port "$1") $(grpc_port "$1") $(metrics_port "$1"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "compare: port $port is in use; stop what listens there or set the ${1^^} port" >&2
      exit 1
    fi
  done
}

SERVER_PID=""
SERVER_LOG=""

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  # Each server runs in its own process group (setsid), so its children (Triton's stubs,
  # MLServer's workers) stop with it.
  kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# start_server NAME MODEL: starts one server on its three ports, serving MODEL only.
start_server() {
  local name=$1 model=$2 repos=$OUT/repos/$2
  SERVER_LOG=$OUT/logs/$name-$model.log
  check_ports_free "$name"
  case $name in
    ferroserve)
      setsid "$FERRO" serve --host 127.0.0.1 --http-port "$FERROSERVE_PORT" \
        --grpc-port "$(grpc_port ferroserve)" --metrics-port "$(metrics_port ferroserve)" \
        --model-repository "$repos/ferroserve" >"$SERVER_LOG" 2>&1 &
      ;;
    ferroserve-tune)
      setsid "$FERRO" serve --host 127.0.0.1 --http-port "$FERROSERVE_TUNE_PORT" \
        --grpc-port "$(grpc_port ferroserve-tune)" --metrics-port "$(metrics_port ferroserve-tune)" \
        --model-repository "$repos/ferroserve" --tune --latency-target-ms "$TUNE_TARGET_MS" \
        >"$SERVER_LOG" 2>&1 &
      ;;
    triton)
      # PATH: the stub's embedded Python finds the venv (and its onnxruntime) through the
      # `python3` it sees first. LD_LIBRARY_PATH: the libpython of that venv, and the
      # wheel's bundled libraries (libcudart among them), which the stub needs as well.
      # No --cache-config: the response cache stays off.
      PATH="$VENV/bin:$PATH" LD_LIBRARY_PATH="$PY_LIBDIR:$SITE/nvidia_pytriton.libs" \
        setsid "$TRITON_DIST/bin/tritonserver" --model-repository "$repos/triton" \
        --backend-directory "$OUT/triton-backends" \
        --http-address 127.0.0.1 --grpc-address 127.0.0.1 --metrics-address 127.0.0.1 \
        --http-port "$TRITON_PORT" --grpc-port "$(grpc_port triton)" \
        --metrics-port "$(metrics_port triton)" \
        --pinned-memory-pool-byte-size 0 --allow-gpu-metrics false >"$SERVER_LOG" 2>&1 &
      ;;
    mlserver)
      # debug off: no access log per request. Metrics stay on, as on the other two.
      (cd "$OUT" && MLSERVER_HOST=127.0.0.1 MLSERVER_HTTP_PORT=$MLSERVER_PORT \
        MLSERVER_GRPC_PORT=$(grpc_port mlserver) MLSERVER_METRICS_PORT=$(metrics_port mlserver) \
        MLSERVER_PARALLEL_WORKERS=$MLSERVER_WORKERS \
        MLSERVER_DEBUG=false MLSERVER_METRICS_DIR="$OUT/mlserver-metrics" \
        exec setsid "$PY" "$ROOT/scripts/compare/mlserver_serve.py" "$repos/mlserver" \
        >"$SERVER_LOG" 2>&1) &
      ;;
  esac
  SERVER_PID=$!
  local port
  port=$(http_port "$name")
  # Model readiness, not server readiness: MLServer reports ready while a model failed.
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until curl -sf -o /dev/null "http://127.0.0.1:$port/v2/models/$model/ready"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      echo "compare: $name did not get ready with $model; its log ($SERVER_LOG):" >&2
      tail -n 60 "$SERVER_LOG" >&2
      exit 1
    fi
    sleep 0.5
  done
  curl -sf "http://127.0.0.1:$port/v2" >"$RAW/$name.server.json"
}

# ---------------------------------------------------------------- measurements

FAILED=0

# measure SERVER MODEL PROTOCOL CONCURRENCY: one perf_analyzer run into
# raw/SERVER__MODEL__PROTOCOL__cN.csv. A run that cannot meet the stability target within
# MAX_TRIALS windows is run again with a loose target and marked .unstable.
measure() {
  local server=$1 model=$2 protocol=$3 c=$4
  local base=$RAW/${server}__${model}__${protocol}__c$c
  local args=(-m "$model" --concurrency-range "$c:$c" --measurement-interval "$INTERVAL_MS"
              --max-trials "$MAX_TRIALS" --input-data "$OUT/repos/$model/perf-data" -f "$base.csv")
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
  if ! "$PA" "${args[@]}" --stability-percentage "$STABILITY" >"$base.log" 2>&1; then
    if grep -q "Failed to obtain stable measurement" "$base.log"; then
      touch "$base.unstable"
      "$PA" "${args[@]}" --stability-percentage 1000 >"$base.log" 2>&1 || true
    fi
  fi
  if [ -s "$base.csv" ]; then
    "$PY" - "$base.csv" "$server" "$model" "$protocol" "$c" "$([ -e "$base.unstable" ] && echo unstable)" <<'PY'
import csv, sys
row = next(csv.DictReader(open(sys.argv[1])))
print(f"  {sys.argv[2]:<10} {sys.argv[3]:<20} {sys.argv[4]:<9} c={sys.argv[5]:<3} "
      f"{float(row['Inferences/Second']):8.1f} infer/s  p50 {int(row['p50 latency'])/1000:7.2f} ms  "
      f"p99 {int(row['p99 latency'])/1000:7.2f} ms {sys.argv[6]}")
PY
  else
    echo "  $server $model $protocol c=$c: FAILED; perf_analyzer said:" >&2
    tail -n 5 "$base.log" >&2
    FAILED=1
  fi
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
exit $FAILED
