PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,distributed]"
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/retrograd demo

test: $(VENV)/.installed-test
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 tests

bench: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks.run

lint: $(VENV)/.installed-test
	$(BIN)/ruff check retrograd tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info
