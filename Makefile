# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.nbcost-installed

.PHONY: demo test test-py test-js test-browser labext bench install clean focus-validator

# The environment: a venv with nbcost (editable) and everything the tests need.
# (`make labext`'s development build copies install.json into src/nbcost/labextension, which
# the wheel also maps from labextension/: the copy goes, or a reinstall fails on a duplicate.)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	rm -f src/nbcost/labextension/install.json
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Runs the example notebook headless with tracking and prints its cost table.
demo: install
	mkdir -p build
	$(BIN)/nbcost run examples/quickstart.ipynb -o build/quickstart.out.ipynb

test: install test-py test-js test-browser

test-py: install focus-validator
	NBCOST_FOCUS_VALIDATOR=$(abspath $(FOCUS_VALIDATOR)) $(BIN)/python -m pytest -q -m "not browser" tests

# The FinOps Foundation's FOCUS validator, in its own venv: 1.0.0 is the release installable on
# Python 3.11, and it pins pandas, numpy and pandera older than nbcost's. tests/test_focus.py
# runs it on the FOCUS export. (multimethod<1.11: its pandera does not import with newer ones;
# pyarrow<18: it reads Parquet with numpy 1.x.)
FOCUS_VENV := .venv-focus
FOCUS_VALIDATOR := $(FOCUS_VENV)/bin/focus-validator

$(FOCUS_VALIDATOR):
	$(PYTHON) -m venv $(FOCUS_VENV)
	$(FOCUS_VENV)/bin/python -m pip install -q focus-validator==1.0.0 'multimethod<1.11' 'pyarrow<18'

focus-validator: $(FOCUS_VALIDATOR)

# The lab extension (labextension/): node packages from the committed yarn.lock through jlpm
# (which the venv's jupyterlab provides), built into src/nbcost/labextension and linked into the
# venv's Jupyter so `jupyter lab` loads it. `pip install .` builds and ships it on its own.
# (The package scripts call jlpm and jupyter-builder by name: the venv's bin goes first on PATH.)
JLPM := PATH="$(abspath $(BIN)):$$PATH" jlpm
NODE_MODULES := labextension/node_modules/.yarn-state.yml

$(NODE_MODULES): labextension/package.json labextension/yarn.lock | install
	cd labextension && $(JLPM) install
	touch $(NODE_MODULES)

# (The link is what `jupyter labextension develop` makes, without needing jupyter-builder.)
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/nbcost

labext: install $(NODE_MODULES)
	cd labextension && $(JLPM) build
	rm -rf $(LABEXT_LINK) && mkdir -p $(dir $(LABEXT_LINK))
	ln -s $(abspath src/nbcost/labextension) $(LABEXT_LINK)

# jest tests of the extension's model and formatting code.
test-js: install $(NODE_MODULES)
	cd labextension && $(JLPM) test

# Real JupyterLab in headless Chromium: Debian's, installed here when missing and we are root
# (Playwright cannot download browsers on these machines). The screenshots land in
# test-artifacts/ (a test run leaves the tree as it was); copying jupyterlab-budget.png to
# docs/screenshot.png, jupyterlab-gpu.png to docs/screenshot-gpu.png and audit.png to
# docs/audit.png refreshes the README's.
test-browser: labext
	@test -x "$${CHROMIUM:-/usr/bin/chromium}" || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update && apt-get install -y chromium; \
		else \
			echo "test-browser needs Chromium: sudo apt-get install -y chromium (or set CHROMIUM)"; \
			exit 1; \
		fi; }
	$(BIN)/python -m pytest -q -m browser tests/browser

# Every benchmark that runs here, then one table: figure, goal, met (BENCH_ARGS=--quick for a
# shorter run). Not part of `make test`: figures need a quiet machine.
bench: install
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf build $(VENV) $(FOCUS_VENV)
