# Set-up, book and tests. The virtual environment is made once and re-made only when
# pyproject.toml or constraints.txt change. pip byte-compiles one file at a time (115 of
# the set-up's 190 s on 2 cores); compileall does the same on every core (70 s).
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= cpu
BIN     := $(VENV)/bin

.PHONY: book test lint format check-pages check-lab lab clean gpu-check
.DEFAULT_GOAL := book

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -c constraints.txt -e '.[test,lab]'
	$(BIN)/python -m compileall -q -j 0 $$($(BIN)/python -c \
	    "import sysconfig; print(sysconfig.get_paths()['purelib'])") >/dev/null || true
	$(BIN)/llmunlearn mathjax || echo "warning: no MathJax for offline equations (needs npm)"
	$(BIN)/python -m ipykernel install --sys-prefix --name llmunlearn \
	    --display-name "Python (llmunlearn)" >/dev/null
	touch $@

## book: set up, execute every chapter on PROFILE (default cpu) and build the HTML
book: $(BIN)/.installed
	$(BIN)/llmunlearn book --profile $(PROFILE)

## test: set up and run the test suite (CPU, offline)
test: $(BIN)/.installed
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest

## lint: check the code with ruff, lint and format (configured in pyproject.toml; the
## same checks run before each commit with pre-commit: .pre-commit-config.yaml)
lint: $(BIN)/.installed
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

## format: rewrite the code in ruff's format
format: $(BIN)/.installed
	$(BIN)/ruff format src tests

## check-pages: the built smoke book in headless Chromium (needs `make book PROFILE=smoke`
## and a chromium on PATH); screenshots go to _build/smoke/_build/screenshots/
check-pages: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,browser]'
	$(BIN)/python -m pytest -q tests/browser/check_pages.py

## check-lab: a running JupyterLab in headless Chromium (admonition rendered, widget bar);
## screenshots go to _build/lab-screenshots/
check-lab: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,browser]'
	$(BIN)/python -m pytest -q tests/browser/check_lab.py

## lab: JupyterLab (MyST rendering, widgets; the set-up installs them) on the book's
## chapters with the project's kernel; as root (a container) it adds --allow-root
## and opens no browser: open the printed URL yourself
LAB_PORT ?= 8888
lab: $(BIN)/.installed
	$(BIN)/jupyter lab --ServerApp.root_dir=book --port=$(LAB_PORT) \
	    $(if $(filter 0,$(shell id -u)),--allow-root --no-browser,)

## gpu-check: a pre-training and a grid slice of the gpu profile on this machine's GPU
## (synthetic tokens, no data): tokens/s, MFU, peak memory, the book's planned hours
gpu-check: $(BIN)/.installed
	$(BIN)/llmunlearn gpu-check --profile gpu

## clean: remove the built book (keeps the environment, data and trained models)
clean:
	rm -rf _build
