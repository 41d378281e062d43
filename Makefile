# The two quick-start commands are `make demo` and `make test`; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test check lint bench gpu-check

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

# Per method on a GPU (paper presets, bf16): training step, peak memory, device batch per
# GPU memory class, inference ms per video, loader workers needed; records in results/gpu
# and results/runs (about 8 minutes on one H200). On a machine without a GPU it runs the
# tiny presets on the CPU, as a check of the script itself.
gpu-check: setup
	$(BIN)/cvbench bench gpu --save --method tcar,cvpt,meaci,stm,tpclip,coviar,iframe
