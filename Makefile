# The two commands of the README: `make serve` and `make test`. Everything they need is
# installed by scripts/ from the package registries.
CARGO ?= cargo

.PHONY: setup serve classify test

setup:
	scripts/setup-onnxruntime.sh
	scripts/setup-openvino.sh

## Serve the bundled models on :8000 (HTTP), :8001 (gRPC), :8002 (metrics).
serve: setup
	$(CARGO) run --release -- serve

## Classify the sample photos with the bundled model.
classify: setup
	$(CARGO) run --release -- classify tests/data/images

## Format, lint, and run every test.
test: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace
	FERROSERVE_BIN=target/debug/ferroserve scripts/python-tests.sh
