# Two commands on a fresh machine with Python 3.10+:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchaudio 2.11 match the GPU machines; pip takes a local wheel when one is on disk.
TORCH := torch==2.11.0 torchaudio==2.11.0

$(BIN)/clusterlight: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

.PHONY: setup demo test clean
setup: $(BIN)/clusterlight

demo: setup  ## the main job: baseline vs the clustered method (3 read-outs, chosen on validation), synthetic data
	$(BIN)/clusterlight experiment --config configs/experiment/quickstart.yaml

test: setup  ## lint, format check and the test suite (CPU, own data, a few minutes)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests -n auto --maxprocesses 4 --durations=10  # xdist: 2 workers on 2 cores; the 10 slowest listed

clean:
	rm -rf $(VENV) .cache runs
