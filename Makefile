# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nbcost-installed

.PHONY: demo test test-py test-js test-browser bench install clean

# The environment: a venv with nbcost (editable) and everything the tests need.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Runs the example notebook headless with tracking and prints its cost table.
demo: install
	mkdir -p build
	$(BIN)/nbcost run examples/quickstart.ipynb -o build/quickstart.out.ipynb

test: install test-py test-js test-browser

test-py: install
	$(BIN)/python -m pytest -q -m "not browser" tests

# The lab extension's unit tests (jest) and the real-browser test come with the extension.
test-js: install

test-browser: install

bench: install
	$(BIN)/python benchmarks/cell_overhead.py

clean:
	rm -rf build $(VENV)
