# The two set-up commands of the README: `make demo` and `make test`.
# Both create (or reuse) the virtual environment in .venv and install the
# package with its [gpu], [train], [dev], [cpp], [edge], [openvino] and [serve] extras into it (the runtime alone
# is `pip install '.[cpu]'` or `'.[gpu]'`); the environment is rebuilt when pyproject.toml
# changes.
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

.PHONY: demo test lint venv cpp cpp-install cpp-deps device-wheels clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[gpu,train,dev,cpp,edge,openvino,serve]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/emo-data demo $(DEMO_DIR)
	$(BIN)/emo-data scan $(DEMO_DIR) --report build/demo-corpus-report.json
	rm -rf $(DEMO_RUN)
	$(BIN)/emo-train $(DEMO_DIR) --out $(DEMO_RUN) $(DEMO_TRAIN_ARGS)
	$(BIN)/emo-export $(DEMO_RUN) --format onnx
	@echo "predicting the clips of spk03, one of the two speakers the demo split holds out,"
	@echo "from the exported artifact (what 'pip install emo-toolkit[cpu]' alone can run):"
	$(BIN)/emo-predict $(DEMO_RUN)/export/model.onnx $(DEMO_DIR)/anger/spk03 $(DEMO_DIR)/sadness/spk03

# The layer contracts (.importlinter) are read off a copy laid out as pip installs the
# package: the editable install maps export/ and bench/ into emo_toolkit, which grimp
# cannot follow.
IMPORT_TREE ?= build/import-tree

lint: $(STAMP)
	$(BIN)/ruff check .
	rm -rf $(IMPORT_TREE)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --target $(IMPORT_TREE) .
	PYTHONPATH=$(IMPORT_TREE) $(BIN)/lint-imports --no-cache

test: lint cpp-deps
	$(BIN)/python -m pytest

# The C API and its example app (cpp/), with a backend per runtime installed in .venv:
# libtorch (inside torch), OpenVINO (the [cpp] extra) and ExecuTorch (the [edge] extra).
# (CPP_CUDA=ON links libtorch's CUDA libraries, for --device cuda; the default is CPU-only)
CPP_CUDA ?= OFF
CMAKE_PREFIXES = $$($(BIN)/python cpp/cpp_build.py)

cpp: $(STAMP) cpp-deps
	cmake -S cpp -B $(CPP_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$(CMAKE_PREFIXES)" \
		-DEMO_WITH_CUDA=$(CPP_CUDA)
	cmake --build $(CPP_BUILD) -j

# A relocatable tree in PREFIX: include/, lib/ (the library, its backend plugins and the
# runtime libraries they load), bin/emo_classify, lib/cmake/emo_toolkit. Leave a runtime out
# with CPP_OPTIONS, e.g. CPP_OPTIONS=-DEMO_WITH_TORCH=OFF (libtorch brings 0.4-2.8 GB).
PREFIX ?= build/emo-toolkit-c
CPP_OPTIONS ?=
cpp-install: $(STAMP) cpp-deps
	cmake -S cpp -B $(CPP_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$(CMAKE_PREFIXES)" \
		-DEMO_WITH_CUDA=$(CPP_CUDA) $(CPP_OPTIONS)
	cmake --build $(CPP_BUILD) -j
	cmake --install $(CPP_BUILD) --prefix $(PREFIX)

# libsndfile's headers, so emo_classify reads every audio format: installed with apt where
# this runs as root (CI, containers); elsewhere emo_classify reads WAV only, and says so.
cpp-deps:
	@pkg-config --exists sndfile 2>/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing libsndfile1-dev and pkg-config (apt)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q libsndfile1-dev pkg-config >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -q libsndfile1-dev pkg-config >/dev/null 2>&1; } || \
		echo "note: could not install libsndfile1-dev; emo_classify will read WAV only"; \
	else echo "note: libsndfile1-dev is not installed; emo_classify will read WAV only"; fi
	@command -v aarch64-linux-gnu-g++ >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the aarch64 cross toolchain (apt)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++-aarch64-linux-gnu >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++-aarch64-linux-gnu >/dev/null 2>&1; } || \
		echo "note: could not install the aarch64 cross toolchain; its test is skipped"; \
		if command -v aarch64-linux-gnu-g++ >/dev/null; then \
			echo "installing arm64 libsndfile (apt, multiarch)"; \
			{ dpkg --add-architecture arm64 && apt-get update -q >/dev/null 2>&1 && \
			  DEBIAN_FRONTEND=noninteractive apt-get install -y -q libsndfile1-dev:arm64 >/dev/null 2>&1; } || \
			{ echo "note: no arm64 libsndfile; the aarch64 emo_classify reads WAV only"; \
			  dpkg --remove-architecture arm64 2>/dev/null; apt-get update -q >/dev/null 2>&1; true; }; \
		fi; \
	fi

# Wheels the GPU image (Python 3.12, torch 2.11, no package index) lacks, for
# docs/figures/device_check.sh: carry build/device-wheels with the command.
DEVICE_WHEELS = torchaudio==2.11.0 soundfile cffi pycparser click tqdm safetensors 'setuptools>=77' \
	pytest pluggy iniconfig packaging pygments
device-wheels: $(STAMP)
	$(BIN)/python -m pip download --quiet --only-binary=:all: --no-deps --python-version 3.12 \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 --platform any -d build/device-wheels $(DEVICE_WHEELS)

clean:
	rm -rf build
