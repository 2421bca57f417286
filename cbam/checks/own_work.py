"""Refusing cbam's own solution: an exercise is done by the learner's code, not by the library's.

The package the lessons import holds a validated version of almost every exercise, so a learner
could hand in ``ChannelAttention = cbam.ChannelAttention``, a subclass of it, or a class whose
``forward`` calls it. A pattern over the source would miss a name built at run time, so the
refusal looks at run time instead:

* **what the object is**: the library's class or function itself, or a class with the library's
  class in its MRO;
* **which code runs**: while the checks call the learner's code, a trace hook watches for the
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

from torch import nn

import cbam

_CBAM_DIR = os.path.dirname(os.path.abspath(cbam.__file__)) + os.sep
_CHECKS_DIR = os.path.join(_CBAM_DIR, "checks") + os.sep
# Installed code (torch, the standard library) is never the learner's.
_INSTALLED = tuple(
    sorted({os.path.abspath(p) + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if (p := sysconfig.get_paths().get(key))}
           | {os.path.abspath(sys.prefix) + os.sep, os.path.abspath(sys.base_prefix) + os.sep})
)


# Every refusal's hint ends so; the class report (cbam.course.grading.class_report) finds
# them by it.
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
    functions: list[types.FunctionType] = field(init=False, compare=False, repr=False)
    # The same code compiled again (runpy or exec of cbam's own file) is a new code object:
    # it is known by what it is made of, and where in the file it starts.
    fingerprints: dict[tuple, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        codes: dict[types.CodeType, str] = {}
        functions = []
        for obj in self.forbidden:
            members = ([(f"{_qualified(obj)}.{name}", member) for name, member in vars(obj).items()
                        if name != "__init__" or self.watch_init]
                       if isinstance(obj, type) else [(_qualified(obj), obj)])
            for qualified, member in members:
                function = _unwrap(member)
                if isinstance(function, types.FunctionType):
                    codes[function.__code__] = qualified
                    functions.append(function)
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "functions", functions)
        object.__setattr__(self, "fingerprints",
                           {_fingerprint(code): name for code, name in codes.items()})

    def copy_of(self, code: types.CodeType) -> str | None:
        """The library function ``code`` is, or is a compiled-again copy of; None if neither.

        A copy is the same code at the same line of the same file: ``runpy`` keeps cbam's file
        name, ``exec`` of its text names it ``<string>``. A method written in a notebook cell or
        a test file that happens to read like the library's (``return x * self.attention(x)``)
        is not a copy, whatever its line."""
        if code in self.codes:
            return self.codes[code]
        found = self.fingerprints.get(_fingerprint(code))
        if found is None:
            return None
        filename = code.co_filename
        return found if filename.startswith("<") or filename.startswith(_CBAM_DIR) else None


def _fingerprint(code: types.CodeType) -> tuple:
    return (code.co_name, code.co_firstlineno, code.co_code, code.co_names, code.co_varnames,
            tuple(c for c in code.co_consts if isinstance(c, (str, int, float, tuple))))


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
    if isinstance(code, types.CodeType) and (name := own.copy_of(code)):
        raise Shortcut(f"{own.subject} runs cbam's own {name} (its code is the library's, "
                       "taken or compiled again): write it yourself")
    if isinstance(target, type):
        for klass in target.__mro__:
            if klass.__module__.startswith(("torch", "builtins")):
                continue
            for attr, member in vars(klass).items():
                function = _unwrap(member)
                code = getattr(function, "__code__", None)
                if not (isinstance(code, types.CodeType) and (name := own.copy_of(code))):
                    continue
                if any(function is f for f in own.functions):
                    raise Shortcut(f"{own.subject} borrows cbam's own {name} as its {attr}: "
                                   f"{WRITE_IT_YOURSELF}")
                raise Shortcut(f"{own.subject}.{attr} runs cbam's own {name} (its code is the "
                               f"library's, taken or compiled again): {WRITE_IT_YOURSELF}")


def expect_not_built_by_the_library(product: object, own: OwnWork, what: str) -> None:
    """Shortcut when what the learner's code returned is the library's solution: an instance of
    the forbidden class (built by it, copied, made with ``__new__`` or given its ``__class__``),
    or of a class that runs the library's code."""
    modules = product.modules() if isinstance(product, nn.Module) else [product]
    for module in modules:
        kind = type(module)
        for obj in own.forbidden:
            if isinstance(obj, type) and issubclass(kind, obj):
                raise Shortcut(f"{what} is an instance of cbam's own {_qualified(obj)} (made by "
                               f"it, copied or given its class): {WRITE_IT_YOURSELF}")
        if kind.__module__.startswith(("torch", "builtins")):
            continue
        try:
            expect_not_the_library(kind, own)
        except Shortcut as shortcut:
            raise Shortcut(f"{what}: {shortcut.hint}") from None


def _kind(obj: object) -> str:
    return "class" if isinstance(obj, type) else "function"


def _is_learners(code: types.CodeType) -> bool:
    return _learners_file(code.co_filename)


@functools.cache
def _learners_file(filename: str) -> bool:
    if filename.startswith("<"):
        # "<string>" and friends: compiled at run time, by the learner's exec or by a library
        # (dataclasses, namedtuple); only a frame of a notebook cell is surely the learner's.
        return False
    path = os.path.abspath(filename)
    return not (path.startswith(_CBAM_DIR) or path.startswith(_INSTALLED))


def _library_classes() -> set[type]:
    """cbam's own classes; looked up again only when a cbam module was imported since."""
    loaded = [name for name in list(sys.modules) if name == "cbam" or name.startswith("cbam.")]
    if _classes_seen[0] == len(loaded):
        return _classes_seen[1]
    found = set()
    for name, module in list(sys.modules.items()):
        if name == "cbam" or name.startswith("cbam."):
            found |= {v for v in vars(module).values()
                      if isinstance(v, type) and (v.__module__ or "").startswith("cbam")}
    _classes_seen[:] = [len(loaded), found]
    return found


_classes_seen: list = [-1, set()]


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


# The watch in force: (what, the calls found, the library's classes); one at a time.
_watch: tuple[OwnWork, list[str], set[type]] | None = None


def _called(original: types.FunctionType, args: tuple, kwargs: dict) -> object:
    """A watched function was called: note it if the learner's code called it, then run it."""
    if _watch is not None and not _watch[1]:
        own, found, library = _watch
        code = original.__code__
        caller = _learner_caller(sys._getframe(2))  # past the stand-in, to whoever called it
        owner = args[0] if args and code.co_varnames[:1] == ("self",) else None
        if caller is not None:
            method = caller.f_code.co_name
            in_a_method = caller.f_code.co_varnames[:1] == ("self",)
            found.append(f"{own.subject} calls {own.codes[code]}: {WRITE_IT_YOURSELF}"
                         if not in_a_method else
                         f"{own.subject} delegates its {method} to {own.codes[code]}: "
                         f"{WRITE_IT_YOURSELF}")
        elif owner is not None and type(owner) not in library:
            found.append(f"{own.subject} borrows cbam's own {own.codes[code]} as its "
                         f"{code.co_name}: {WRITE_IT_YOURSELF}")
    return original(*args, **kwargs)


@functools.cache
def _stand_in_code(original: types.CodeType) -> types.CodeType:
    """A code object that calls ``_called``, with the free variables of ``function``'s code, so
    that it can take that code's place (``super()`` makes ``__class__`` one of them)."""
    free = original.co_freevars
    names = ", ".join(free)
    source = ("def outer():\n"
              + (f"    {names} = {', '.join('None' for _ in free)}{',' if len(free) == 1 else ''}\n"
                 if free else "")
              + "    def stand_in(*args, __cbam_original__=None, **kwargs):\n"
              + (f"        ({names}{',' if len(free) == 1 else ''})\n" if free else "")
              + "        return __import__('cbam.checks.own_work', fromlist=['_called'])._called("
                "__cbam_original__, args, kwargs)\n"
              + "    return stand_in\n")
    namespace: dict = {}
    exec(compile(source, "<cbam own-work watch>", "exec"), namespace)
    return namespace["outer"]().__code__


@contextmanager
def watching(own: OwnWork) -> Iterator[None]:
    """Run the body with the library's solution of the exercise watched; raises Shortcut at the
    end when the learner's code ran it (even if that code caught the error).

    Each watched function's code is swapped, for the body only, for a stand-in that notes who
    called it and then runs a copy of the original: every reference to the function, however
    the learner got hold of it, runs the stand-in, and nothing else is slowed down.
    """
    global _watch
    if not own.functions or _watch is not None:
        yield
        return
    found: list[str] = []
    swapped = []
    for function in own.functions:
        original = types.FunctionType(function.__code__, function.__globals__, function.__name__,
                                      function.__defaults__, function.__closure__)
        original.__kwdefaults__ = function.__kwdefaults__
        # The stand-in gets the copy as the default of a keyword-only argument: its globals
        # are the library module's, where nothing of the watch may be added.
        code = _stand_in_code(function.__code__)
        swapped.append((function, function.__code__, function.__defaults__,
                        function.__kwdefaults__))
        function.__code__ = code
        function.__defaults__, function.__kwdefaults__ = None, {"__cbam_original__": original}
    _watch = (own, found, _library_classes())
    try:
        yield
    except Exception as error:
        if found:  # the library's code ran first: that is the verdict, not what came of it
            raise Shortcut(found[0]) from error
        raise
    finally:
        _watch = None
        for function, code, defaults, kwdefaults in swapped:
            function.__code__, function.__defaults__ = code, defaults
            function.__kwdefaults__ = kwdefaults
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
