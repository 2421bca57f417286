"""The sandbox each submission is graded in: bubblewrap, a cgroup, and limits.

A submission is code, run with the grader's permissions unless something stops it. Inside the
sandbox the nbval run and the kernel it starts see:

* the system (``/usr``, ``/etc``), the Python environment and the ``cbam`` package, read-only;
* one writable folder, the submission's own scratch folder, and a private ``/tmp``;
* nothing else: not the course repository, not the reference notebooks (the graded copy is
  written into the scratch folder), not the other submissions, not the grader's output files;
* no network: a network namespace of its own, whose loopback reaches nothing outside it;
* its own process namespace, so that every process it starts ends with it, also when the grader
  is killed (``--die-with-parent``); no capabilities, user ``nobody``;
* a memory cap and a cap on processes for the whole run, in a cgroup where the machine lets the
  grader make one (else ``ulimit``'s cap on each process's address space), and ``ulimit``'s
  caps on each process's CPU seconds and file size.

``available()`` says why no sandbox can be made here (no ``bwrap``, no user namespaces, not
Linux); the grader then refuses to grade unless told ``--no-sandbox``.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MEMORY_GIB = 4.0
DEFAULT_PROCESSES = 256  # pytest, the kernel, its threads' helpers, a compiler: never near this


@dataclass(frozen=True)
class Limits:
    memory_gib: float = DEFAULT_MEMORY_GIB
    processes: int = DEFAULT_PROCESSES
    cpu_seconds: int = 3600
    file_mib: int = 1024  # the largest file it may write

    def __post_init__(self) -> None:
        if not self.memory_gib > 0:
            raise ValueError(f"the memory cap must be a positive number of GiB, got "
                             f"{self.memory_gib!r}")


@functools.cache
def available() -> str | None:
    """None when a sandbox can be made here; otherwise why not, in one sentence."""
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux namespaces, and this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return ("bubblewrap (bwrap) is not installed; on Debian or Ubuntu: "
                "apt-get install bubblewrap")
    probe = subprocess.run(["bwrap", *_isolation(), "--ro-bind", "/", "/", "--", "true"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        why = probe.stderr.strip().splitlines()[-1:] or ["no message"]
        return f"bubblewrap cannot make a sandbox here (user namespaces off?): {why[0]}"
    return None


def _isolation() -> list[str]:
    return ["--unshare-all", "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL",
            "--die-with-parent", "--new-session"]


def _python_roots() -> list[Path]:
    """Where the interpreter and its packages live, bound read-only at their own paths. Not
    every ``sys.path`` entry: an editable install puts the whole repository there, solutions and
    submissions included; the package itself is bound on its own."""
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if path := sysconfig.get_paths().get(key):
            roots.add(Path(path))
    return sorted({r.resolve() for r in roots if r.exists()})


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _outside_usr(paths: list[Path]) -> list[Path]:
    """The paths not already visible through /usr, without one nested in another."""
    kept: list[Path] = []
    for path in sorted(paths):
        if path.is_relative_to("/usr") or any(path.is_relative_to(k) for k in kept):
            continue
        kept.append(path)
    return kept


@dataclass
class Cgroup:
    """A cgroup (v2, or v1's memory and pids controllers) holding every process of one run."""

    folders: list[Path] = field(default_factory=list)

    @classmethod
    def make(cls, name: str, limits: Limits) -> Cgroup | None:
        """A new cgroup under the machine's hierarchy, or None where the grader may not make one."""
        group = cls()
        try:
            group._make(name, limits)
        except OSError:
            group.remove()
            return None
        return group if group.folders else None

    def _make(self, name: str, limits: Limits) -> None:
        memory = str(int(limits.memory_gib * 2**30))
        unified = Path("/sys/fs/cgroup")
        try:
            controllers = (unified / "cgroup.controllers").read_text().split()
        except OSError:
            controllers = []
        if {"memory", "pids"} <= set(controllers):
            folder = unified / name
            folder.mkdir()
            self.folders.append(folder)
            (folder / "memory.max").write_text(memory)
            if (folder / "memory.swap.max").exists():
                (folder / "memory.swap.max").write_text("0")
            (folder / "pids.max").write_text(str(limits.processes))
            return
        memory_root, pids_root = unified / "memory", unified / "pids"
        if (memory_root / "tasks").exists() and (pids_root / "tasks").exists():
            for root in (memory_root, pids_root):
                (root / name).mkdir()
                self.folders.append(root / name)
            (memory_root / name / "memory.limit_in_bytes").write_text(memory)
            (pids_root / name / "pids.max").write_text(str(limits.processes))
            accounting = unified / "cpuacct"
            if (accounting / "tasks").exists():  # CPU time: rusage does not cross a pid namespace
                (accounting / name).mkdir()
                self.folders.append(accounting / name)

    def entry_command(self) -> str:
        """Shell that puts the shell itself (and so what it execs) into the cgroup."""
        return "; ".join(f"echo $$ > {f / 'cgroup.procs'}" for f in self.folders)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.folders:
            try:
                found |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
            except (OSError, ValueError):
                pass
        return found

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process of the run."""
        for folder in self.folders:
            try:
                if (folder / "cpuacct.usage").exists():
                    return int((folder / "cpuacct.usage").read_text()) / 1e9
                if (folder / "cpu.stat").exists():
                    for line in (folder / "cpu.stat").read_text().splitlines():
                        if line.startswith("usage_usec "):
                            return int(line.split()[1]) / 1e6
            except (OSError, ValueError):
                continue
        return None

    def memory_peak(self) -> int | None:
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            for folder in self.folders:
                try:
                    return int((folder / name).read_text())
                except (OSError, ValueError):
                    continue
        return None

    def out_of_memory(self) -> bool:
        for folder in self.folders:
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                try:
                    text = (folder / name).read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[0] == key and parts[1] != "0":
                        return True
        return False

    def kill_all(self) -> None:
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        self.kill_all()
        for folder in self.folders:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # busy for a moment after its last process ended
                    time.sleep(0.02)


@dataclass
class Sandbox:
    """How one submission's run is wrapped; ``wrap(argv)`` gives the command to start."""

    scratch: Path
    limits: Limits = field(default_factory=Limits)
    read_only: list[Path] = field(default_factory=list)  # more paths to show, read-only
    env: dict[str, str] = field(default_factory=dict)
    cgroup: Cgroup | None = None

    def wrap(self, argv: list[str]) -> list[str]:
        shown = _outside_usr([*_python_roots(), *(p.resolve() for p in self.read_only
                                                  if p.exists())])
        # The private /tmp first: what is shown may live below /tmp (a virtualenv, a checkout).
        bwrap = ["bwrap", *_isolation(), *_system_binds(), "--tmpfs", "/tmp"]
        for path in shown:
            bwrap += ["--ro-bind", str(path), str(path)]
        scratch = str(self.scratch.resolve())
        bwrap += ["--bind", scratch, scratch, "--dev", "/dev", "--proc", "/proc",
                  "--chdir", scratch, "--clearenv"]
        for key, value in {**self.env, "HOME": scratch, "TMPDIR": "/tmp"}.items():
            bwrap += ["--setenv", key, value]
        bwrap += ["--", *argv]
        limits = self.limits
        shell = [f"ulimit -t {limits.cpu_seconds}", f"ulimit -f {limits.file_mib * 1024}",
                 "ulimit -c 0"]
        if self.cgroup is not None:
            shell.insert(0, self.cgroup.entry_command())
        else:
            # Without a cgroup the cap is per process and on address space, which counts
            # memory reserved and never used (thread stacks, allocator arenas): a blunter cap.
            shell.append(f"ulimit -v {int(limits.memory_gib * 2**20)}")
            if os.geteuid() != 0:
                shell.append(f"ulimit -u {limits.processes}")  # root is exempt from this one
        return ["/bin/sh", "-c", "; ".join(shell) + '; exec "$@"', "cbam-sandbox", *bwrap]

    def describe(self) -> str:
        caps = (f"memory {self.limits.memory_gib:g} GiB and {self.limits.processes} processes "
                "in all (cgroup)" if self.cgroup is not None else
                f"address space {self.limits.memory_gib:g} GiB per process (ulimit)")
        return (f"bubblewrap: read-only system, no network, own scratch folder; {caps}; "
                f"CPU {self.limits.cpu_seconds} s per process")


def cleanup(process: subprocess.Popen, cgroup: Cgroup | None) -> None:
    """End the sandbox and everything in it; its processes are gone when this returns."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        process.kill()
    except OSError:
        pass
    process.wait()
    if cgroup is not None:
        cgroup.remove()
