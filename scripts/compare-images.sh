#!/usr/bin/env bash
# The image workload of the comparison: the same encoded images (tests/data/compare-images:
# JPEGs from 640x427 to 4000x3000, a PNG) sent to each server, which decodes, preprocesses
# and classifies them; one server at a time, all on 127.0.0.1:
#   - ferroserve, three ways: the model efficientnet-lite0-image (a BYTES input of encoded
#     images, preprocessed on the server) under perf_analyzer; POST
#     /v2/models/efficientnet-lite0/classify under `ferroserve bench --protocol image`;
#     and `ferroserve classify` on a folder of copies of each image (no server);
#   - Triton 2.51: an ensemble of a Python-backend Pillow preprocessing model and the
#     Python-backend onnxruntime classifier of the tensor workload;
#   - MLServer 1.7: a custom runtime doing the same Pillow preprocessing and onnxruntime,
#     the image base64-encoded (its REST API is JSON only).
# The peers preprocess with scripts/pillow_preprocess.py, the reference that ferroserve's
# own preprocessing follows. Instances, threads, ports and perf_analyzer's settings are the
# tensor workload's (scripts/compare.sh, scripts/compare/common.sh); no dynamic batching,
# no response cache. Every server must answer each image's reference top-1 over each way
# it is measured before it is measured.
#
# A script of its own rather than a WORKLOAD switch in compare.sh: the two workloads share
# the setup and the server and perf_analyzer functions (scripts/compare/common.sh) but
# little of their loops, and each can be run, and its section of docs/comparison.md
# regenerated, without the other's 20 to 40 minutes.
#
#   usage: scripts/compare-images.sh            full run (5 s windows; 30 to 40 minutes)
#          QUICK=1 scripts/compare-images.sh    smoke run (1 s windows, loose stability)
#
# Environment (defaults in brackets), besides compare.sh's QUICK, CONCURRENCY, INTERVAL_MS,
# STABILITY, MAX_TRIALS, BENCH_SECS, MLSERVER_*, *_PORT, PERF_ANALYZER and BUILD:
#   SERVERS ["ferroserve triton mlserver"]  PROTOCOLS ["http grpc"]
#   IMAGES [the four files of tests/data/compare-images]
#   CLASSIFY_COPIES [200; QUICK 40] (files per image for `ferroserve classify`)
#   REPORT_MD [docs/comparison.md]  REPORT_CHARTS [docs/comparison]
#   FERROSERVE_MAX_QUEUE_WAIT_MS [0] (ferroserve serve --max-queue-wait-ms; 0: no bound by time)
#
# Writes raw results to target/compare/raw-images-DATE/ (raw-images-latest: the newest)
# and the image section of REPORT_MD, leaving the tensor workload's sections as they are.
# shellcheck source=SCRIPTDIR/compare/common.sh
source "$(dirname "$0")/compare/common.sh"

SERVERS=${SERVERS:-"ferroserve triton mlserver"}
PROTOCOLS=${PROTOCOLS:-"http grpc"}
IMAGES=${IMAGES:-"web-640x427.jpg fullhd-1920x1080.jpg phone-4000x3000.jpg coffee-600x400.png"}
if [ "$QUICK" = 1 ]; then CLASSIFY_COPIES=${CLASSIFY_COPIES:-40}; else CLASSIFY_COPIES=${CLASSIFY_COPIES:-200}; fi
REPORT_MD=${REPORT_MD:-docs/comparison.md}
REPORT_CHARTS=${REPORT_CHARTS:-docs/comparison}
# ferroserve refuses (429) a request expected to wait longer than --max-queue-wait-ms
# (500) in the queue; at concurrency 16 a 12-megapixel image waits longer than that on 2
# cores. The peers queue every request, and perf_analyzer counts a refusal as a failed
# run, so ferroserve queues every request here too (up to --max-queue-size, 256).
export FERROSERVE_MAX_QUEUE_WAIT_MS=${FERROSERVE_MAX_QUEUE_WAIT_MS:-0}

MODEL=efficientnet-lite0-image
CLASSIFIER=efficientnet-lite0
REPOS=$OUT/repos/images
IMAGE_FILES=()
for image in $IMAGES; do IMAGE_FILES+=("$ROOT/tests/data/compare-images/$image"); done

new_raw_dir raw-images
write_settings "\"images\": \"$IMAGES\", \"classify_copies\": $CLASSIFY_COPIES,
 \"ferroserve_max_queue_wait_ms\": $FERROSERVE_MAX_QUEUE_WAIT_MS"
"$PY" scripts/compare/make_image_repos.py --out "$REPOS" --images "${IMAGE_FILES[@]}" \
  --instances "$INSTANCES" --max-batch "$MAX_BATCH" --threads "$THREADS" \
  --mlserver-threads "$MLSERVER_THREADS"

# measure_image SERVER IMAGE PROTOCOL CONCURRENCY: one perf_analyzer run of one image into
# raw/SERVER__IMAGE-STEM__PROTOCOL__cN.csv. MLServer's HTTP rows are JSON tensors
# (protocol http-json), and it gets the image as base64 text on both protocols.
measure_image() {
  local server=$1 stem=${2%.*} protocol=$3 c=$4
  local data=$REPOS/perf-data/$stem.json
  local args=(-m "$MODEL")
  case $protocol in
    http) args+=(-i http -u "127.0.0.1:$(http_port "$server")") ;;
    grpc) args+=(-i grpc -u "127.0.0.1:$(grpc_port "$server")") ;;
  esac
  if [ "$server" = mlserver ]; then
    data=$REPOS/perf-data/$stem.base64.json
    if [ "$protocol" = http ]; then
      protocol=http-json
      args+=(--input-tensor-format json --output-tensor-format json)
    fi
    # mlserver_serve.py reports max_batch_size 0, so the shape names the batch dimension.
    read -r -a shape_flags <"$REPOS/batch1-shape-flags"
    args+=("${shape_flags[@]}")
  fi
  run_perf_analyzer "$RAW/${server}__${stem}__${protocol}__c$c" "${args[@]}" --input-data "$data"
}

# bench_classify_endpoint IMAGE: `ferroserve bench --protocol image` at every concurrency
# into raw/ferroserve-classify__IMAGE-STEM.json.
bench_classify_endpoint() {
  local stem=${1%.*} levels
  levels=$(echo "$CONCURRENCY" | tr ' ' ',')
  if "$FERRO" bench --quiet --protocol image --model "$CLASSIFIER" \
      --url "http://127.0.0.1:$(http_port ferroserve)" --image "$ROOT/tests/data/compare-images/$1" \
      --concurrency "$levels" --duration "${BENCH_SECS}s" \
      --json "$RAW/ferroserve-classify__$stem.json" >"$OUT/logs/bench-classify-$stem.log" 2>&1; then
    echo "  ferroserve bench --protocol image $stem: $RAW/ferroserve-classify__$stem.json"
  else
    echo "  ferroserve bench --protocol image $stem failed; its log:" >&2
    tail -n 20 "$OUT/logs/bench-classify-$stem.log" >&2
    FAILED=1
  fi
}

# classify_folder IMAGE: `ferroserve classify` on a folder of CLASSIFY_COPIES links to the
# image; its summary line (images/s, latency p50 and p99) into
# raw/ferroserve-cli__IMAGE-STEM.txt.
classify_folder() {
  local stem=${1%.*} ext=${1##*.} folder=$OUT/classify/${1%.*}
  rm -rf "$folder"
  mkdir -p "$folder"
  for i in $(seq -w 1 "$CLASSIFY_COPIES"); do
    ln -s "$ROOT/tests/data/compare-images/$1" "$folder/$i.$ext"
  done
  if "$FERRO" classify --model-repository "$REPOS/ferroserve" --model "$CLASSIFIER" \
      --top-k 1 "$folder" >/dev/null 2>"$RAW/ferroserve-cli__$stem.txt"; then
    echo "  ferroserve classify $stem: $(tail -n 1 "$RAW/ferroserve-cli__$stem.txt")"
  else
    echo "  ferroserve classify $stem failed:" >&2
    tail -n 5 "$RAW/ferroserve-cli__$stem.txt" >&2
    FAILED=1
  fi
}

for server in $SERVERS; do
  echo "== $server, images"
  start_server "$server" "$MODEL" "$REPOS"
  check=(--server "$server" --images "${IMAGE_FILES[@]}"
         --http "127.0.0.1:$(http_port "$server")" --grpc "127.0.0.1:$(grpc_port "$server")")
  case $server in
    ferroserve)
      "$FERRO" classify --model-repository "$REPOS/ferroserve" --model "$CLASSIFIER" \
        --top-k 1 --json "${IMAGE_FILES[@]}" >"$RAW/ferroserve-classify-cli.jsonl" 2>/dev/null
      check+=(--classify-url "127.0.0.1:$(http_port ferroserve)"
              --classify-json "$RAW/ferroserve-classify-cli.jsonl") ;;
    mlserver) check+=(--base64) ;;
  esac
  # A wrong answer would make the numbers meaningless: stop here if one is wrong.
  "$PY" scripts/compare/check_images.py "${check[@]}" | tee -a "$RAW/checks.txt"
  for image in $IMAGES; do
    for protocol in $PROTOCOLS; do
      for c in $CONCURRENCY; do
        measure_image "$server" "$image" "$protocol" "$c"
      done
    done
    if [ "$server" = ferroserve ]; then bench_classify_endpoint "$image"; fi
  done
  stop_server
  if [ "$server" = ferroserve ]; then
    for image in $IMAGES; do classify_folder "$image"; done
  fi
done

"$PY" scripts/compare/report.py images --raw "$RAW" --md "$REPORT_MD" --charts "$REPORT_CHARTS"
echo "report: the image section of $REPORT_MD, charts in $REPORT_CHARTS/, raw data in $RAW"
exit "$FAILED"
