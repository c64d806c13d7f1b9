#!/usr/bin/env bash
# Scale-out on one machine: three ferroserve replicas behind HAProxy, stood in for a
# Kubernetes Service, restarted one at a time while `ferroserve bench` sends load through
# the balancer. Passes when no request failed, at the client or at the balancer; draws
# the throughput over time (and each replica's share) into target/replicas/.
#
#   scripts/replicas.sh                       # 60 s of load, restarts from t = 8 s
#   REPLICAS_DURATION=90 scripts/replicas.sh  # longer
#
# What stands in for what, and how deploy/kubernetes does it for real:
#
#   here                                   Kubernetes (deploy/kubernetes/base)
#   -------------------------------------  ----------------------------------------------
#   3 processes on ports 18110, 18120,     Deployment, 3 replicas (overlays/production)
#   18130 (HTTP; +1 gRPC, +2 metrics)
#   HAProxy health check: GET              readinessProbe: GET /v2/health/ready every 2 s,
#   /v2/health/ready every 250 ms, out     out of the Service's endpoints after 1 failure
#   after 1 failure, back after 2
#   HAProxy round robin on :18100          Service ferroserve (kube-proxy, or the mesh)
#   SIGTERM, then start, then wait until   a rolling update (maxSurge 1, maxUnavailable 0)
#   ready, one replica at a time           or a node drain bounded by the
#                                          PodDisruptionBudget (maxUnavailable 1)
#   --drain-delay-secs 2: keep serving     --drain-delay-secs 10: the endpoints controller
#   while the health check notices the     and every kube-proxy need seconds to drop the
#   503 (250 ms here)                      pod; terminationGracePeriodSeconds 45 covers
#                                          drain delay + exit timeout
#
# The balancer does not retry failed requests (`retries 0`, no L7 retries), as a
# Kubernetes Service does not: requests are lost unless the server's drain keeps them.
# The drain (readiness 503 at SIGTERM, --drain-delay-secs, --exit-timeout-secs) is the
# server's; a binary without those flags is still run, without them, and this script then
# shows what it loses.
#
# Needs: haproxy and gnuplot (installed from Debian when missing, as root), the release
# binary (built when missing). Everything listens on 127.0.0.1 only. Ports:
# REPLICAS_PORT (18100) and the 30 above it.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${REPLICAS_DURATION:-60}
START_AFTER=${REPLICAS_START_AFTER:-8}
PORT=${REPLICAS_PORT:-18100}
CONCURRENCY=${REPLICAS_CONCURRENCY:-4}
OUT=target/replicas
BIN=target/release/ferroserve
REPLICAS=(r1 r2 r3)

log() { echo "replicas: $(date +%T) $*" >&2; }
now() { date +%s.%N; }

missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
scripts/setup-onnxruntime.sh
[ -x "$BIN" ] || cargo build --release --workspace
rm -rf "$OUT"
mkdir -p "$OUT"

# The drain flags, where this binary has them.
DRAIN=()
if "$BIN" serve --help | grep -q -- '--drain-delay-secs'; then
    DRAIN=(--drain-delay-secs 2 --exit-timeout-secs 20)
else
    log "this ferroserve has no --drain-delay-secs: replicas stop at once on SIGTERM"
fi

http_port() { echo $((PORT + 10 * ($1 + 1))); }

declare -A PIDS
start_replica() {
    local i=$1 name=${REPLICAS[$1]} p
    p=$(http_port "$i")
    "$BIN" serve --host 127.0.0.1 --http-port "$p" --grpc-port $((p + 1)) --metrics-port $((p + 2)) \
        --intra-op-threads 1 --io-threads 1 --preprocess-threads 1 "${DRAIN[@]}" \
        >> "$OUT/$name.log" 2>&1 &
    PIDS[$name]=$!
    echo "$(now) start $name" >> "$OUT/events.tsv"
}

wait_ready() {
    local i=$1 name=${REPLICAS[$1]} p
    p=$(http_port "$i")
    for _ in $(seq 1 1800); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$p/v2/health/ready" 2>/dev/null; then
            echo "$(now) ready $name" >> "$OUT/events.tsv"
            return 0
        fi
        kill -0 "${PIDS[$name]}" 2>/dev/null || break
        sleep 0.1
    done
    log "$name did not get ready; its log:"
    tail -20 "$OUT/$name.log" >&2
    return 1
}

HAPROXY_PID=
BENCH_PID=
cleanup() {
    [ -n "$BENCH_PID" ] && kill "$BENCH_PID" 2>/dev/null
    for name in "${REPLICAS[@]}"; do
        [ -n "${PIDS[$name]:-}" ] && kill "${PIDS[$name]}" 2>/dev/null
    done
    [ -n "$HAPROXY_PID" ] && kill "$HAPROXY_PID" 2>/dev/null
    wait 2>/dev/null || true
}
trap cleanup EXIT

: > "$OUT/events.tsv"
for i in "${!REPLICAS[@]}"; do start_replica "$i"; done
for i in "${!REPLICAS[@]}"; do wait_ready "$i"; done
log "3 replicas ready"

cat > "$OUT/haproxy.cfg" <<EOF
global
    log stdout format rfc5424 local0
    maxconn 256
defaults
    mode http
    log global
    option log-health-checks
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # No retries of any kind: a Kubernetes Service does not retry either.
    retries 0
frontend inference
    bind 127.0.0.1:$PORT
    log-format "request %ST %s %Ta"
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /v2/health/ready
    http-check expect status 200
    default-server check inter 250ms fall 1 rise 2
$(for i in "${!REPLICAS[@]}"; do echo "    server ${REPLICAS[$i]} 127.0.0.1:$(http_port "$i")"; done)
EOF
haproxy -c -q -f "$OUT/haproxy.cfg"
haproxy -db -f "$OUT/haproxy.cfg" > "$OUT/haproxy.log" 2>&1 &
HAPROXY_PID=$!
for _ in $(seq 1 50); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2/health/ready" 2>/dev/null && break
    sleep 0.1
done

log "load: ferroserve bench, $CONCURRENCY connections, images, ${DURATION}s through HAProxy :$PORT"
echo "$(now) load-start -" >> "$OUT/events.tsv"
"$BIN" bench --url "http://127.0.0.1:$PORT" --protocol image --image tests/data/images/cat.jpg \
    --model efficientnet-lite0 --concurrency "$CONCURRENCY" --warmup 1s --duration "${DURATION}s" \
    --quiet --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1 &
BENCH_PID=$!

sleep "$START_AFTER"
for i in "${!REPLICAS[@]}"; do
    name=${REPLICAS[$i]}
    log "restarting $name: SIGTERM"
    echo "$(now) sigterm $name" >> "$OUT/events.tsv"
    kill -TERM "${PIDS[$name]}"
    rc=0
    wait "${PIDS[$name]}" || rc=$?
    echo "$(now) exited $name" >> "$OUT/events.tsv"
    log "$name exited with status $rc; starting it again"
    start_replica "$i"
    wait_ready "$i"
    log "$name ready"
    # Let the balancer's health check take it back (rise 2 x 250 ms) before the next.
    sleep 2
done
log "all 3 restarted; waiting for the load to end"
rc=0
wait "$BENCH_PID" || rc=$?
BENCH_PID=
echo "$(now) load-end -" >> "$OUT/events.tsv"
cat "$OUT/bench.txt"
[ "$rc" = 0 ] || log "bench exited with status $rc"
sleep 0.5
python3 scripts/replicas-report.py "$OUT"
