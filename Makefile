# make lab    - set up .venv if needed, copy the learner notebooks into my-notebooks/ (once
#               each), then open that folder in JupyterLab
# make test   - set up .venv if needed, then run the whole test suite
# make build  - rebuild the generated notebooks from solutions/*.py
# make grade SUBMISSION=path/to/notebook.ipynb  - in a sandbox per notebook (docs/grading.md)
# make experiments - re-make the stored experiment runs in cbam/results/ (three hours on 2 cores)
# make gpu-check   - on a CUDA machine: CUDA tests, training lessons in full mode, the benchmark
# make colab-check - build Colab's runtime (Python 3.13, torch 2.11, ...) in .colab/, check that
#                    installing the course changes none of its packages, run the suite there
# make colab-check-2026.07 - the same for Colab's older pinnable runtime (Python 3.12, numpy 2.0.2)
# make newest-torch-check - the suite on the newest torch release, in .newest-torch/
# Each target installs what it needs; from a fresh clone each works alone.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH ?= torch>=2.11
STAMP := $(VENV)/.installed
# The learner's own folder (git-ignored): `git pull` updates notebooks/, never this.
LEARNER_DIR ?= my-notebooks
# More options for JupyterLab, e.g. LAB_ARGS="--ip=0.0.0.0 --no-browser" in a container.
LAB_ARGS ?=

.PHONY: lab test build check grade sandbox grading-cost table4 bench experiments lint clean gpu-check colab-check \
	colab-check-2026.07

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

# A lesson already in LEARNER_DIR is never overwritten: it holds the learner's answers. Jupyter
# refuses to run as root unless told, and root is what most containers are.
lab: $(STAMP)
	@mkdir -p "$(LEARNER_DIR)"
	@for notebook in notebooks/*.ipynb; do \
		copy="$(LEARNER_DIR)/$$(basename "$$notebook")"; \
		if [ ! -e "$$copy" ]; then cp "$$notebook" "$$copy" && echo "copied to $$copy"; fi; \
	done
	@root=""; if [ "$$(id -u)" = 0 ]; then \
		root=--allow-root; echo "running as root: starting JupyterLab with --allow-root"; \
	fi; \
	echo "your notebooks: $(LEARNER_DIR)/ (course updates never touch them)"; \
	exec $(VENV)/bin/jupyter lab $$root $(LAB_ARGS) "$(LEARNER_DIR)"

test: $(STAMP)
	$(PY) -m pytest

build: $(STAMP)
	$(VENV)/bin/cbam-course build

check: $(STAMP)
	$(VENV)/bin/cbam-course build --check

# Each submission is graded in a bubblewrap sandbox: installed here where apt-get can (root).
grade: $(STAMP) sandbox
	$(VENV)/bin/cbam-course grade $(SUBMISSION)

sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; \
		else \
			echo "the grader needs bubblewrap: sudo apt-get install bubblewrap"; exit 1; \
		fi; }

# Lessons 01-03 graded in the sandbox, without it, and (BASELINE=DIR) by another checkout
grading-cost: $(STAMP) sandbox
	$(PY) scripts/grading_cost.py $(if $(BASELINE),--baseline $(BASELINE))

table4: $(STAMP)
	$(VENV)/bin/cbam-course table4

# The stored runs of the four experiments (cbam/results/), re-made from scratch: about an hour
# on a 2-core CPU, one process per core. Lesson 06 opens the kept models of seeds 0-4.
EXPERIMENT = $(VENV)/bin/cbam-course experiment
experiments: $(STAMP)
	rm -rf cbam/results/*.json cbam/results/*-models
	$(EXPERIMENT) attention --seeds 0-9 --jobs 2 --keep-models 0-4 --out cbam/results/attention.json
	$(EXPERIMENT) pooling --seeds 0-9 --jobs 2 --out cbam/results/pooling.json
	$(EXPERIMENT) spatial --seeds 0-9 --jobs 2 --out cbam/results/spatial.json
	$(EXPERIMENT) arrangement --seeds 0-9 --jobs 2 --out cbam/results/arrangement.json
	$(EXPERIMENT) controls --seeds 0-9 --jobs 2 --out cbam/results/controls.json
	$(EXPERIMENT) budget --seeds 0-4 --jobs 2 --out cbam/results/budget.json
	$(EXPERIMENT) successors --seeds 0-9 --jobs 2 --out cbam/results/successors.json

bench: $(STAMP)
	$(PY) -m cbam.bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Writes gpu-check-report.md; fails at once, saying so, where there is no CUDA GPU.
gpu-check: $(STAMP)
	$(PY) -m cbam.gpu_check

# Downloads a few GB on the first run (torch's CUDA build), so CI does not run it.
colab-check:
	scripts/colab_like.sh

colab-check-2026.07:
	COLAB_VERSIONS=scripts/colab_versions_2026.07.txt scripts/colab_like.sh

# The newest torch is a CUDA build from PyPI (a few GB), so CI does not run it either.
.PHONY: newest-torch-check
newest-torch-check:
	scripts/newest_torch.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
