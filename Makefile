# The two commands of the README. Both run the idempotent set-up first.
.PHONY: setup demo test test-unit test-long lint bench

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/stq demo

test: setup
	.venv/bin/ruff check toolchain tests benchmarks
	.venv/bin/python -m pytest -q -ra -n auto --dist loadfile

test-unit: setup
	.venv/bin/python -m pytest -q -m unit

test-long: setup
	.venv/bin/python -m pytest -q -ra -m long

bench: setup
	.venv/bin/python benchmarks/run_all.py
