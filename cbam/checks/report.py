"""Running checks and printing one line each."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from cbam.checks.own_work import OwnWork, Shortcut, expect_not_the_library, guarded

PASS, FAIL = "✓", "✗"


class Verdict:
    """Whether every check passed: true or false like a bool, and shown as nothing.

    A check cell's last line is the check's call; a bool there would add an ``Out[]`` value under
    the ✓ lines. IPython calls ``_ipython_display_`` instead of showing the value, and this one
    shows nothing, so a check cell shows its lines and only them.
    """

    __slots__ = ("passed",)

    def __init__(self, passed: bool) -> None:
        self.passed = bool(passed)

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other: object) -> bool:
        return bool(other) == self.passed if isinstance(other, (bool, Verdict)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.passed)

    def __repr__(self) -> str:
        return repr(self.passed)

    def _ipython_display_(self) -> None:
        pass


class CheckFailed(AssertionError):
    """A check's verdict: ``hint`` tells the learner what differs, in words."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


def _explain_error(error: BaseException) -> str:
    """What a check prints for an error it did not expect: its type and first line, or, for
    errors whose message points away from the learner's code, what the code did."""
    if isinstance(error, RuntimeError) and "modified by an inplace operation" in str(error):
        return ("backward failed: an in-place operation (*=, mul_, +=, relu_) changed a tensor "
                "that autograd saved to compute gradients; write out = out * map instead of "
                "out *= map")
    return f"raised {type(error).__name__}: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else ""


def run_checks(
    exercise: str,
    checks: Sequence[tuple[str, Callable[[], object]]],
    *,
    own: tuple[object, OwnWork] | None = None,
) -> Verdict:
    """Run ``checks`` (description, function) in order and print one line per check.

    A check passes when its function returns; it fails when it raises ``CheckFailed`` (whose
    hint is printed) or any other error (its type and first line are printed). An exercise that
    is still a stub stops the run with a single "not implemented" line. ``own`` is (the learner's
    object, what it must not be): cbam's own solution, handed in or called, stops the run with
    one line saying what was found. Returns a Verdict, true when all checks passed.
    """
    rule = None
    if own is not None:
        candidate, rule = own
        try:
            expect_not_the_library(candidate, rule)
        except Shortcut as shortcut:
            print(f"{FAIL} {exercise}: {shortcut.hint}")
            return Verdict(False)
    passed = True
    for description, check in checks:
        try:
            guarded(check, rule)()
        except Shortcut as shortcut:
            print(f"{FAIL} {exercise}: {shortcut.hint}")
            return Verdict(False)
        except NotImplementedError:
            print(f"{FAIL} {exercise}: not implemented yet — write the solution in the exercise "
                  "cell (replace the `raise NotImplementedError`), run it, then this cell")
            return Verdict(False)
        except CheckFailed as failure:
            print(f"{FAIL} {exercise}: {description} — {failure.hint}")
            passed = False
        except Exception as error:  # a learner's bug is a verdict, not a crash of the check cell
            print(f"{FAIL} {exercise}: {description} — {_explain_error(error)}")
            passed = False
        else:
            print(f"{PASS} {exercise}: {description}")
    return Verdict(passed)


def expect_shape(actual: torch.Tensor, expected: tuple[int, ...], what: str) -> None:
    if not isinstance(actual, torch.Tensor):
        raise CheckFailed(f"{what} should be a torch.Tensor, got {type(actual).__name__}")
    if tuple(actual.shape) != tuple(expected):
        raise CheckFailed(f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected)}")


def expect_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    what: str,
    hint: str = "",
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Shape first (the commonest mistake), then values; ``hint`` says what usually causes it."""
    expect_shape(actual, tuple(expected.shape), what)
    if not torch.allclose(actual.detach().to(expected.dtype), expected, atol=atol, rtol=rtol):
        raise CheckFailed(f"{what} has the right shape but different values" +
                          (f" ({hint})" if hint else ""))


@contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Deterministic weights and inputs that leave the notebook's random stream untouched.

    Building a learner's module draws random numbers; forking the generator keeps every later
    cell of the notebook identical to the reference notebook's.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def feature_map(shape: tuple[int, ...], seed: int, requires_grad: bool = False) -> torch.Tensor:
    """A standard-normal tensor drawn from its own generator: the same for every learner."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator).requires_grad_(requires_grad)


def run_seeded_checks(
    exercise: str,
    checks: Sequence[tuple[str, Callable[[], object]]],
    seed: int = 0,
    *,
    own: tuple[object, OwnWork] | None = None,
) -> Verdict:
    """``run_checks`` with each check run under ``seeded(seed)``, warnings silenced.

    A learner's width-0 layer makes PyTorch warn; the check line already says what is wrong.
    """

    def isolated(check: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with seeded(seed), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return check()

        return run

    return run_checks(exercise, [(description, isolated(check)) for description, check in checks],
                      own=own)


def tensors_close(actual: object, expected: torch.Tensor, *, atol: float = 1e-5,
                  rtol: float = 1e-4) -> bool:
    """Same shape and values (as float32), for comparing a learner's output with a reference."""
    return (isinstance(actual, torch.Tensor) and actual.shape == expected.shape
            and torch.allclose(actual.detach().float(), expected, atol=atol, rtol=rtol))


_DIMS = ("N", "C", "H", "W")
_ROLES = {"N": " (the batch size)", "C": " (the channel count)"}


def _sizes(dims: Sequence[int], shape: Sequence[int]) -> str:
    """How a size was written, e.g. "H·W = 12" or "N = 2 (the batch size)"."""
    names = [_DIMS[d] for d in dims]
    role = _ROLES.get(names[0], "") if len(names) == 1 else ""
    return f"{'·'.join(names)} = {math.prod(shape[d] for d in dims)}{role}"


def wrong_divisors(shape: Sequence[int], dims: Sequence[int],
                   over: str) -> list[tuple[int, str]]:
    """A mean over ``dims`` of an (N, C, H, W) tensor written as a sum divided by the wrong size:
    (that size, the hint naming it and the right one), one entry per distinct wrong size.

    A size that several choices of dims give (when two dims have the same size) names them all.
    """
    right = math.prod(shape[d] for d in dims)
    by_size: dict[int, list[tuple[int, ...]]] = {}
    # Dims of size 1 change no size: leave them out of the names.
    sized = [d for d in range(len(shape)) if shape[d] > 1]
    for count in range(len(sized) + 1):
        for chosen in itertools.combinations(sized, count):
            by_size.setdefault(math.prod(shape[d] for d in chosen), []).append(chosen)
    should = f"a mean over {over} divides by {_sizes(dims, shape)}"
    found = []
    for size, choices in by_size.items():
        if size == right:
            continue
        if size == 1:
            found.append((1, f"is the sum over {over}, not divided: {should}, or use .mean"))
            continue
        named = " or ".join(_sizes(chosen, shape) for chosen in choices)
        found.append((size, f"is the sum over {over} divided by {named}; {should}"))
    return found


def divided_sum_hint(value: object, x: torch.Tensor, dims: Sequence[int],
                     over: str) -> str | None:
    """When ``value`` is ``x``'s sum over ``dims`` divided by the wrong size, the hint saying by
    which (see ``wrong_divisors``); None otherwise. ``value`` may keep the reduced dims or not."""
    if not isinstance(value, torch.Tensor):
        return None
    total = x.sum(dim=tuple(dims), keepdim=True)
    if total.numel() != value.numel():
        return None
    total = total.reshape(value.shape)
    for size, hint in wrong_divisors(tuple(x.shape), dims, over):
        if tensors_close(value, total / size):
            return hint
    return None
