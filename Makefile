# Two commands on a fresh machine with Python 3.10+:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchaudio 2.11 match the GPU machines; pip takes a local wheel when one is on disk.
# CPU-only wheels: make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH := torch==2.11.0 torchaudio==2.11.0
TORCH_INDEX ?=
PIP := $(BIN)/pip install -q --disable-pip-version-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The package and its runtime dependencies: what `make demo` needs, nothing more.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) -e .
	touch $@

# Plus the test, lint, docs and optional-integration packages (the `dev` extra).
$(VENV)/.installed-dev: $(VENV)/.installed-run
	$(PIP) -e ".[dev]"
	touch $@

.PHONY: setup demo test test-fast lint docs gpu-check clean
setup: $(VENV)/.installed-dev  ## everything a contributor needs

demo: $(VENV)/.installed-run  ## the main job: class weighting vs the clustered method on the built-in data
	$(BIN)/clusterlight experiment --config configs/experiment/quickstart.yaml

lint: $(VENV)/.installed-dev  ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint  ## lint, format and type checks, then the whole test suite (CPU, own data)
	$(BIN)/python -m pytest tests -n auto --maxprocesses 4 --durations=10

test-fast: lint  ## the suite without the `slow` tests: the loop to run while editing
	$(BIN)/python -m pytest tests -n auto --maxprocesses 4 -m "not slow"

docs: $(VENV)/.installed-dev  ## the documentation site, warnings as errors, internal links checked
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

gpu-check:  ## the standing GPU checks in one call (benchmarks/gpu_check.py); without a GPU every step is skipped
	$(or $(wildcard $(BIN)/python),python3) benchmarks/gpu_check.py $(ARGS)

clean:
	rm -rf $(VENV) .cache runs docs/_build
