"""The checks that lessons' check cells call.

One module per lesson topic (``cbam.checks.channel`` for lesson 01, ...), on a few shared
ones: ``report`` (running checks, printing verdicts), ``gradients``, ``learner_mlp`` (finding a
learner's MLP by its shapes), ``own_work`` (refusing the library's own solution) and
``memory_traffic``. Every check prints one deterministic line, ``✓ exercise: what was
checked`` or ``✗ exercise: what was checked — hint``, never a raw float or a stack trace, so
nbval can compare the lines and a learner can act on them.
"""

from cbam.checks.report import CheckFailed, expect_close, expect_shape, run_checks

__all__ = ["CheckFailed", "expect_close", "expect_shape", "run_checks"]
