"""The scratch folder of one graded run: the only place its sandbox may write.

Everything in it may have been written by the submission, so the grader reads it as untrusted
input: by name directly in the folder (never through a symbolic link, never a folder in its
place), only regular files, only so many bytes. A file that is not what it should be reads as
absent; it never crashes a class's run. Removing the folder copes with whatever was left in it.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

MIB = 2**20


def make() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="cbam-grade-"))
    folder.chmod(0o755)
    return folder


def read(folder: Path, name: str, limit: int = 16 * MIB) -> bytes | None:
    """At most ``limit`` bytes of the regular file ``folder/name``; None for anything else."""
    try:
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
    except OSError:
        return None
    finally:
        os.close(directory)
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return None
        chunks, left = [], limit
        while left > 0 and (chunk := os.read(handle, min(left, MIB))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(handle)


def read_text(folder: Path, name: str, limit: int = 16 * MIB) -> str | None:
    data = read(folder, name, limit)
    return None if data is None else data.decode("utf-8", "replace")


def names(folder: Path, prefix: str) -> list[str]:
    """The names in ``folder`` that start with ``prefix`` (at most a thousand)."""
    try:
        with os.scandir(folder) as entries:
            found = [e.name for e in entries if e.name.startswith(prefix)]
    except OSError:
        return []
    return sorted(found)[:1000]


def remove(folder: Path) -> None:
    """Delete the folder and all in it, even what the submission made unreadable."""

    def make_writable(function, path, _error) -> None:
        try:
            os.chmod(os.path.dirname(path), 0o700)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
            function(path)
        except OSError:
            pass

    if folder.exists():
        shutil.rmtree(folder, onerror=make_writable)
