# The two quick-start commands are `make demo` and `make test`; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test check lint bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py datamodules/_accel.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python setup.py -q build_ext --inplace
	touch $@

demo: setup
	$(BIN)/cvbench run --method coviar --dataset synthetic --epochs 12
	$(BIN)/cvbench table

test: setup
	$(BIN)/python -m pytest -q

# CI regression checks: the papers' structural numbers, the seeded baselines, the tables
check: setup
	$(BIN)/cvbench check

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/cvbench bench loader --synthetic
