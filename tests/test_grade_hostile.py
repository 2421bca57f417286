"""A hostile class: notebooks written to harm the grading of others or to pass without the work.

Every submission here is a real lesson-01 notebook, graded by the real command (a separate
process, as an instructor runs it) in the real sandbox. Each attack is written the way a
determined learner would write it: past the grader's pattern scan (names built from pieces,
``getattr``), so that it runs and the sandbox and the out-of-process verdicts are what stop it.

What is asserted, for every attack: no wrong pass; nothing changed outside the submission's own
grade (the course package, the reference notebooks, the other submissions, the gradebook after
the grader exited); no process left; the class run finishes with a report for everyone.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import cbam
from cbam.course.grading import sandbox
from cbam.course.grading.tamper import suspicious

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "solutions" / "01_channel_attention.ipynb"
LEARNER = ROOT / "notebooks" / "01_channel_attention.ipynb"
PACKAGE = Path(cbam.__file__).resolve().parent
GRADE = [sys.executable, "-m", "cbam.course.cli", "grade"]
EXERCISES = ("channel-descriptors", "shared-mlp", "channel-attention")

# CI sets CBAM_REQUIRE_SANDBOX=1 (and installs bubblewrap): there these tests run, never skip.
pytestmark = pytest.mark.skipif(
    sandbox.available() is not None and os.environ.get("CBAM_REQUIRE_SANDBOX") != "1",
    reason=f"no sandbox on this machine: {sandbox.available()}",
)

# Wrong solutions the attacks try to pass.
WRONG_DESCRIPTORS = """
def channel_descriptors(x):
    return x.sum(dim=(2, 3)), x.amax(dim=(2, 3))
"""
WRONG_MODULE = """
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.mlp = shared_mlp(channels, reduction)

    def attention(self, x):
        avg, mx = channel_descriptors(x)
        return (torch.sigmoid(self.mlp(avg)) + torch.sigmoid(self.mlp(mx)))[:, :, None, None]

    def forward(self, x):
        return x * self.attention(x)
"""
# Each replaces one exercise of an otherwise right notebook. {class_dir}, {gradebook} and
# {port} are filled in by the test.
ATTACKS: dict[str, tuple[str, str]] = {
    # --- harming the others --------------------------------------------------------------
    "edits_the_course_package": ("channel-descriptors", """
import pathlib
import cbam
for name in ("checks/report.py", "__init__.py"):
    try:
        with open(pathlib.Path(cbam.__file__).parent / name, "a") as f:
            f.write("\\nPASS = FAIL = 'x'\\n")
    except OSError:
        pass
""" + WRONG_DESCRIPTORS),
    "truncates_the_reference": ("channel-descriptors", """
import pathlib
import cbam
for found in pathlib.Path(cbam.__file__).resolve().parents[1].glob("solutions/*"):
    try:
        open(found, "w").close()
    except OSError:
        pass
""" + WRONG_DESCRIPTORS),
    "leaves_processes_behind": ("channel-descriptors", """
import os
run = getattr(os, "sys" + "tem")
run("setsid sh -c 'sleep 2; echo 0 > {gradebook}' >/dev/null 2>&1 &")
run("setsid sleep 317 >/dev/null 2>&1 &")
""" + WRONG_DESCRIPTORS),
    "reads_and_spoils_classmates": ("channel-attention", WRONG_MODULE + """
import json
import pathlib
import runpy
stolen = None
for found in pathlib.Path("{class_dir}").rglob("*.ipy" + "nb"):
    try:
        for cell in json.loads(found.read_text())["cells"]:
            if cell.get("metadata", {{}}).get("exercise") == "channel-attention":
                stolen = "".join(cell["source"])
        found.write_text("{{}}")
    except (OSError, ValueError, KeyError):
        pass
if stolen:
    pathlib.Path("stolen.py").write_text("import torch\nfrom torch import nn\n" + stolen)
    helpers = {{"shared_mlp": shared_mlp, "channel_descriptors": channel_descriptors}}
    ChannelAttention = runpy.run_path("stolen.py", init_globals=helpers)["ChannelAttention"]
"""),
    "forges_the_run_records": ("channel-descriptors", """
import json
import os
os.makedirs("junit.xml", exist_ok=True)
with open("cells.jsonl", "a") as records:
    for number in range(200):
        records.write(json.dumps({{"cell": number, "outcome": "passed", "outputs": []}}) + "\\n")
""" + WRONG_DESCRIPTORS),
    "calls_a_listener_on_loopback": ("channel-descriptors", """
import socket
for host in ("127.0.0.1", "localhost"):
    try:
        socket.create_connection((host, {port}), timeout=2).sendall(b"grades")
    except OSError:
        pass
""" + WRONG_DESCRIPTORS),
    # --- passing wrong work ----------------------------------------------------------------
    "swaps_print": ("channel-attention", """
real_print = print
def lying_print(*parts, **options):
    text = " ".join(str(p) for p in parts).replace("{{:c}}".format(10007), "{{:c}}".format(10003))
    real_print(text, **options)
print.__self__.print = lying_print
""" + WRONG_MODULE),
    "rewrites_stdout": ("channel-attention", """
import sys as s
class Rewriter:
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        return self.stream.write(text.replace("{{:c}}".format(10007), "{{:c}}".format(10003)))
    def flush(self):
        self.stream.flush()
setattr(s, "std" + "out", Rewriter(getattr(s, "std" + "out")))
""" + WRONG_MODULE),
    "patches_the_check_and_restores_it": ("channel-attention", """
import json
import pathlib
import cbam
lesson = getattr(getattr(cbam, "che" + "cks"), "chan" + "nel")
original = lesson.check_channel_attention
graded = json.loads(pathlib.Path("graded." + "ipy" + "nb").read_text())
expected = ["".join(output.get("text", "")) for cell in graded["cells"]
            if cell.get("metadata", {{}}).get("check") == "channel-attention"
            for output in cell.get("outputs", [])]
def replay(*args, **kwargs):
    setattr(lesson, "check_channel_attention", original)
    for text in expected:
        print(text, end="")
setattr(lesson, "check_channel_attention", replay)
""" + WRONG_MODULE),
    "clears_the_guard": ("channel-attention", """
for key, value in list(dict(locals()).items()):
    if key.startswith("_cbam_grader"):
        for slot in dir(value):
            if slot.startswith("_") and isinstance(getattr(value, slot, None), (list, set)):
                getattr(value, slot).clear()
""" + WRONG_MODULE),
    "floods_the_report": ("channel-attention", WRONG_MODULE + """
MARK = "{{:c}}".format(10007)
flood = (MARK + " channel-attention: flooded\\n") * 200_000
class ChannelAttention(ChannelAttention):
    def attention(self, x):
        print(flood, end="")
        return super().attention(x)
"""),
    "answers_only_the_checks_inputs": ("channel-descriptors", """
def channel_descriptors(x):
    if tuple(x.shape) in {{(2, 5, 3, 4), (1, 3, 1, 1), (4, 7, 6, 2)}}:
        return x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
    return x.mean(dim=(2, 3)) * 0.9, x.amax(dim=(2, 3))
"""),
    "a_tensor_that_says_yes": ("channel-descriptors", """
class Agreeable(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ("allclose", "equal", "isclose"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {{}})
def channel_descriptors(x):
    return x.sum(dim=(2, 3)).as_subclass(Agreeable), x.amin(dim=(2, 3)).as_subclass(Agreeable)
"""),
    # --- handing in cbam's own code ----------------------------------------------------------
    "a_factory": ("channel-attention", """
import cbam
def ChannelAttention(channels, reduction=16):
    return cbam.ChannelAttention(channels, reduction)
"""),
    "a_deepcopy": ("channel-attention", """
import copy
import cbam
def ChannelAttention(channels, reduction=16):
    return copy.deepcopy(cbam.ChannelAttention(channels, reduction))
"""),
    "dunder_new": ("channel-attention", """
import cbam
class ChannelAttention(nn.Module):
    def __new__(cls, channels, reduction=16):
        return cbam.ChannelAttention(channels, reduction)
"""),
    "a_class_swap": ("channel-attention", """
import cbam
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        library = cbam.ChannelAttention(channels, reduction)
        self.__dict__.update(library.__dict__)
        self.__class__ = cbam.ChannelAttention
"""),
    "copied_code": ("channel-attention", """
import types
import cbam
from cbam import attention as library
class ChannelAttention(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.channels = channels
        self.pool_types = ("avg", "max")
        self.mlp = shared_mlp(channels, reduction)
        self.gate = nn.Sigmoid()
for name in ("attention", "forward"):
    code = getattr(cbam.ChannelAttention, name).__code__
    setattr(ChannelAttention, name, types.FunctionType(code, vars(library), name))
"""),
    "runpy_of_the_library": ("channel-attention", """
import pathlib
import runpy
import cbam
found = runpy.run_path(str(pathlib.Path(cbam.__file__).parent / "attention.py"))
ChannelAttention = found["ChannelAttention"]
"""),
}
# (attack, the exercise that must not pass, what its hint must say; None: any failure)
EXPECTED = {
    "a_factory": "write it yourself",
    "a_deepcopy": "write it yourself",
    "dunder_new": "write it yourself",
    "a_class_swap": "write it yourself",
    "copied_code": "write it yourself",
    "runpy_of_the_library": "write it yourself",
}


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _sources(notebook: dict) -> dict[str, str]:
    return {c["metadata"]["exercise"]: "".join(c["source"]) for c in notebook["cells"]
            if "exercise" in c.get("metadata", {})}


def _notebook(sources: dict[str, str]) -> dict:
    learner = copy.deepcopy(_load(LEARNER))
    for cell in learner["cells"]:
        name = cell.get("metadata", {}).get("exercise")
        if name in sources:
            cell["source"] = sources[name]
    return learner


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def _processes_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in command:
                found.append(command)
    return found


def _scratch_folders(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("cbam-grade-*")}


def _grader_environment(temporary: Path) -> dict[str, str]:
    """The grader's environment with a temporary folder of its own: what it leaves there is its
    own, whatever else runs on the machine."""
    temporary.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(temporary)}


class _Listener:
    """A TCP server on the loopback that notes every connection it gets."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory):
    """The whole class, graded in one run of the command; what it left behind, measured."""
    if not (REFERENCE.exists() and LEARNER.exists()):
        pytest.skip("lesson 01 is not built (solutions/ and notebooks/); run `cbam-course build`")
    root = tmp_path_factory.mktemp("hostile")
    class_dir, gradebook = root / "class", root / "grades.csv"
    right = _sources(_load(REFERENCE))
    listener = _Listener()
    try:
        fill = {"class_dir": class_dir, "gradebook": gradebook, "port": listener.port}
        for name, (exercise, source) in ATTACKS.items():
            notebook = _notebook({**right, exercise: source.format(**fill)})
            path = class_dir / name / "01_channel_attention.ipynb"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(notebook), encoding="utf-8")
        for name, sources in (("zz_honest", right), ("zz_blank", {})):
            path = class_dir / name / "01_channel_attention.ipynb"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(_notebook(sources)), encoding="utf-8")
        watched = {"package": (PACKAGE, _digest(PACKAGE)),
                   "solutions": (REFERENCE.parent, _digest(REFERENCE.parent)),
                   "class": (class_dir, _digest(class_dir))}
        temporary = root / "tmp"
        run = subprocess.run([*GRADE, str(class_dir), "--jobs", "2", "--timeout", "90",
                              "--gradebook", str(gradebook), "--json"],
                             capture_output=True, text=True, timeout=1500, check=False,
                             env=_grader_environment(temporary))
        book = gradebook.read_bytes() if gradebook.exists() else b""
        time.sleep(3)  # what a process left behind would do now, after the grader exited
    finally:
        listener.close()
    return {
        "run": run,
        "reports": {r["submission"].split("/")[0]: r for r in json.loads(run.stdout or "[]")},
        "changed": {what: sorted(set(_digest(folder).items()) ^ set(before.items()))
                    for what, (folder, before) in watched.items()},
        "gradebook": (book, gradebook.read_bytes() if gradebook.exists() else b""),
        "left running": _processes_with("sleep 317"),
        "scratch left": _scratch_folders(temporary),
        "connections": listener.connections,
    }


def test_the_attacks_get_past_the_pattern_scan():
    """Else the scan would stop them, and the sandbox and the probes would go untested."""
    fill = {"class_dir": "/x", "gradebook": "/y", "port": 1}
    caught = {name: reasons for name, (_, source) in ATTACKS.items()
              if (reasons := suspicious(source.format(**fill), set()))}
    assert caught == {}


def test_the_class_run_finishes_with_a_report_for_everyone(hostile_class):
    run = hostile_class["run"]
    assert run.returncode == 1, run.stderr[-2000:]
    assert set(hostile_class["reports"]) == {*ATTACKS, "zz_honest", "zz_blank"}
    assert all(r["error"] is None for r in hostile_class["reports"].values()), [
        (n, r["error"]) for n, r in hostile_class["reports"].items() if r["error"]]


def test_the_honest_and_the_blank_notebooks_keep_their_scores(hostile_class):
    reports = hostile_class["reports"]
    assert reports["zz_honest"]["score"] == 3, reports["zz_honest"]
    assert reports["zz_blank"]["score"] == 0
    assert {e["status"] for e in reports["zz_blank"]["exercises"]} == {"not implemented"}
    assert "bubblewrap" in reports["zz_honest"]["sandbox"]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_no_attack_passes_the_exercise_it_attacks(hostile_class, attack):
    exercise = ATTACKS[attack][0]
    result = {e["name"]: e for e in hostile_class["reports"][attack]["exercises"]}[exercise]
    assert result["status"] != "passed", result
    if attack in EXPECTED:
        assert EXPECTED[attack] in result["hint"], result


def test_nothing_outside_a_submission_changed(hostile_class):
    assert hostile_class["changed"] == {"package": [], "solutions": [], "class": []}


def test_a_flood_of_printing_is_cut_in_the_report(hostile_class):
    report = hostile_class["reports"]["floods_the_report"]
    assert len(json.dumps(report)) < 100_000
    result = {e["name"]: e for e in report["exercises"]}["channel-attention"]
    assert not result["passed"] and len(result["hint"]) < 1000


def test_the_gradebook_is_the_graders_alone(hostile_class):
    written, after = hostile_class["gradebook"]
    assert written and written == after
    assert b"channel-descriptors" in written


def test_no_process_outlives_its_grading(hostile_class):
    assert hostile_class["left running"] == []
    assert hostile_class["scratch left"] == set()


def test_no_submission_reached_the_network(hostile_class):
    assert hostile_class["connections"] == 0


def test_memory_past_the_cap_stops_the_submission_only(tmp_path):
    right = _sources(_load(REFERENCE))
    hungry = "block = bytearray(3 * 2**30)\n" + right["channel-descriptors"]
    for name, sources in (("hungry", {**right, "channel-descriptors": hungry}),
                          ("honest", right)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "01_channel_attention.ipynb").write_text(
            json.dumps(_notebook(sources)), encoding="utf-8")
    run = subprocess.run([*GRADE, str(tmp_path), "--memory", "2", "--timeout", "90", "--json"],
                         capture_output=True, text=True, timeout=900, check=False)
    reports = {r["submission"].split("/")[0]: r for r in json.loads(run.stdout)}
    hungry_result = {e["name"]: e for e in reports["hungry"]["exercises"]}
    assert not hungry_result["channel-descriptors"]["passed"]
    # Stopped by the cgroup (the kernel is killed) or, without one, by the address-space cap.
    assert (any("memory cap of 2 GiB" in note for note in reports["hungry"]["notes"])
            or "MemoryError" in hungry_result["channel-descriptors"]["hint"])
    assert reports["honest"]["score"] == 3
    assert "memory 2 GiB" in reports["honest"]["sandbox"]


def test_a_grader_told_to_stop_leaves_nothing_behind(tmp_path):
    right = _sources(_load(REFERENCE))
    stuck = ("import os\ngetattr(os, 'sys' + 'tem')('setsid sleep 318 >/dev/null 2>&1 &')\n"
             "import time\ntime.sleep(600)\n")
    for index in range(3):
        folder = tmp_path / f"s{index}"
        folder.mkdir()
        (folder / "01_channel_attention.ipynb").write_text(
            json.dumps(_notebook({**right, "channel-descriptors": stuck})), encoding="utf-8")
    temporary = tmp_path.parent / f"{tmp_path.name}-tmp"
    grader = subprocess.Popen([*GRADE, str(tmp_path), "--jobs", "2", "--timeout", "600"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=_grader_environment(temporary))
    deadline = time.monotonic() + 120
    while not _processes_with("sleep 318") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_with("sleep 318"), "the submissions never started"
    grader.send_signal(signal.SIGTERM)
    assert grader.wait(timeout=60) == 128 + signal.SIGTERM
    time.sleep(1)
    assert _processes_with("sleep 318") == []
    assert _scratch_folders(temporary) == set()


def test_without_a_sandbox_the_grader_refuses_unless_told(tmp_path):
    notebook = tmp_path / "01_channel_attention.ipynb"
    notebook.write_text(json.dumps(_notebook(_sources(_load(REFERENCE)))), encoding="utf-8")
    no_bwrap = {**os.environ, "PATH": str(tmp_path / "empty")}
    refused = subprocess.run([*GRADE, str(notebook)], capture_output=True, text=True,
                             env=no_bwrap, timeout=120, check=False)
    assert refused.returncode == 2
    assert "no sandbox can be made here" in refused.stderr
    assert "--no-sandbox" in refused.stderr
    trusted = subprocess.run([*GRADE, str(notebook), "--no-sandbox", "--json"],
                             capture_output=True, text=True, env=no_bwrap, timeout=600,
                             check=False)
    report = json.loads(trusted.stdout)
    assert report["score"] == 3
    assert report["sandbox"] is None
    assert any("WITHOUT a sandbox" in w for w in report["warnings"])
