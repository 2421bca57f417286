"""Running checks and printing one line each."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

PASS, FAIL = "✓", "✗"


class CheckFailed(AssertionError):
    """A check's verdict: ``hint`` tells the learner what differs, in words."""

    def __init__(self, hint: str) -> None:
        super().__init__(hint)
        self.hint = hint


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else ""


def run_checks(exercise: str, checks: Sequence[tuple[str, Callable[[], object]]]) -> bool:
    """Run ``checks`` (description, function) in order and print one line per check.

    A check passes when its function returns; it fails when it raises ``CheckFailed`` (whose
    hint is printed) or any other error (its type and first line are printed). An exercise that
    is still a stub stops the run with a single "not implemented" line. Returns True when all
    checks passed.
    """
    passed = True
    for description, check in checks:
        try:
            check()
        except NotImplementedError:
            print(f"{FAIL} {exercise}: not implemented yet — write the solution in the exercise "
                  "cell (replace the `raise NotImplementedError`), run it, then this cell")
            return False
        except CheckFailed as failure:
            print(f"{FAIL} {exercise}: {description} — {failure.hint}")
            passed = False
        except Exception as error:  # a learner's bug is a verdict, not a crash of the check cell
            print(f"{FAIL} {exercise}: {description} — raised {type(error).__name__}: "
                  f"{_first_line(error)}")
            passed = False
        else:
            print(f"{PASS} {exercise}: {description}")
    return passed


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


def run_seeded_checks(
    exercise: str, checks: Sequence[tuple[str, Callable[[], object]]], seed: int = 0
) -> bool:
    """``run_checks`` with each check run under ``seeded(seed)``, warnings silenced.

    A learner's width-0 layer makes PyTorch warn; the check line already says what is wrong.
    """

    def isolated(check: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with seeded(seed), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return check()

        return run

    return run_checks(exercise, [(description, isolated(check)) for description, check in checks])


def tensors_close(actual: object, expected: torch.Tensor, *, atol: float = 1e-5,
                  rtol: float = 1e-4) -> bool:
    """Same shape and values (as float32), for comparing a learner's output with a reference."""
    return (isinstance(actual, torch.Tensor) and actual.shape == expected.shape
            and torch.allclose(actual.detach().float(), expected, atol=atol, rtol=rtol))
