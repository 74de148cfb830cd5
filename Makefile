# The two set-up commands of the README: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in .venv and install the
# package with its [train] and [dev] extras into it (the runtime alone is
# `pip install .`); the environment is rebuilt when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.emo-installed
DEMO_DIR ?= build/demo-corpus
DEMO_RUN ?= build/demo-run
# The demo trains on features of the tiny extractor with random weights: fast on
# a laptop CPU, and labelled UNTRAINED in every output. Real runs use the default
# (pretrained HuBERT-base) extractor.
DEMO_TRAIN_ARGS ?= --extractor hubert_tiny --untrained --cache build/feature-cache \
	--test-fraction 0.25 --embed-dim 64 --conv-channels 64 --lstm-hidden 64 \
	--epochs 40 --patience 15

CPP_BUILD ?= build/cpp

.PHONY: demo test lint venv cpp clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/emo-data demo $(DEMO_DIR)
	$(BIN)/emo-data scan $(DEMO_DIR) --report build/demo-corpus-report.json
	rm -rf $(DEMO_RUN)
	$(BIN)/emo-train $(DEMO_DIR) --out $(DEMO_RUN) $(DEMO_TRAIN_ARGS)
	$(BIN)/emo-export $(DEMO_RUN) --format onnx
	@echo "predicting the clips of spk03, one of the two speakers the demo split holds out,"
	@echo "from the exported artifact (what 'pip install emo-toolkit' alone can run):"
	$(BIN)/emo-predict $(DEMO_RUN)/export/model.onnx $(DEMO_DIR)/anger/spk03 $(DEMO_DIR)/sadness/spk03

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

# The C API and its example app (cpp/), against the libtorch inside the installed torch.
cpp: $(STAMP)
	cmake -S cpp -B $(CPP_BUILD) -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_PREFIX_PATH="$$($(BIN)/python -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
	cmake --build $(CPP_BUILD) -j

clean:
	rm -rf build
