# Each target sets itself up: a fresh machine needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 8000

.PHONY: setup serve test test-gpu train lint bench-train bench-serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed  ## create .venv and install the project with its dev tools

serve: setup  ## serve the shipped model on http://$(HOST):$(PORT), one worker process per CPU (WEB_CONCURRENCY=N)
	HOST=$(HOST) PORT=$(PORT) $(BIN)/gunicorn -c python:app.gunicorn_conf app.main:app

test: setup  ## run the test suite (GPU tests skip themselves without CUDA)
	$(BIN)/python -m pytest

train: setup  ## train the shipped model with the default recipe
	$(BIN)/python -m training.run

lint: setup  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench-train: setup
	$(BIN)/python -m benchmarks.train_throughput

bench-serve: setup
	$(BIN)/python -m benchmarks.serve_throughput

clean:
	rm -rf $(VENV) .pytest_cache
