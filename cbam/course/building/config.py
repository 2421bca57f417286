"""Where the course lives: the one place that names its repository.

The Colab badges, the Colab install line and anything else that points at the published course
are built from these two values, so moving the repository means editing this file and running
``cbam-course build``.
"""

from __future__ import annotations

REPOSITORY = "https://github.com/cbam-course/cbam-course"
BRANCH = "main"


def github_path() -> str:
    """``owner/name`` of the repository, as Colab's GitHub links spell it."""
    prefix = "https://github.com/"
    if not REPOSITORY.startswith(prefix):
        raise ValueError(f"REPOSITORY must start with {prefix!r}, got {REPOSITORY!r}")
    return REPOSITORY[len(prefix) :].strip("/")


def colab_url(path_in_repo: str) -> str:
    """The address that opens ``path_in_repo`` (a notebook) from the repository in Colab."""
    return f"https://colab.research.google.com/github/{github_path()}/blob/{BRANCH}/{path_in_repo}"


def pip_requirement() -> str:
    """What ``pip install`` needs to get the package from the repository's branch."""
    return f"git+{REPOSITORY}@{BRANCH}"
