"""The public verdicts: :func:`compare_answers`, :func:`answers_equivalent`, :func:`grade`."""

from __future__ import annotations

from dataclasses import dataclass

from ttc_gym.answer_extraction import (
    BOX_COMMANDS,
    check_text,
    extract_answer,
    extract_boxed,
    gsm8k_answer,
)
from ttc_gym.grading.cache import _verdict
from ttc_gym.grading.guards import _check_timeout


def compare_answers(pred: str, gold: str, *, timeout: float = 2.0) -> bool | None:
    r"""Whether answer ``pred`` is mathematically equivalent to reference answer ``gold``: True,
    False, or None — unknown: the comparison did not complete.

    Both are answer strings (not whole solutions; a ``\boxed{}`` around either is unwrapped).
    See the module docstring for the order of checks and the percent rule. None comes only from
    the worker: it ran past ``timeout`` (too slow or stalled), gave up (out of memory or recursion
    depth), or died or could not start twice in a row (after the first time the comparison is
    retried once on a fresh worker). None is never cached: the same call later compares again.
    Returns within about ``2 * timeout`` seconds plus worker (re)starts, from any thread. Never
    raises on ``str`` input.
    """
    check_text("pred", pred)
    check_text("gold", gold)
    return _verdict(pred, gold, _check_timeout(timeout))


def answers_equivalent(pred: str, gold: str, *, timeout: float = 2.0) -> bool:
    r"""Whether answer ``pred`` is mathematically equivalent to reference answer ``gold``:
    :func:`compare_answers` as a bool, an unknown (a comparison that did not complete) counting
    as not equivalent — but not cached, so a later call compares again. Callers that must know
    about unknowns (to count them) use :func:`compare_answers`."""
    return compare_answers(pred, gold, timeout=timeout) is True


@dataclass(frozen=True)
class GradeResult:
    """The outcome of grading one model output.

    Attributes:
        answer: the extracted final answer, or None when the output contained none.
        correct: whether it is equivalent to the gold answer (False when ``answer`` is None, and
            when the comparison did not complete).
        complete: False when the comparison did not complete (:func:`compare_answers` said None):
            ``correct`` is then False but is no verdict.
    """

    answer: str | None
    correct: bool
    complete: bool = True

    @property
    def reward(self) -> float:
        """The 0/1 outcome reward: 1.0 if correct, else 0.0."""
        return 1.0 if self.correct else 0.0


def _gold_answer(gold: str) -> str:
    if "####" in gold:
        found = gsm8k_answer(gold)
        if found is not None:
            return found
    if any(cmd in gold for cmd in BOX_COMMANDS):
        found = extract_boxed(gold)
        if found is not None:
            return found
    return gold


def grade(
    text: str, gold: str, *, last_number_fallback: bool = True, timeout: float = 2.0
) -> GradeResult:
    r"""Grade a model output ``text`` against the reference ``gold``.

    The answer is taken from ``text`` by :func:`~ttc_gym.answer_extraction.extract_answer` (boxed,
    then "the answer is …", then — if ``last_number_fallback`` — the last number). ``gold`` may be
    a bare answer, a solution with a ``\boxed{}`` (its last box is used) or a GSM8K solution (the
    text after ``####``). Equivalence is :func:`compare_answers` with ``timeout``; an unknown gives
    ``correct=False, complete=False``.
    """
    check_text("text", text)
    check_text("gold", gold)
    timeout = _check_timeout(timeout)
    answer = extract_answer(text, last_number_fallback=last_number_fallback)
    if answer is None:
        return GradeResult(answer=None, correct=False)
    verdict = _verdict(answer, _gold_answer(gold), timeout)
    return GradeResult(answer=answer, correct=verdict is True, complete=verdict is not None)
