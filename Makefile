# `make repro`: venv + install + `dvc repro`.  `make test`: venv + install + the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# Pinned so every run (and CI) gets the same kernels; override for another CUDA/CPU build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# The report's browser test renders reports/index.html in Debian's chromium.
CHROMIUM ?= /usr/bin/chromium

export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

repro: install
	dvc repro

test: install $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null)

clean:
	rm -rf $(VENV) .pytest_cache
