"""Spotting exercise code that reaches for the checks instead of solving the exercise.

A check cell runs in the same Python process as the learner's code, so code that replaces
``print``, rewrites ``cbam.checks`` or prints the checks' ✓ lines itself could make a wrong
solution look right. No exercise of the course needs any of that, so an exercise cell that
mentions it is reported as suspicious and fails, for an instructor to read. This is a screen,
not a proof: see docs/grading.md for what it cannot catch.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable

# (pattern over the code without its comments, why it is suspicious)
_PATTERNS: list[tuple[str, str]] = [
    (r"\bcbam\s*\.\s*checks\b|\bfrom\s+cbam\s+import\s+[^\n]*\bchecks\b|['\"]cbam\.checks",
     "uses cbam.checks, the checks themselves"),
    (r"\brun_checks\b|\bCheckFailed\b|\bexpect_(close|shape)\b",
     "uses the checks' machinery (run_checks, CheckFailed, expect_*)"),
    (r"\bsys\s*\.\s*modules\b", "touches sys.modules"),
    (r"\b__builtins__\b|\bbuiltins\b", "touches the builtins"),
    (r"(?<![\w.])print\s*=(?!=)|\bdef\s+print\s*\(", "rebinds print"),
    (r"\bsys\s*\.\s*(__)?(stdout|stderr|displayhook|excepthook)(__)?\b|\bredirect_std(out|err)\b",
     "redirects or replaces the output streams"),
    (r"\bsys\s*\.\s*(settrace|setprofile|_getframe)\b|\bf_(back|globals|locals|builtins)\b",
     "inspects or traces other frames"),
    (r"\b(get_ipython|IPython|ipykernel|input_transformers\w*|ast_transformers)\b",
     "reaches into the notebook kernel (get_ipython)"),
    (r"\b__import__\b|\bimportlib\b", "imports modules dynamically"),
    (r"(?<![\w.])(exec|eval|compile)\s*\(", "runs code built from text (exec/eval/compile)"),
    (r"\b(globals|vars)\s*\(\s*\)", "rewrites the namespace (globals())"),
    (r"\b(gc|inspect|ctypes|signal|atexit|threading|multiprocessing|subprocess)\b",
     "uses a low-level module (gc, inspect, ctypes, signal, threading, subprocess, ...)"),
    (r"\bos\s*\.\s*(_exit|kill|system|fork|exec\w*)\b|\bsys\s*\.\s*exit\b",
     "exits or controls processes"),
    (r"\.ipynb\b", "reads notebook files"),
    (r"(?<![\w.])(torch|nn|F|functional|np|numpy|math)\s*\.\s*(?!backends\b)[A-Za-z_][\w.]*"
     r"\s*=(?!=)",
     "assigns into a library (e.g. torch.allclose = ...), which the checks rely on"),
    (r"\bsetattr\s*\(\s*(torch|nn|F|np|numpy|math|cbam)\b", "assigns into a library (setattr)"),
]

_GLYPHS = re.compile(r"[✓✔✗✘]|\\u271[34]|\\u2717|\\N\{[^}]*(CHECK|BALLOT)[^}]*\}|"
                     r"\bchr\s*\(|\\x|\.decode\s*\(|\.fromhex\s*\(|\bcodecs\b|\bbase64\b", re.I)
_MAGIC = re.compile(r"^\s*(!|%(?!%?(time|timeit|matplotlib)\b))", re.M)


def _without_comments(source: str) -> str:
    """The code with its comments blanked out (a comment may mention anything)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source
    lines = source.splitlines(keepends=True)
    for token in reversed(tokens):
        if token.type == tokenize.COMMENT:
            row, col = token.start
            line = lines[row - 1]
            lines[row - 1] = line[:col] + line[token.end[1]:]
    return "".join(lines)


def suspicious(source: str, check_functions: Iterable[str] = ()) -> list[str]:
    """Why ``source`` (an exercise cell) looks like it tampers with grading; empty if it does not.

    ``check_functions`` are the names the lesson's check cells call (``check_channel_attention``,
    ...): an exercise cell has no reason to mention them.
    """
    code = _without_comments(source)
    reasons = [reason for pattern, reason in _PATTERNS if re.search(pattern, code)]
    named = sorted(n for n in set(check_functions) if re.search(rf"\b{re.escape(n)}\b", code))
    if named:
        reasons.append(f"mentions the lesson's check function(s) {', '.join(named)}")
    if _GLYPHS.search(code):
        reasons.append("writes the checks' ✓/✗ marks, or builds characters from codes")
    if _MAGIC.search(code):
        reasons.append("runs IPython magics or shell commands (% or !)")
    return reasons
