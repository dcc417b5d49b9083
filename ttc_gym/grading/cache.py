"""The decision procedure behind :func:`ttc_gym.grading.compare_answers`, memoized: fast paths in
process (exact numbers, equal keys, rejected inputs), then the worker; an unknown is never cached."""

from __future__ import annotations

import functools
from fractions import Fraction

from ttc_gym.grading import client
from ttc_gym.grading.guards import _not_math, _too_hard
from ttc_gym.grading.limits import MAX_ANSWER_CHARS
from ttc_gym.grading.normalize import (
    _DIGIT_GAP_RE,
    _light_normalize,
    _strip_delimiters,
    normalize_answer,
    number_value,
)

#: are rejected before the cache, so it holds at most ~64 MB even when filled with junk.
CACHE_SIZE = 16_384


def _numbers_equal(a: tuple[Fraction, bool], b: tuple[Fraction, bool]) -> bool:
    (x, x_pct), (y, y_pct) = a, b
    if x_pct == y_pct:
        return x == y
    if x_pct:  # "p%" matches p and p/100
        return y in (x, x / 100)
    return x in (y, y / 100)


class _Incomplete(Exception):
    """Raised through the cache by a comparison that did not complete: ``lru_cache`` keeps no
    exception, so an unknown is never memoized as a verdict."""


def _verdict(pred: str, gold: str, timeout: float) -> bool | None:
    """True / False, or None when the comparison did not complete (never cached)."""
    if len(pred) > 2 * MAX_ANSWER_CHARS or len(gold) > 2 * MAX_ANSWER_CHARS:
        return False  # before the cache: absurd inputs must not fill it
    try:
        return _equivalent_cached(pred, gold, timeout)
    except _Incomplete:
        return None


@functools.lru_cache(maxsize=CACHE_SIZE)
def _equivalent_cached(pred: str, gold: str, timeout: float) -> bool:
    pred_light, gold_light = _light_normalize(pred), _light_normalize(gold)
    if not pred_light or not gold_light:
        return False
    if len(pred_light) > MAX_ANSWER_CHARS or len(gold_light) > MAX_ANSWER_CHARS:
        return False
    pred_num, gold_num = number_value(pred_light), number_value(gold_light)
    if pred_num is not None and gold_num is not None:
        return _numbers_equal(pred_num, gold_num)
    if normalize_answer(pred) == normalize_answer(gold):
        return True
    if _DIGIT_GAP_RE.search(pred_light) or _DIGIT_GAP_RE.search(gold_light):
        return False  # "2 3": whitespace never joins digits, and the verifier's parser would
    if _too_hard(pred_light) or _too_hard(gold_light) or _not_math(pred_light):
        return False
    result = client._WORKER.equal(_strip_delimiters(pred), _strip_delimiters(gold), timeout)
    if result is None:
        raise _Incomplete
    return result
