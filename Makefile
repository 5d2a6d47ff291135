# Two commands for a fresh machine: `make demo` (set up, then the whole pipeline on a small default) and
# `make test` (set up, then the test suite). Everything lands in .venv/ and runs/ inside the checkout.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# This machine keeps a CPU build of torch in /opt/wheels; elsewhere pip takes torch from PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels/torch-*.whl),--find-links /opt/wheels)
PYTEST_ARGS ?=
DEMO   := runs/demo

.PHONY: setup demo test test-fast mechanisms clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(FIND_LINKS) -e '.[dev]'
	$(BIN)/python -m biophys.mechanisms.build
	$(BIN)/python -m biophys.mechanisms.build --coreneuron || echo "CoreNEURON build failed: simulations will fall back to NEURON"
	@touch $(STAMP)

mechanisms: setup
	$(BIN)/python -m biophys.mechanisms.build

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: setup
	bash scripts/demo.sh $(DEMO)

clean-demo:
	rm -rf $(DEMO)
