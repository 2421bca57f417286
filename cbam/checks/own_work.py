"""Refusing cbam's own solution: an exercise is done by the learner's code, not by the library's.

The package the lessons import holds a validated version of almost every exercise, so a learner
could hand in ``ChannelAttention = cbam.ChannelAttention``, a subclass of it, or a class whose
``forward`` calls it. A pattern over the source would miss a name built at run time, so the
refusal looks at run time instead:

* **what the object is**: the library's class or function itself, or a class with the library's
  class in its MRO;
* **which code runs**: while the checks call the learner's code, a profile hook watches for the
  code objects of the library's own implementation *of this exercise*. They may run when a check
  calls them itself (to compute the expected output), never beneath a frame of the learner's
  code, and never with a ``self`` that is not one of the library's own objects (a learner's
  class that borrowed ``forward = cbam.ChannelAttention.forward``).

What an exercise is meant to build on stays allowed, because only the exercise's own
counterpart is watched: lesson 03's block may call ``cbam.ChannelAttention``, only
``cbam.CBAM.forward`` is off limits there.
"""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import cbam

_CBAM_DIR = os.path.dirname(os.path.abspath(cbam.__file__)) + os.sep
_CHECKS_DIR = os.path.join(_CBAM_DIR, "checks") + os.sep
# Installed code (torch, the standard library) is never the learner's.
_INSTALLED = tuple(
    sorted({os.path.abspath(p) + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if (p := sysconfig.get_paths().get(key))}
           | {os.path.abspath(sys.prefix) + os.sep, os.path.abspath(sys.base_prefix) + os.sep})
)


# Every refusal's hint ends so; the class report (cbam.course.class_report) finds them by it.
WRITE_IT_YOURSELF = "write it yourself"


class Shortcut(Exception):
    """The learner's code is, or hands its work to, the library's own solution."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


@dataclass(frozen=True)
class OwnWork:
    """What exercise ``name`` (the learner's ``subject``) must not be or hand its work to.

    ``forbidden`` holds the library's classes and functions that solve this exercise; every
    function of a class counts, its ``__init__`` included where ``watch_init`` says so.
    """

    subject: str
    forbidden: tuple[object, ...]
    watch_init: bool = False
    codes: dict[types.CodeType, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        codes: dict[types.CodeType, str] = {}
        for obj in self.forbidden:
            if isinstance(obj, type):
                for name, member in vars(obj).items():
                    if name == "__init__" and not self.watch_init:
                        continue
                    code = getattr(_unwrap(member), "__code__", None)
                    if code is not None:
                        codes[code] = f"{_qualified(obj)}.{name}"
            elif (code := getattr(_unwrap(obj), "__code__", None)) is not None:
                codes[code] = _qualified(obj)
        object.__setattr__(self, "codes", codes)


def _qualified(obj: object) -> str:
    module = getattr(obj, "__module__", "") or ""
    public = "cbam" if getattr(cbam, getattr(obj, "__name__", ""), None) is obj else module
    return f"{public}.{getattr(obj, '__qualname__', getattr(obj, '__name__', repr(obj)))}"


def _unwrap(obj: object) -> object:
    """The function behind a bound method, a partial, a static or class method, a decorator."""
    for _ in range(10):
        if isinstance(obj, (staticmethod, classmethod, types.MethodType)):
            obj = obj.__func__
        elif isinstance(obj, functools.partial):
            obj = obj.func
        elif hasattr(obj, "__wrapped__"):
            obj = obj.__wrapped__
        else:
            break
    return obj


def expect_not_the_library(candidate: object, own: OwnWork) -> None:
    """Shortcut when ``candidate`` *is* one of the forbidden objects or a subclass of one."""
    target = _unwrap(candidate)
    for obj in own.forbidden:
        if target is obj:
            raise Shortcut(f"{own.subject} is cbam's own {_kind(obj)} {_qualified(obj)}: "
                           "write it yourself")
        if isinstance(target, type) and isinstance(obj, type) and issubclass(target, obj):
            raise Shortcut(f"{own.subject} is a subclass of {_qualified(obj)}, so cbam's code "
                           "does the work: write it yourself")
    code = getattr(target, "__code__", None)
    if code is not None and code in own.codes:
        raise Shortcut(f"{own.subject} is cbam's own {own.codes[code]}: write it yourself")


def _kind(obj: object) -> str:
    return "class" if isinstance(obj, type) else "function"


def _is_learners(code: types.CodeType) -> bool:
    path = os.path.abspath(code.co_filename) if not code.co_filename.startswith("<") else ""
    if not path:
        # "<string>" and friends: compiled at run time, by the learner's exec or by a library
        # (dataclasses, namedtuple); only a frame of a notebook cell is surely the learner's.
        return False
    return not (path.startswith(_CBAM_DIR) or path.startswith(_INSTALLED))


def _library_classes() -> set[type]:
    found = set()
    for name, module in list(sys.modules.items()):
        if name == "cbam" or name.startswith("cbam."):
            found |= {v for v in vars(module).values()
                      if isinstance(v, type) and (v.__module__ or "").startswith("cbam")}
    return found


def _learner_caller(frame: types.FrameType | None) -> types.FrameType | None:
    """The innermost frame of the learner's code between ``frame`` and the check calling it."""
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(_CHECKS_DIR):
            return None
        if _is_learners(frame.f_code):
            return frame
        frame = frame.f_back
    return None


@contextmanager
def watching(own: OwnWork) -> Iterator[None]:
    """Run the body with a profile hook that notes the library's solution running for the
    learner; raises Shortcut at the end when it did (even if the learner's code caught it)."""
    if not own.codes:
        yield
        return
    codes, library = own.codes, _library_classes()
    found: list[str] = []

    def profile(frame: types.FrameType, event: str, _arg: object) -> None:
        if event != "call" or frame.f_code not in codes or found:
            return
        caller = _learner_caller(frame.f_back)
        owner = frame.f_locals.get("self", None) if frame.f_code.co_varnames[:1] == ("self",) \
            else None
        if caller is not None:
            method = caller.f_code.co_name
            in_a_method = caller.f_code.co_varnames[:1] == ("self",)
            found.append(f"{own.subject} calls {codes[frame.f_code]}: write it yourself"
                         if not in_a_method else
                         f"{own.subject} delegates its {method} to {codes[frame.f_code]}: "
                         "write it yourself")
        elif owner is not None and type(owner) not in library:
            found.append(f"{own.subject} borrows cbam's own {codes[frame.f_code]} as its "
                         f"{frame.f_code.co_name}: write it yourself")

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield
    except Exception as error:
        if found:  # the library's code ran first: that is the verdict, not what came of it
            raise Shortcut(found[0]) from error
        raise
    finally:
        sys.setprofile(previous)
    if found:
        raise Shortcut(found[0])


def guarded(check: Callable[[], object], own: OwnWork | None) -> Callable[[], object]:
    """``check`` run under ``watching(own)``; ``check`` itself when there is nothing to watch."""
    if own is None:
        return check

    def run() -> object:
        with watching(own):
            return check()

    return run
