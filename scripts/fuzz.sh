#!/usr/bin/env bash
# Runs each fuzz target of fuzz/ for SECONDS_EACH (default 60), or for RUNS inputs, with
# cargo-fuzz (libFuzzer), each from its corpus in fuzz/corpus/TARGET, seeded from the
# repository's own test files. A crash stops the run and leaves its input in
# fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh                             # every target, 60 s each
#   SECONDS_EACH=600 scripts/fuzz.sh image infer_request
#   RUNS=10000000 scripts/fuzz.sh grpc_infer    # a long run: 10 million inputs
#
# With rustup's nightly toolchain, targets are built with AddressSanitizer; without
# it, with the stable toolchain and no sanitizer (Rust's own bounds and overflow
# checks still panic, and libFuzzer still reports it). Installs cargo-fuzz from
# crates.io into ~/.cargo/bin the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${SECONDS_EACH:-60}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(image infer_request model_config tensor_wire grpc_infer traceparent)
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi

# Seeds: what the tests send, so that libFuzzer starts from valid inputs.
seed() {
    local target=$1 dir=fuzz/corpus/$1
    mkdir -p "$dir"
    case $target in
        image) cp tests/data/images/*.jpg tests/data/images/*.png tests/data/compare-images/*.png "$dir"/ ;;
        model_config) find models tests/data -name config.pbtxt -size -64k | while read -r f; do
                cp "$f" "$dir/$(echo "$f" | tr / _)"; done ;;
        infer_request) printf '%s' '{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"outputs":[{"name":"logits","parameters":{"binary_data":true,"classification":3}}]}' > "$dir/json" ;;
        tensor_wire) printf '\x0a\x02\x00\x03\x00[[1,2,3],[4,5,6]]' > "$dir/json" ;;
        # ModelInferRequest{model_name "m", inputs [{name "input", datatype "FP32",
        # shape [1, 3]}], raw_input_contents [12 bytes]}, and the same with typed contents
        # (fp32_contents [1, 2, 3]) instead.
        grpc_infer)
            printf '\x0a\x01m\x2a\x11\x0a\x05input\x12\x04FP32\x1a\x02\x01\x03\x3a\x0c%012d' 0 > "$dir/raw"
            printf '\x0a\x01m\x2a\x21\x0a\x05input\x12\x04FP32\x1a\x02\x01\x03\x2a\x0e\x32\x0c\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40' > "$dir/typed" ;;
        traceparent) printf '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' > "$dir/w3c" ;;
    esac
}

if rustup run nightly rustc --version >/dev/null 2>&1; then
    TOOLCHAIN=(+nightly)
else
    echo "fuzz: no nightly toolchain: stable, without AddressSanitizer" >&2
    TOOLCHAIN=(+stable --sanitizer none)
fi
if [ -n "${RUNS:-}" ]; then LENGTH=(-runs="$RUNS"); else LENGTH=(-max_total_time="$SECONDS_EACH"); fi

for target in "${TARGETS[@]}"; do
    seed "$target"
    echo "fuzz: $target, ${LENGTH[*]}" >&2
    # -rss_limit_mb: a decode that tried to hold more than the pixel limit would trip it.
    cargo "${TOOLCHAIN[0]}" fuzz run "${TOOLCHAIN[@]:1}" --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
        "${LENGTH[@]}" -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1
done
