# shellcheck shell=bash
# shellcheck disable=SC2034  # FAILED and others are read by the scripts that source this.
# What the comparison scripts share (scripts/compare.sh: tensors; scripts/compare-images.sh:
# encoded images): settings, setup, starting and stopping one server, and a perf_analyzer
# run. Sourced, not run; it cds to the repository root and sets ROOT. The environment
# variables it reads are listed in scripts/compare.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  INTERVAL_MS=${INTERVAL_MS:-1000}; STABILITY=${STABILITY:-50}; MAX_TRIALS=${MAX_TRIALS:-6}
  BENCH_SECS=${BENCH_SECS:-2}
else
  INTERVAL_MS=${INTERVAL_MS:-5000}; STABILITY=${STABILITY:-10}; MAX_TRIALS=${MAX_TRIALS:-10}
  BENCH_SECS=${BENCH_SECS:-10}
fi
# ferroserve-tune: `serve --tune` with this p99 target, given TUNE_SETTLE_SECS of the
# coming load (from `ferroserve bench`) before each measurement.
TUNE_TARGET_MS=${TUNE_TARGET_MS:-100}
TUNE_SETTLE_SECS=${TUNE_SETTLE_SECS:-15}
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

# new_raw_dir NAME: sets RAW to a new folder target/compare/NAME-DATE, with NAME-latest
# pointing at it (one folder per run, so an aborted run leaves earlier results alone),
# and records the machine there.
new_raw_dir() {
  RAW=$OUT/$1-$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$RAW" "$OUT/logs"
  ln -sfn "$(basename "$RAW")" "$OUT/$1-latest"
  "$PY" scripts/compare/report.py machine > "$RAW/machine.json"
}

# write_settings FIELDS: RAW/settings.json, the shared settings and FIELDS (more JSON
# object members, e.g. '"input_tensor": "..."').
write_settings() {
  cat > "$RAW/settings.json" <<EOF
{"started": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "quick": $QUICK, "interval_ms": $INTERVAL_MS,
 "stability_percent": $STABILITY, "max_trials": $MAX_TRIALS, "bench_secs": $BENCH_SECS,
 "instances": $INSTANCES, "threads": $THREADS, "max_batch_size": $MAX_BATCH,
 "tune_target_ms": $TUNE_TARGET_MS, "tune_settle_secs": $TUNE_SETTLE_SECS,
 "mlserver_workers": $MLSERVER_WORKERS, "mlserver_threads": $MLSERVER_THREADS,
 "perf_analyzer": "$(perf_analyzer_version)", $1}
EOF
}

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

# start_server NAME MODEL [REPOS]: starts one server on its three ports on the repository
# REPOS/NAME (default target/compare/repos/MODEL/NAME), and waits until MODEL is ready.
start_server() {
  local name=$1 model=$2 repos=${3:-$OUT/repos/$2}
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

# Set to 1 by any run that failed; the scripts exit with it.
FAILED=0

# run_perf_analyzer BASE ARGS...: one perf_analyzer run with ARGS into BASE.csv (its
# output in BASE.log), BASE being RAW/SERVER__SUBJECT__PROTOCOL__cN. A run that cannot
# meet the stability target within MAX_TRIALS windows is run again with a loose target
# and marked BASE.unstable. Prints one line of results, or the failure.
run_perf_analyzer() {
  local base=$1
  shift
  local args=("$@" --concurrency-range "${base##*__c}:${base##*__c}"
              --measurement-interval "$INTERVAL_MS" --max-trials "$MAX_TRIALS" -f "$base.csv")
  if ! "$PA" "${args[@]}" --stability-percentage "$STABILITY" >"$base.log" 2>&1; then
    if grep -q "Failed to obtain stable measurement" "$base.log"; then
      touch "$base.unstable"
      "$PA" "${args[@]}" --stability-percentage 1000 >"$base.log" 2>&1 || true
    fi
  fi
  local server subject protocol c
  IFS=: read -r server subject protocol c <<<"$(basename "$base" | sed 's/__/:/g')"
  if [ -s "$base.csv" ]; then
    "$PY" - "$base.csv" "$server" "$subject" "$protocol" "${c#c}" "$([ -e "$base.unstable" ] && echo unstable)" <<'PY'
import csv, sys
row = next(csv.DictReader(open(sys.argv[1])))
print(f"  {sys.argv[2]:<10} {sys.argv[3]:<20} {sys.argv[4]:<9} c={sys.argv[5]:<3} "
      f"{float(row['Inferences/Second']):8.1f} infer/s  p50 {int(row['p50 latency'])/1000:7.2f} ms  "
      f"p99 {int(row['p99 latency'])/1000:7.2f} ms {sys.argv[6]}")
PY
  else
    echo "  $server $subject $protocol $c: FAILED; perf_analyzer said:" >&2
    tail -n 5 "$base.log" >&2
    FAILED=1
  fi
}
