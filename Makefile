# make lab    - set up .venv if needed, then open the course in JupyterLab
# make test   - set up .venv if needed, then run the whole test suite
# make build  - rebuild the generated notebooks from solutions/*.py
# make grade SUBMISSION=path/to/notebook.ipynb
# Each target installs what it needs; from a fresh clone each works alone.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH ?= torch>=2.1
STAMP := $(VENV)/.installed

.PHONY: lab test build check grade table4 bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first: a CPU build that pip's find-links already hold (a local wheel, no download) is
# preferred; elsewhere --no-index finds nothing and the ordinary index is used.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet --no-index --no-deps "$(TORCH)" 2>/dev/null || true
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[dev]"
	touch $@

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

test: $(STAMP)
	$(PY) -m pytest

build: $(STAMP)
	$(VENV)/bin/cbam-course build

check: $(STAMP)
	$(VENV)/bin/cbam-course build --check

grade: $(STAMP)
	$(VENV)/bin/cbam-course grade $(SUBMISSION)

table4: $(STAMP)
	$(VENV)/bin/cbam-course table4

bench: $(STAMP)
	$(PY) -m cbam.bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
