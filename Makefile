# Two commands do all of their own set-up on a fresh machine:
#   make demo   — a tiny pretraining run on built-in data (about three minutes on 2 CPU cores)
#   make test   — the test suite (what CI runs)
# Both create .venv when it is missing and install torch first: the pinned CPU build where
# there is no NVIDIA GPU (override with TORCH=..., TORCH_PIP_ARGS=...), then this package.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
TORCH_PIP_ARGS ?=
export WORKBENCH_PACKAGE_CACHE ?= $(CURDIR)/.cache/packages

.PHONY: setup demo test test-heavy test-fast models lint bench

$(VENV)/.ready: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if $(BIN)/python -c "import torch" 2>/dev/null; then echo "torch already installed"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q torch $(TORCH_PIP_ARGS); \
	else $(BIN)/pip install -q $(TORCH) $(TORCH_PIP_ARGS); fi
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: $(VENV)/.ready

demo: setup
	$(BIN)/workbench run --preset pretrain-tiny

models: setup
	$(BIN)/python scripts/fetch_models.py

test: setup models
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -m "not heavy" --durations=15

# Full-length and real-model training runs (tens of minutes on 2 CPU cores): not part of CI.
test-heavy: setup models
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -m heavy

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow and not realmodel"

lint: setup
	$(BIN)/ruff check . && $(BIN)/lint-imports

# Every benchmark at short settings (a few minutes on 2 cores): one table and JSON of figures
# under $WORKBENCH_HOME/bench/, recorded as a `bench` run in the store (docs/performance.md).
bench: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python benchmarks/bench.py
