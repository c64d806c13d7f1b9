# Sourced by the scripts that start a server: wait_ready URL [SECONDS] [PID] polls URL
# every 0.1 s until it answers 2xx. It fails (status 1, saying so on stderr) after
# SECONDS (default 60), or as soon as process PID, the server, has exited.
wait_ready() {
    local url=$1 seconds=${2:-60} pid=${3:-}
    local tries=$((seconds * 10))
    for _ in $(seq 1 "$tries"); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            echo "wait_ready: the server (pid $pid) exited before $url answered" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "wait_ready: $url did not answer within $seconds s" >&2
    return 1
}
