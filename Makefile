# The README's two commands:  `make demo`  and  `make test`, from a fresh clone in either order.
# Both use one .venv, created from a Python >= 3.12 that .ci/find-python.sh finds, and fill it in
# layers with the pinned versions in constraints.txt; a stamp per layer records what is in it:
#   demo         the runtime dependencies and nutpie (the `fast` extra)
#   test, docs   what the suite needs: the `test` and `docs` extras (the browser tests build the
#                docs; nothing in the suite imports the benchmarks' statsmodels or bambi)
#   lint, bench  everything (the `dev` extra: test, docs, bench, ruff)
# `make test` after `make demo` adds to the same venv; `make demo` after `make test` finds nutpie
# there already.
VENV       := .venv
BIN        := $(VENV)/bin
DEMO_STAMP := $(VENV)/.bayeshrink-demo
TEST_STAMP := $(VENV)/.bayeshrink-test
STAMP      := $(VENV)/.bayeshrink-installed
PIP        := $(BIN)/python -m pip install --quiet -c constraints.txt

.PHONY: demo test test-full lint bench docs clean

$(BIN)/python:
	@py=$$(sh .ci/find-python.sh) || exit 1; \
	 echo "creating $(VENV) with $$py ($$($$py --version))"; \
	 $$py -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[fast]'
	@touch $@

$(TEST_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[test,docs]'
	@touch $@

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e '.[dev]'
	@touch $@

demo: $(DEMO_STAMP)
	$(BIN)/bayeshrink demo

# pytest-xdist workers: one per core, at most 4 (each imports PyMC; a test module stays on one
# worker, so its module fixtures, Spark session and Dask cluster start once). JOBS=1 runs serially.
JOBS       ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
XDIST      := $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadscope)

test: $(TEST_STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest $(XDIST)

test-full: $(TEST_STAMP)
	BAYESHRINK_FULL=1 MPLBACKEND=Agg $(BIN)/python -m pytest $(XDIST)

lint: $(STAMP)
	$(BIN)/ruff check bayeshrink tests benchmarks
	$(BIN)/ruff format --check bayeshrink tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_fit.py

# The documentation site (Sphinx, MyST-NB, pydata theme) into docs/_build/html; warnings are
# errors. Notebooks are rendered from their committed outputs, not re-executed.
docs: $(TEST_STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@touch docs/_build/html/.built  # tests/test_browser.py reuses a build newer than its sources
	@echo "open docs/_build/html/index.html"

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/_generated docs/generated docs/notebooks
