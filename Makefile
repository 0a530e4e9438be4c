# gpusim: the two commands of the quick start.
#   make run    set up .venv, install gpusim, run the quickstart scenario -> results/quickstart.h5
#   make test   set up .venv, install gpusim with its test extras, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gpusim-installed

.PHONY: run test test-all validate bench gpu-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,plot,dask]'
	touch $(STAMP)

run: $(STAMP)
	mkdir -p results
	$(BIN)/gpusim run quickstart -o results/quickstart.h5 --force

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_engine.py

# on a GPU machine (no network needed: runs from the source tree with the machine's python3, which
# must have cupy, numpy, h5py, click, pytest and scipy); results as JSON in one folder
gpu-check:
	PYTHONPATH=$(CURDIR) $(PYTHON) benchmarks/gpu_check.py --out benchmarks/results/gpu-check

clean:
	rm -rf $(VENV) results build *.egg-info
