# Each target sets itself up: a fresh machine needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 8000
GRPC_PORT ?= $(or $(MNIST_SERVE_GRPC_PORT),8081)

# Every package at the version pinned in constraints.txt: generated from pyproject.toml's ranges by `make lock`,
# used by CI (through these targets) and the Dockerfile alike.
CONSTRAINTS := constraints.txt
# `make lock` keeps each pin that pyproject.toml still allows; `make lock LOCK_FLAGS=--upgrade` takes the newest.
LOCK_FLAGS ?=

.PHONY: help setup serve test test-fast test-gpu train gate int8 onnx lint lock proto screenshot perf-analyzer bench-train bench-serve bench-triton bench-gpu clean

help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) pip

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $@

setup: $(VENV)/.installed  ## create .venv and install the project with its dev tools

serve: setup  ## serve the shipped model on http://$(HOST):$(PORT) and gRPC on $(GRPC_PORT) (0: off), one worker per CPU
	HOST=$(HOST) PORT=$(PORT) MNIST_SERVE_GRPC_PORT=$(GRPC_PORT) $(BIN)/gunicorn -c python:app.gunicorn_conf app.main:app

test: setup  ## run the test suite (GPU tests skip themselves without CUDA)
	$(BIN)/python -m pytest

test-fast: setup  ## the inner loop: all but the slow (training, subprocesses), e2e and browser tests
	$(BIN)/python -m pytest -m "not slow and not e2e and not browser"

# Without a GPU every `cuda` test would skip and the target would pass having tested nothing: refuse instead.
test-gpu: setup  ## run the CUDA-marked tests (needs a CUDA GPU)
	@$(BIN)/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else \
		'make test-gpu: torch sees no CUDA GPU, so every cuda test would skip')"
	$(BIN)/python -m pytest -m cuda

# The not-a-digit gate is fitted after training, on uploads rendered and preprocessed as the service does: exported
# once into $(DATA) (seeded: the same files whatever WORKERS is), then reused by every fit. README, "Is it a digit?".
DATA ?= data
WORKERS ?= $(shell nproc)
CHECKPOINT ?= models/mnist_cnn.safetensors
GATE_TRAIN := $(DATA)/renders-train.npz $(DATA)/renders-train-nondigits1.npz $(DATA)/renders-train-glyphs2.npz
GATE_THRESHOLD := $(DATA)/renders-threshold.npz
EXPORT = $(BIN)/python -m benchmarks.renders.export --data-dir $(DATA) --workers $(WORKERS) --out $@

gate: setup $(GATE_TRAIN) $(GATE_THRESHOLD)  ## fit the digit gate into $(CHECKPOINT) (renders exported first, once)
	MNIST_SERVE_NUM_THREADS=1 $(BIN)/python -m app.gate.fit --checkpoint $(CHECKPOINT) \
		--train $(GATE_TRAIN) --threshold $(GATE_THRESHOLD) --data-dir $(DATA)

int8: setup  ## record $(CHECKPOINT)'s int8 activation ranges (MNIST training images), for CPUs without native bf16
	$(BIN)/python -m training.int8 --checkpoint $(CHECKPOINT) --data-dir $(DATA)

# The shipped recipe (README, "Training"): the MNIST training images plus digits rendered the way people write them
# (`--rendered`: seeds 1 and 3; the gate below is fitted on seed 0's, which the network has then never seen).
TRAIN_RENDERS = $(DATA)/renders-train-digits1.npz $(DATA)/renders-train-digits3.npz

train: setup $(TRAIN_RENDERS)  ## train the shipped model's recipe into models/, then record int8 ranges and fit the gate
	$(BIN)/python -m training.run --seed 2 --epochs 62 --rendered $(TRAIN_RENDERS) --outlier-weight 0
	$(MAKE) int8 gate

onnx: setup  ## $(CHECKPOINT) as ONNX in a Triton model repository, models/triton/ (python -m training.export)
	$(BIN)/python -m training.export --checkpoint $(CHECKPOINT)

$(DATA)/renders-train.npz: | setup
	$(EXPORT) --split train --per-style 700 --per-category 700 --seed 0
$(DATA)/renders-train-nondigits1.npz: | setup
	$(EXPORT) --split train --per-style 0 --per-category 1500 --seed 1
$(DATA)/renders-train-glyphs2.npz: | setup
	$(EXPORT) --split train --per-style 0 --per-category 1500 --categories letters symbols --seed 2
$(DATA)/renders-train-digits%.npz: | setup
	$(EXPORT) --split train --per-style 700 --per-category 0 --seed $*
$(GATE_THRESHOLD): | setup
	$(EXPORT) --split threshold --per-style 300 --per-category 300

# .pre-commit-config.yaml runs these same three commands from $(BIN) (`$(BIN)/pre-commit install` to use it).
lint: setup  ## ruff lint, ruff format check, mypy type check (settings in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Needs only pip-tools, not `setup`: a pyproject.toml that the old pins no longer satisfy must still be lockable.
# --unsafe-package keeps the project itself (named by the dev extra) out; --strip-extras keeps the file usable as -c.
lock: | $(BIN)/python  ## regenerate constraints.txt from pyproject.toml (LOCK_FLAGS=--upgrade: newest allowed)
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --all-extras --strip-extras --no-allow-unsafe \
		--unsafe-package mnist-serve --no-emit-index-url --no-emit-find-links $(LOCK_FLAGS) \
		--output-file $(CONSTRAINTS) pyproject.toml

# protoc comes with grpcio-tools, whose protobuf must match the one pinned (the generated module checks the runtime is
# at least its own version), so it gets a throwaway venv rather than the dev extra. The sed gives the messages a
# descriptor pool of their own: tritonclient.grpc registers the same `inference.*` names in the default pool, and a
# process that imports both (the tests, an app embedding a client) would otherwise fail on the duplicates.
PROTOC_VENV ?= /tmp/mnist-serve-protoc
proto:  ## regenerate app/oip/*_pb2.py(i) from app/oip/*.proto (the protocol's messages, gRPC health's)
	python3 -m venv $(PROTOC_VENV)
	$(PROTOC_VENV)/bin/pip install --quiet "grpcio-tools==1.81.1" "protobuf==6.33.6"
	cd app/oip && $(PROTOC_VENV)/bin/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. grpc_predict_v2.proto health.proto
	sed -i 's/_descriptor_pool.Default()/_descriptor_pool.DescriptorPool()/' app/oip/grpc_predict_v2_pb2.py app/oip/health_pb2.py

screenshot: setup  ## rewrite docs/page.png (the README's picture of the page; needs Chromium: .ci/browser-setup.sh)
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/browser -k desktop_width

perf-analyzer: setup  ## install Triton's perf_analyzer into .tools/perf-analyzer (Debian; its test and benchmark use it)
	bash .ci/perf-analyzer-setup.sh

bench-train: setup  ## training throughput against the pytorch/examples loop
	$(BIN)/python -m benchmarks.train_throughput

bench-serve: setup  ## serving throughput with and without batching (needs hey)
	$(BIN)/python -m benchmarks.serve_throughput

bench-triton: perf-analyzer  ## Triton's perf_analyzer against the server: HTTP vs gRPC, both inputs
	$(BIN)/python -m benchmarks.perf_analyzer

# What a session lent a GPU runs (README, "Benchmarks", "GPU"): the servers on core 0, hey on cores 1-3.
bench-gpu: test-gpu  ## the CUDA tests, then training and serving throughput with the model on the GPU (needs hey)
	$(BIN)/python -m benchmarks.train_throughput --device cuda --images 25600
	$(BIN)/python -m benchmarks.serve_throughput --concurrency 1 64 --gate-pairs 0 --client-cpu 1-3

clean:  ## remove .venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .tools
