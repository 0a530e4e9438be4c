# gpusim: the two commands of the quick start.
#   make run    set up .venv, install gpusim, run the quickstart scenario -> results/quickstart.h5
#   make test   set up .venv, install gpusim with its test extras, run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gpusim-installed

.PHONY: run test test-all validate bench clean

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

clean:
	rm -rf $(VENV) results build *.egg-info
