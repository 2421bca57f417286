#!/usr/bin/env bash
# The suite on the newest torch that pip finds (no upper bound), so that a practitioner on the
# newest release is covered, not only Colab's torch and the one `make test` installs.
#
#   make newest-torch-check              # folder .newest-torch/ (git-ignored); NEWEST_TORCH_DIR=...
#   PYTHON=python3.13 make newest-torch-check
#
# torch comes from PyPI, a CUDA build: a few GB on the first run, which is why CI does not run
# this. Each run upgrades torch if a newer release is out. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
folder=${NEWEST_TORCH_DIR:-.newest-torch}
venv=$folder/venv
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --upgrade torch
"$venv/bin/python" -m pip install --quiet -e ".[dev]"

report=$folder/report.txt
{
    echo "Newest-torch run of $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%FT%TZ)"
    "$venv/bin/python" - <<'PY'
import platform
from importlib.metadata import version

print("python", platform.python_version())
for name in ("torch", "numpy", "matplotlib", "ipywidgets", "ipykernel", "nbval"):
    print(name, version(name))
PY
} | tee "$report"

# As CI does: the C kernel's tests and the long lessons' grading must run, not skip.
export CBAM_REQUIRE_CPU_KERNEL=1 CBAM_GRADE_LONG_LESSONS=1 PYTHONUNBUFFERED=1
set +e
"$venv/bin/python" -m pytest -p no:cacheprovider "$@" 2>&1 | tee -a "$report"
status=${PIPESTATUS[0]}
set -e
echo "report: $report"
exit "$status"
