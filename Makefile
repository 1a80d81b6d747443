# `make repro`: venv + install + `dvc repro`.  `make test`: venv + install + the test suite.
# Every package is installed at the version in constraints.txt (the set the suite passed with);
# `make lock` refreshes that file from the newest releases (docs/development.md#installs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# Pinned so every run (and CI) gets the same kernels; override for another CUDA/CPU build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
CONSTRAINTS := constraints.txt
PYTEST_ARGS ?=
# The report's browser test renders reports/index.html in Debian's chromium.
CHROMIUM ?= /usr/bin/chromium
# The fan-out tests start a real single-node SLURM (munge + slurmctld + slurmd) from Debian's packages.
SLURMD ?= /usr/sbin/slurmd

# Recipes fail on the first failing command, inside a pipe too (a failed pip freeze must not
# become an empty lock).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
# Not in the lock: TORCH_SPEC pins torch and torchvision, and what CUDA packages a torch build
# pulls depends on the build and the platform.
UNLOCKED := ^(torch|torchvision|triton|nvidia-.*|cuda-.*)==

export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: install repro test clean lock check-lock

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@

# The installed set equals the lock (CI runs this): a fresh clone got exactly what was tested.
check-lock: install
	$(BIN)/python -m pip freeze --exclude-editable | { grep -v -i -E '$(UNLOCKED)' || true; } | diff -u $(CONSTRAINTS) -
	@echo "installed packages = $(CONSTRAINTS)"

# Resolve the newest releases in a throwaway venv and write them as the new lock; then run
# `make clean test` and commit constraints.txt if it passes. torch/torchvision: TORCH_SPEC.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet $(TORCH_SPEC)
	.lock-venv/bin/python -m pip install --quiet -e '.[test]'
	.lock-venv/bin/python -m pip freeze --exclude-editable > .lock-venv/freeze.txt
	grep -v -i -E '$(UNLOCKED)' .lock-venv/freeze.txt > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	rm -rf .lock-venv

# check_params first, outside DVC: DVC parses params.yaml before any stage runs, and a missing or
# empty one gives its own error about a matrix key instead of one line about the file.
repro: install
	$(BIN)/python stages/check_params.py
	dvc repro

test: install $(CHROMIUM) $(SLURMD)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null)

$(SLURMD):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null)

clean:
	rm -rf $(VENV) .pytest_cache .lock-venv
