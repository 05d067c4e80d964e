# Set-up, book and tests. The virtual environment is made once and re-made only when
# pyproject.toml or constraints.txt change.
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= cpu
BIN     := $(VENV)/bin

.PHONY: book test lab clean
.DEFAULT_GOAL := book

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

## book: set up, execute every chapter on PROFILE (default cpu) and build the HTML
book: $(BIN)/.installed
	$(BIN)/llmunlearn book --profile $(PROFILE)

## test: set up and run the test suite (CPU, offline)
test: $(BIN)/.installed
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest

## lab: add JupyterLab to the environment and open it on the book
lab: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,lab]'
	$(BIN)/jupyter lab book/

## clean: remove the built book (keeps the environment, data and trained models)
clean:
	rm -rf _build
