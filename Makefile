# clinical-mborl: `make demo` and `make test` set themselves up.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out
DEMO_JOBS ?= 2
# Small networks train fastest single-threaded on a shared 2-core machine; override as you like.
OMP_NUM_THREADS ?= 1
export OMP_NUM_THREADS

.PHONY: install demo test lint schemas bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/clinical-mborl demo --out $(DEMO_OUT) --jobs $(DEMO_JOBS)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider
	$(BIN)/lint-imports --no-cache

lint: $(STAMP)
	$(BIN)/ruff check clinical_mborl tests benchmarks
	$(BIN)/lint-imports --no-cache

schemas: $(STAMP)
	$(BIN)/clinical-mborl schemas export --out schemas

bench: $(STAMP)
	$(BIN)/python benchmarks/cohort_build.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .hypothesis
