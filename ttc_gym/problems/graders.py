"""Per-problem answer graders: `grade_answer(answer, problem)` is the one verdict the prover (J) and
the math envs (the committed answer's outcome) use.

By default an answer is graded by ttc-gym's math grader (`ttc_gym.grading.compare_answers` on its
normalized form). A problem whose `meta` names a grader (``meta["grader"]``, e.g. the problems of the
"reasoning-gym" source) is graded by that grader instead; graders are found by name through string
entry points, so a problem pickled to another process (a Ray worker) is graded the same way there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ttc_gym.grading import compare_answers, normalize_answer
from ttc_gym.validation import unknown_name_error

#: The `Problem.meta` key naming a problem's grader.
GRADER_KEY = "grader"

#: A grader gets the answer as the model stated it (stripped, not normalized) and the problem, and
#: returns True (correct), False (wrong) or None (the comparison did not complete: no verdict).
AnswerGrader = Callable[[str, Any], "bool | None"]

_GRADERS: dict[str, str | AnswerGrader] = {
    "reasoning-gym": "ttc_gym.problems.reasoning_gym:grade",
}


def register_grader(name: str, grader: str | AnswerGrader, *, overwrite: bool = False) -> None:
    """Make problems with ``meta["grader"] == name`` graded by `grader` (a callable, or a
    ``"module:function"`` entry point imported on first use)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"grader name must be a non-empty string, got {name!r}.")
    if not (callable(grader) or (isinstance(grader, str) and ":" in grader)):
        raise TypeError(f"grader must be a callable or a 'module:function' string, got {grader!r}.")
    if name in _GRADERS and not overwrite:
        raise ValueError(f"Answer grader {name!r} is already registered; pass overwrite=True to replace it.")
    _GRADERS[name] = grader


def grader_of(name: str) -> AnswerGrader:
    found = _GRADERS.get(name)
    if found is None:
        raise unknown_name_error("answer grader", name, _GRADERS)
    if isinstance(found, str):
        module, _, attr = found.partition(":")
        found = getattr(importlib.import_module(module), attr)
        _GRADERS[name] = found
    return found


def grade_answer(answer: str, problem: Any, *, as_written: bool = False) -> bool | None:
    """The verdict on `answer` (as stated: a box's content, "" when none) for `problem`: its own
    grader when ``problem.meta`` names one, else math equivalence to ``problem.answer`` of the
    answer's `normalize_answer` key (a forced answer), or of the answer as written (`as_written`: a
    committed answer, whose key would be lossy). An empty answer is wrong."""
    answer = answer.strip()
    if not answer:
        return False
    get_meta = getattr(problem, "get_meta", None)
    name = get_meta(GRADER_KEY) if get_meta is not None else None
    if name is None:
        return compare_answers(answer if as_written else normalize_answer(answer), problem.answer)
    return grader_of(name)(answer, problem)
