# The two set-up commands of the README: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in .venv and install the
# package into it; the environment is rebuilt when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.emo-installed
DEMO_DIR ?= build/demo-corpus

.PHONY: demo test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/emo-data demo $(DEMO_DIR)
	$(BIN)/emo-data scan $(DEMO_DIR) --report build/demo-corpus-report.json

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf build
