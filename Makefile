# The README's two commands:  `make demo`  and  `make test`.
# Each creates .venv from a Python >= 3.12 that .ci/find-python.sh finds, installs bayeshrink
# with the pinned versions in constraints.txt, then runs.
VENV   := .venv
STAMP  := $(VENV)/.bayeshrink-installed
BIN    := $(VENV)/bin

.PHONY: demo test test-full lint bench docs clean

$(STAMP): pyproject.toml constraints.txt
	@py=$$(sh .ci/find-python.sh) || exit 1; \
	 echo "creating $(VENV) with $$py ($$($$py --version))"; \
	 $$py -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/bayeshrink demo

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest

test-full: $(STAMP)
	BAYESHRINK_FULL=1 MPLBACKEND=Agg $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check bayeshrink tests benchmarks
	$(BIN)/ruff format --check bayeshrink tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_fit.py

# The documentation site (Sphinx, MyST-NB, pydata theme) into docs/_build/html; warnings are
# errors. Notebooks are rendered from their committed outputs, not re-executed.
docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@touch docs/_build/html/.built  # tests/test_browser.py reuses a build newer than its sources
	@echo "open docs/_build/html/index.html"

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/_generated docs/generated docs/notebooks
