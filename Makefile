.PHONY: install check lint test test-fast bench

install:            ## CPU install: torch CPU build first, then faceswap with dev and fan extras
	pip install -r requirements-cpu.txt

lint:
	ruff check . && ruff format --check .

test:               ## the README's test command
	python -m pytest -q

test-fast:
	python -m pytest -q -m "not slow"

check: lint test    ## what CI runs after installing

bench:
	python benchmarks/bench_extract.py
	python benchmarks/bench_train.py
	python benchmarks/bench_convert.py
