r"""The 0/1 final-answer reward ``r(x, z)``: extract the model's answer, decide if it equals the gold.

Public API:

- :func:`grade` — extract (:func:`ttc_gym.answer_extraction.extract_answer`) and compare.
- :func:`compare_answers` — mathematical equivalence of two answer strings, time-limited: True,
  False, or None when the comparison did not complete (unknown).
- :func:`answers_equivalent` — the same as a bool (an unknown counts as not equivalent).
- :func:`normalize_answer` — a cheap canonical key for majority voting (maj@k).
- :func:`start_worker` / :func:`stop_worker` — manage the verifier subprocesses (optional; they
  start on first need and stop at exit).

How equivalence is decided (:func:`compare_answers`), cheapest first:

1. Absurd input is rejected (``False``): empty, longer than :data:`MAX_ANSWER_CHARS`, numeric powers
   whose value would have more than :data:`MAX_POWER_DIGITS` digits (``9^{9^{9^9}}``,
   ``10**10**10**10``), factorials of numbers above 10 000, brackets nested deeper than
   :data:`MAX_NESTING_DEPTH`.
2. Plain numbers (integers, decimals, scientific ``1e3``/``1.0e+02``, ``a/b``, ``\frac{a}{b}``,
   repeating ``0.1\overline{6}``, thousands commas ``1,234`` and LaTeX ``1\,234``/``1{,}234``,
   ``x = 5``, ``5 = x``, ``18 dollars``, a unit set in text: ``12\,\mathrm{m}``; a bare ``12m`` is a
   product) are compared exactly with :class:`fractions.Fraction` in-process — no sympy. **Percent
   rule**: when exactly one side carries ``%``, ``p%`` matches both ``p`` and ``p/100`` (``"50%"``
   equals ``"50"`` and ``"0.5"``, while ``"50"`` does not equal ``"0.5"``); when both do, the
   numbers before ``%`` are compared. Decimals are exact: ``0.333`` is not ``1/3``, and
   ``1.41421356`` is not ``\sqrt{2}`` (also in the worker, where math-verify would round).
3. Equal :func:`normalize_answer` keys mean equal (``(1, 2)`` vs ``(1,2)``, ``\dfrac`` vs ``\frac``).
4. Otherwise math-verify — ``verify(parse(gold), parse(pred))``, both sides parsed, gold first,
   its own ``signal.alarm`` timeouts disabled — with a fallback (``simplify(a - b) == 0`` on latex2sympy's
   parse; answer text is never evaluated: no ``parse_expr``/``sympify`` on it, see the worker),
   run in a persistent worker subprocess (a pool of up to ``client.MAX_WORKERS``, one per
   concurrent caller, served first come first served; the wait for a free one counts in
   ``timeout``). The call waits at most ``timeout`` seconds for it; on
   timeout the worker is killed (and restarted in the background) and the answer is unknown
   (``None``: the comparison did not complete). If the worker dies (killed, crashed, out of
   memory) or cannot be started or written to, the request is retried once on a fresh worker;
   a second failure is unknown too. This works from any thread, unlike math-verify's own
   timeouts. The worker is the module :mod:`ttc_gym.grading.worker` run as ``python -m`` in a
   fresh interpreter started with ``subprocess`` (fork + exec, so a parent that has loaded torch
   is safe, and the parent's ``__main__`` is never re-imported); the first slow-path call waits for it to start (about 1–2 s,
   not counted in ``timeout``).

**Conventions** (each is a row of the verdict table in ``tests/core/test_grading_verdicts.py``):

- *Whitespace never joins digits*: ``2 3`` is not ``23``; ``1, 234`` (a comma then a space) is a list,
  not ``1234``. Thousands separators are ``,``, ``\,`` or ``{,}`` with no space.
- *Equations*: a lone variable on either side of an answer is dropped (``x = 5``, ``5 = x``,
  ``y = 2x+1`` -> ``2x+1``); any other equation is compared as an equation by math-verify. A chained
  inequality in one variable is the interval it describes (``1 < x < 2`` = ``(1,2)``,
  ``-1 \le x < 3`` = ``[-1,3)``).
- *Units*: words or a ``\text{}``/``\mathrm{}`` unit after a number are dropped (``18 dollars``,
  ``12\,\mathrm{m}``); a bare letter after a number is a product (``12m`` is ``12·m``).
- *Presentation*: ``\boxed``, ``$``, ``\text{}`` (nested to any depth), ``\color{..}``,
  ``\textcolor{..}{x}``, LaTeX spacing, degree signs, zero-width characters are ignored; ``½``,
  ``−`` (U+2212) read as ``\frac{1}{2}`` and ``-``; ``\varnothing``/``∅``/``\{\}`` are ``\emptyset``.
- *Sets and complex numbers*: ``\{1,2\}`` (a set) never equals ``(1,2)`` (an interval or tuple);
  a free ``i`` is the imaginary unit (``i^2 = -1``, ``e^{i\pi} = -1``, ``\sqrt{-1} = i``).
- Answer text is never evaluated (no ``eval``, ``parse_expr`` or ``sympify`` on it).

Verdicts are memoized (``functools.lru_cache``, :data:`CACHE_SIZE` entries) on ``(pred, gold,
timeout)``; an unknown never is, so a comparison cut short by a crash or a stall is tried again on
the next call. Importing this module is cheap and silent: math-verify and sympy are only imported in
the worker.

The package's modules, one job each: ``limits`` (size limits), ``normalize`` (keys and exact numbers),
``guards`` (inputs refused up front), ``client`` (the worker subprocess seen from here), ``worker``
(the subprocess itself), ``cache`` (the memoized decision), ``compare`` (the public verdicts).
"""

from __future__ import annotations

from ttc_gym.grading.cache import CACHE_SIZE, _equivalent_cached, _verdict
from ttc_gym.grading.client import (
    _WORKER,
    WORKER_MODULE,
    _worker_environment,
    start_worker,
    stop_worker,
)
from ttc_gym.grading.compare import (
    GradeResult,
    answers_equivalent,
    compare_answers,
    grade,
)
from ttc_gym.grading.limits import MAX_ANSWER_CHARS, MAX_NESTING_DEPTH, MAX_POWER_DIGITS
from ttc_gym.grading.normalize import normalize_answer

__all__ = [
    "CACHE_SIZE",
    "MAX_ANSWER_CHARS",
    "MAX_NESTING_DEPTH",
    "MAX_POWER_DIGITS",
    "GradeResult",
    "answers_equivalent",
    "compare_answers",
    "grade",
    "normalize_answer",
    "start_worker",
    "stop_worker",
]
# Internals that tests and tools reach through the package (same objects as in the submodules).
_INTERNALS = (_WORKER, WORKER_MODULE, _equivalent_cached, _verdict, _worker_environment)
