# The two commands the README starts with are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test fast lint typecheck bench bench-engines clean

$(BIN)/ecompipe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## Set up, generate sample data, run the pipeline, print the KPIs.
demo: $(BIN)/ecompipe
	$(BIN)/ecompipe demo

## Set up and run every test tier (slow, Spark and AWS ones included), plus lint and types.
test: $(BIN)/ecompipe
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup

## Only the fast tier, while you work.
fast: $(BIN)/ecompipe
	$(BIN)/pytest -m fast -q

lint: $(BIN)/ecompipe
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/ecompipe
	$(BIN)/mypy

bench: $(BIN)/ecompipe
	$(BIN)/python bench/pipeline_vs_floor.py

clean:
	rm -rf $(VENV) ecompipe-workspace bench/out
