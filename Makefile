# Shortcuts; the scripts in scripts/ are what the README and CI call.
.PHONY: demo test fast lint typecheck bench clean

demo:
	scripts/demo

test:
	scripts/test

## Only the fast tier, while you work.
fast:
	scripts/setup dev && .venv/bin/pytest -m fast -q

lint:
	scripts/setup dev && .venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src tests bench

typecheck:
	scripts/setup dev && .venv/bin/mypy

bench:
	scripts/setup dev && .venv/bin/python bench/pipeline_vs_floor.py

clean:
	rm -rf .venv ecompipe-workspace bench/out
