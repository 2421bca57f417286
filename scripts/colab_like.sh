#!/usr/bin/env bash
# Build an environment with Colab's versions (scripts/colab_versions.txt, Python 3.13) in its own
# folder, then run the whole test suite there: the package tests and every lesson under nbval.
#
#   make colab-check                 # folder .colab/ (git-ignored); COLAB_DIR=... elsewhere
#   COLAB_PYTHON=/path/python3.13 make colab-check
#
# torch comes from PyPI, the CUDA build Colab's GPU runtimes have: a few GB on the first run,
# which is why CI does not run this. Later runs reuse the folder, and reinstall only when
# pyproject.toml or scripts/colab_versions.txt changed.
# Extra arguments go to pytest (e.g. tests/test_cpu_kernel.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${COLAB_DIR:-.colab}
versions=scripts/colab_versions.txt

python=${COLAB_PYTHON:-}
if [ -z "$python" ]; then
    # pyenv's shim answers to python3.13 even where it cannot run one: try each.
    for candidate in python3.13 "$HOME"/.pyenv/versions/3.13*/bin/python3.13; do
        if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
            python=$(command -v "$candidate")
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "colab-check needs Python 3.13 (Colab's): put python3.13 on PATH or set COLAB_PYTHON" >&2
    exit 2
fi

venv=$folder/venv
stamp=$venv/.installed
if [ ! -f "$stamp" ] || [ "$versions" -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # Colab's versions as constraints, the course's own tools (JupyterLab, nbval, pytest) as
    # pyproject.toml asks: what a learner's Colab runtime has, plus what runs the lessons.
    "$venv/bin/python" -m pip install --quiet -c "$versions" -e ".[dev]"
    touch "$stamp"
fi

report=$folder/report.txt
{
    echo "Colab-like run of $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ)"
    "$venv/bin/python" - <<'PY'
import platform
from importlib.metadata import version

print("python", platform.python_version())
for name in ("torch", "numpy", "matplotlib", "ipywidgets", "ipykernel", "jupyterlab", "nbval"):
    print(name, version(name))
PY
} | tee "$report"

# As CI does: the C kernel's tests and the long lessons' grading must run, not skip.
export CBAM_REQUIRE_CPU_KERNEL=1 CBAM_GRADE_LONG_LESSONS=1 PYTHONUNBUFFERED=1
# The lessons run in kernels that see no GPU (their references are the CPU settings). A CUDA
# build of torch that sees none, on a machine with a CUDA toolkit, logs "No CUDA runtime is
# found" to stderr when torch.utils.cpp_extension is imported (lesson 07's Timer imports it),
# and nbval fails a cell with stderr it did not expect. Colab never shows it: its CUDA build has
# its GPU, its CPU runtimes a CPU build. torch's own switch keeps its log to errors.
export TORCH_LOGS=-torch
set +e
"$venv/bin/python" -m pytest -p no:cacheprovider "$@" 2>&1 | tee -a "$report"
status=${PIPESTATUS[0]}
set -e
echo "report: $report"
exit "$status"
