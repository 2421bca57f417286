#!/usr/bin/env bash
# Colab's runtime, rebuilt in a folder of its own, then the course's installation checked
# against it and the whole test suite run there (the package tests and every lesson under nbval).
#
#   make colab-check                      # the current runtime (scripts/colab_versions.txt)
#   make colab-check-2026.07              # the older pinnable one (Python 3.12, numpy 2.0.2)
#   COLAB_VERSIONS=file COLAB_DIR=folder COLAB_PYTHON=/path/python3.x scripts/colab_like.sh
#
# 1. Colab as shipped: a fresh venv with every line of the versions file installed as it stands
#    (what the file leaves out, the CUDA libraries among them, resolves as pip finds it).
# 2. The course installed as a lesson's setup cell installs it there (pip install with
#    dependency resolution, not editable), and `pip freeze` compared before and after: the check
#    fails, naming them, when the installation changed any of Colab's packages.
# 3. The course's test tools (pytest, nbval, JupyterLab) installed on top, Colab's versions held
#    as constraints, and the suite run.
#
# torch comes from PyPI, a CUDA build: a few GB on the first run, which is why CI does not run
# this. Later runs reuse the folder and rebuild it only when the versions file, pyproject.toml
# or this script changed. Extra arguments go to pytest (e.g. tests/test_cpu_kernel.py -x).
set -euo pipefail
cd "$(dirname "$0")/.."
versions=${COLAB_VERSIONS:-scripts/colab_versions.txt}
folder=${COLAB_DIR:-.colab/$(basename "$versions" .txt)}
wanted=$(sed -n 's/^# python: *//p' "$versions")

python=${COLAB_PYTHON:-}
if [ -z "$python" ]; then
    # pyenv's shim answers to python3.X even where it cannot run one: try each.
    for candidate in "python$wanted" "$HOME"/.pyenv/versions/"$wanted".*/bin/python"$wanted"; do
        if "$candidate" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$wanted'" \
            2>/dev/null; then
            python=$(command -v "$candidate")
            break
        fi
    done
fi
if [ -z "$python" ]; then
    echo "colab-check needs Python $wanted (Colab's, $versions): put python$wanted on PATH" \
        "or set COLAB_PYTHON" >&2
    exit 2
fi

venv=$folder/venv
stamp=$venv/.installed
freeze() { "$venv/bin/python" -m pip freeze --all --exclude-editable "$@"; }
if [ ! -f "$stamp" ] || [ "$versions" -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
    || [ scripts/colab_like.sh -nt "$stamp" ]; then
    echo "building Colab's runtime from $versions in $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    pip_line=$(grep -E '^pip==' "$versions")
    "$venv/bin/python" -m pip install --quiet "$pip_line"
    "$venv/bin/python" -m pip install --quiet -r "$versions"
    freeze >"$folder/before.txt"
    # What a lesson's setup cell runs on Colab, with this checkout in place of the repository.
    "$venv/bin/python" -m pip install --quiet .
    freeze >"$folder/after.txt"
    # The suite needs its tools, and the lessons' kernels this checkout: Colab's versions held.
    "$venv/bin/python" -m pip install --quiet -c "$versions" -e ".[dev]"
    freeze >"$folder/with-tools.txt"
    touch "$stamp"
fi

report=$folder/report.txt
{
    echo "Colab-like run of $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ)"
    echo "runtime: $versions ($("$venv/bin/python" --version))"
    "$venv/bin/python" - <<'PY'
from importlib.metadata import version

for name in ("torch", "numpy", "matplotlib", "ipywidgets", "ipykernel", "IPython", "traitlets",
             "jupyter_client", "nbclient", "jupyterlab", "nbval"):
    print(name, version(name))
PY
    echo "-- the setup cell's installation against Colab's packages:"
} | tee "$report"
set +e
"$venv/bin/python" scripts/colab_freeze_diff.py "$folder/before.txt" "$folder/after.txt" \
    | tee -a "$report"
installed=${PIPESTATUS[0]}
echo "-- the test tools' installation against the versions file:" | tee -a "$report"
"$venv/bin/python" scripts/colab_freeze_diff.py --only "$versions" \
    "$folder/before.txt" "$folder/with-tools.txt" | tee -a "$report"
tools=${PIPESTATUS[0]}
set -e

# As CI does: the C kernel's tests and the long lessons' grading must run, not skip.
export CBAM_REQUIRE_CPU_KERNEL=1 CBAM_GRADE_LONG_LESSONS=1 PYTHONUNBUFFERED=1
set +e
"$venv/bin/python" -m pytest -p no:cacheprovider "$@" 2>&1 | tee -a "$report"
status=${PIPESTATUS[0]}
set -e
echo "report: $report"
if [ "$installed" -ne 0 ]; then
    echo "colab-check: installing the course changed Colab's packages (see above)" >&2
    exit 1
fi
if [ "$tools" -ne 0 ]; then
    echo "colab-check: the test tools changed Colab's packages: the suite did not run on" \
        "Colab's versions" >&2
    exit 1
fi
exit "$status"
