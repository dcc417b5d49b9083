"""Up-front checks: the timeout argument, and inputs rejected before the slow verifier because they
would make sympy hang (huge power towers, giant factorials, deep nesting) or are not math at all."""

from __future__ import annotations

import math
import re
from typing import Any

from ttc_gym.grading.limits import MAX_NESTING_DEPTH, MAX_POWER_DIGITS
from ttc_gym.grading.normalize import _WS_RE


#: The longest grader timeout accepted (seconds): beyond, waits overflow the platform's limits.
MAX_TIMEOUT = 86_400.0


def _check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"timeout must be a number of seconds, got {type(value).__name__}: {value!r:.80}."
        )
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"timeout must be a positive finite number of seconds, got {value}.")
    if value > MAX_TIMEOUT:
        raise ValueError(f"timeout must be at most {MAX_TIMEOUT:g} seconds (a day), got {value:g}.")
    return value

# A chain of numeric powers after whitespace removal: 9^{9^{9}}, 10**10**10, 2^(3^4), 10^{-10^{10}}
# (a negative exponent is as costly as a positive one, so its magnitude is what counts). The separators
# (^ or **) are mandatory in each repetition, so this cannot backtrack catastrophically.
_TOWER_RE = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?:(?:\^|\*\*)[{(]*-?\d+(?:\.\d+)?)+")
_TOWER_NUM_RE = re.compile(r"\d+(?:\.\d+)?")
_FACTORIAL_RE = re.compile(r"(?<!\d)(\d+)\s*!")


def _tower_digits_exceed(numbers: list[float], limit: float) -> bool:
    """Whether ``n0 ^ (n1 ^ (... ^ nk))`` has more than ``limit`` decimal digits."""
    exponent = numbers[-1]
    for base in reversed(numbers[:-1]):
        if base <= 1.0:
            exponent = 1.0
            continue
        digits = exponent * math.log10(base)
        if digits > limit:
            return True
        exponent = 10.0**digits if digits < 300 else math.inf
    return False


_PROSE_TEXT_CMD_RE = re.compile(r"\\(?:text|mathrm|textbf|mbox|operatorname)\s*\{[^{}]*\}")
_PROSE_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{4,}")
_MATH_UNICODE = set("πθ√×÷−≤≥≠∞±·°∪∩∈")


def _not_math(ans: str) -> bool:
    """Prose or gibberish rather than a mathematical answer: non-math Unicode, or more than two
    plain words (LaTeX commands and \\text{...} contents excluded). Such text is not sent to the
    slow verifier, which can spend its whole timeout on it."""
    if any(ord(c) > 127 and c not in _MATH_UNICODE for c in ans):
        return True
    return len(_PROSE_WORD_RE.findall(_PROSE_TEXT_CMD_RE.sub(" ", ans))) > 2


def _nesting_exceeds(ans: str, limit: int) -> bool:
    """Whether brackets of any kind are open more than ``limit`` deep somewhere in ``ans``."""
    depth = 0
    for ch in ans:
        if ch in "([{":
            depth += 1
            if depth > limit:
                return True
        elif ch in ")]}":
            depth = max(depth - 1, 0)
    return False


def _too_hard(ans: str) -> bool:
    """Inputs that are not answers but denial-of-service: huge power towers, giant factorials,
    brackets nested deeper than :data:`MAX_NESTING_DEPTH`."""
    if _nesting_exceeds(ans, MAX_NESTING_DEPTH):
        return True
    compact = _WS_RE.sub("", ans)
    for m in _TOWER_RE.finditer(compact):
        nums = [float(x) for x in _TOWER_NUM_RE.findall(m.group(0))]
        if _tower_digits_exceed(nums, MAX_POWER_DIGITS):
            return True
    for m in _FACTORIAL_RE.finditer(ans):
        if len(m.group(1)) > 5 or int(m.group(1)) > 10_000:
            return True
    return False
