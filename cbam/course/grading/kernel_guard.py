"""Inside the kernel that runs a graded notebook: noticing code that changes what checks rely on.

The grader runs a submission's exercise cells and the reference's check cells in one kernel, so
an exercise could replace ``print``, a check function or ``torch.allclose`` and make a wrong
solution print the reference's ✓ lines. Before the first cell, the grader's prologue takes an
``ExecutionGuard`` snapshot of those objects; after every check cell, ``report()`` prints one
line per object that changed (nbval then sees output the reference does not have) and puts the
original back, so the later exercises are checked by the real checks again.

Code running in the same process can, with enough effort, defeat any such watch (docs/grading.md
says how far this goes); it is one layer, with the grader's scan of the exercise sources.
"""

from __future__ import annotations

import builtins
import importlib
import pkgutil
import random
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_MISSING = object()
# The functions and classes the checks compute their verdicts with.
_TORCH_NAMESPACES = ("torch", "torch.nn.functional", "torch.testing")
_TORCH_CLASSES = ("Tensor", "nn.Module")
_SYS_HOOKS = ("stdout", "stderr", "displayhook", "excepthook", "breakpointhook")
_SHELL_METHODS = ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "transform_cell")
# IPython's lists of hooks run around every cell, besides its events' callbacks.
_HOOK_LISTS = ("input_transformers_cleanup", "input_transformers_post", "ast_transformers")


@dataclass
class _Slot:
    what: str
    read: Callable[[], object]
    write: Callable[[object], None]
    value: object
    # (now, then) -> True for a change that is no tampering
    allowed: Callable[[object, object], bool] = lambda now, then: False


def _in_dict(what: str, namespace: dict, key: str) -> _Slot:
    def write(value: object) -> None:
        if value is _MISSING:
            namespace.pop(key, None)
        else:
            namespace[key] = value

    return _Slot(what, lambda: namespace.get(key, _MISSING), write, namespace.get(key, _MISSING))


def _attribute(what: str, holder: object, name: str) -> _Slot:
    def read() -> object:
        try:
            return vars(holder).get(name, _MISSING)
        except TypeError:  # an object without a __dict__ has nothing to override
            return _MISSING

    def write(value: object) -> None:
        if value is _MISSING:
            if name in vars(holder):
                delattr(holder, name)
        else:
            setattr(holder, name, value)

    return _Slot(what, read, write, read())


def _import_checks() -> None:
    """Import every check module now, before any exercise code runs, without using up random
    numbers (the lesson's later cells must see the same generator state as the reference's)."""
    import torch

    python_state, torch_state = random.getstate(), torch.random.get_rng_state()
    numpy = sys.modules.get("numpy")
    numpy_state = numpy.random.get_state() if numpy is not None else None
    try:
        import cbam.checks

        for module in pkgutil.iter_modules(cbam.checks.__path__, "cbam.checks."):
            try:
                importlib.import_module(module.name)
            except Exception:  # a broken check module shows in its own check cell
                pass
    finally:
        random.setstate(python_state)
        torch.random.set_rng_state(torch_state)
        if numpy_state is not None:
            numpy.random.set_state(numpy_state)


def _cbam_slots() -> list[_Slot]:
    slots = []
    for name, module in sorted(sys.modules.items()):
        if not (name == "cbam" or name.startswith("cbam.")) or module is None:
            continue
        slots.append(_in_dict(f"sys.modules[{name!r}]", sys.modules, name))
        namespace = vars(module)
        for key, value in list(namespace.items()):
            slots.append(_in_dict(f"{name}.{key}", namespace, key))
            if getattr(value, "__module__", None) != name:
                continue
            if isinstance(value, types.FunctionType):
                for part in ("__code__", "__defaults__", "__kwdefaults__"):
                    slots.append(_Slot(f"{name}.{key}.{part}",
                                       lambda v=value, p=part: getattr(v, p),
                                       lambda new, v=value, p=part: setattr(v, p, new),
                                       getattr(value, part)))
            elif isinstance(value, type):
                for attr in list(vars(value)):
                    slots.append(_attribute(f"{name}.{key}.{attr}", value, attr))
    return slots


def _rewrapped_by_torch(now: object, then: object) -> bool:
    """True when ``now`` is torch's own wrapper around ``then``: torch wraps some of its
    functions when a part of it is first imported (torch._dynamo wraps torch.manual_seed)."""
    import torch

    home = Path(torch.__file__).resolve().parent
    while now is not then:
        code = getattr(now, "__code__", None)
        if code is None or not Path(code.co_filename).resolve().is_relative_to(home):
            return False
        now = getattr(now, "__wrapped__", None)
        if now is None:
            return False
    return True


def _torch_slots() -> list[_Slot]:
    import torch

    slots = []
    for name in _TORCH_NAMESPACES:
        namespace = vars(importlib.import_module(name))
        for key, value in list(namespace.items()):
            if callable(value) and not isinstance(value, types.ModuleType):
                slots.append(_in_dict(f"{name}.{key}", namespace, key))
    for dotted in _TORCH_CLASSES:
        cls = torch
        for part in dotted.split("."):
            cls = getattr(cls, part)
        for attr in list(vars(cls)):
            slots.append(_attribute(f"torch.{dotted}.{attr}", cls, attr))
    for slot in slots:
        slot.allowed = _rewrapped_by_torch
    return slots


def _process_slots() -> list[_Slot]:
    slots = [_in_dict(f"builtins.{key}", vars(builtins), key) for key in list(vars(builtins))]
    slots += [_attribute(f"sys.{name}", sys, name) for name in _SYS_HOOKS]
    slots.append(_Slot("sys.settrace", sys.gettrace, sys.settrace, sys.gettrace()))
    slots.append(_Slot("sys.setprofile", sys.getprofile, sys.setprofile, sys.getprofile()))
    stream_type = type(sys.stdout)
    for name in ("write", "flush", "writelines"):
        slots.append(_attribute(f"{stream_type.__name__}.{name}", stream_type, name))
        override = _attribute(f"sys.stdout.{name}", sys.stdout, name)
        override.allowed = _from_ipython  # IPython wraps sys.stdout.write anew for every cell
        slots.append(override)
    return slots


def _from_ipython(now: object, then: object) -> bool:
    return str(getattr(now, "__module__", "")).startswith(("IPython.", "ipykernel."))


def _shell() -> object | None:
    """The IPython shell the kernel runs, or None outside one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _shell_slots() -> list[_Slot]:
    shell = _shell()
    if shell is None:
        return []
    slots = [_attribute(f"get_ipython().{name}", shell, name) for name in _SHELL_METHODS]
    slots += [_attribute(f"{type(shell).__name__}.{name}", type(shell), name)
              for name in _SHELL_METHODS]
    return slots


def _hook_lists(shell: object) -> list[list]:
    """IPython's lists of hooks run around each cell: input and AST transformers, events."""
    lists = [getattr(shell, name, []) for name in _HOOK_LISTS]
    return lists + list(getattr(getattr(shell, "events", None), "callbacks", {}).values())


def _notebook_hooks() -> list[object]:
    """Hooks defined in the notebook itself (``__main__``) that IPython would run around cells;
    libraries (the matplotlib backend, ...) add their own, which are left alone."""
    shell = _shell()
    if shell is None:
        return []
    hooks = [hook for found in _hook_lists(shell) for hook in found]
    return [h for h in hooks if getattr(h, "__module__", None) in ("__main__", None)]


def _remove_notebook_hooks(hooks: list[object]) -> None:
    lists = _hook_lists(_shell())
    for hook in hooks:
        for found in lists:
            while any(entry is hook for entry in found):
                found.remove(hook)


def _same(now: object, then: object) -> bool:
    if now is then:
        return True
    # IPython binds get_ipython & co. afresh for every cell: equal bound methods are the same.
    if isinstance(now, types.MethodType) and isinstance(then, types.MethodType):
        return now.__func__ is then.__func__ and now.__self__ is then.__self__
    return False


class ExecutionGuard:
    """A snapshot of what the checks rely on; ``report()`` names and undoes any change."""

    def __init__(self) -> None:
        _import_checks()
        self._slots = _cbam_slots() + _torch_slots() + _process_slots() + _shell_slots()
        self._hooks_before = {id(h) for h in _notebook_hooks()}

    def changes(self) -> list[str]:
        """What differs from the snapshot, putting each original back."""
        changed = []
        for slot in self._slots:
            now = slot.read()
            if not _same(now, slot.value) and not slot.allowed(now, slot.value):
                changed.append(slot.what)
                try:
                    slot.write(slot.value)
                except Exception:  # an object that cannot be put back is still reported
                    pass
        hooks = [h for h in _notebook_hooks() if id(h) not in self._hooks_before]
        if hooks:
            changed.append("IPython's cell hooks (input transformers or events)")
            _remove_notebook_hooks(hooks)
        return changed

    def report(self) -> None:
        """Print one line per change (nothing when nothing changed), for nbval to compare."""
        for what in self.changes():
            print(f"✗ grader: {what} was changed by exercise code; it was put back")
