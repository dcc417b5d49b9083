"""The `Problem` record, the `ProblemSource` protocol and the finite `ListSource`."""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ttc_gym.grading.limits import MAX_ANSWER_CHARS
from ttc_gym.validation import check_unicode

#: The longest question a Problem may hold: the math envs' observation space is sized by it
#: (a longer question would give observations outside the space).
MAX_QUESTION_CHARS = 20_000

Meta = tuple[tuple[str, Any], ...]


def _key(pair: tuple[str, Any]) -> str:
    return pair[0]


def freeze_meta(value: Any) -> Any:
    """A hashable, picklable copy of `value`: mappings become sorted tuples of (key, value)
    pairs, lists/tuples/sets become tuples, numpy scalars become Python scalars; other scalars
    stay as they are and anything else becomes its `str`."""
    if isinstance(value, Mapping):
        return tuple(sorted(((str(k), freeze_meta(v)) for k, v in value.items()), key=_key))
    if isinstance(value, (list, tuple)):
        return tuple(freeze_meta(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return tuple(sorted((freeze_meta(v) for v in value), key=repr))
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


@dataclass(frozen=True)
class Problem:
    """One math problem with its gold final answer.

    Attributes:
        id: stable identifier (procedural: ``"gen-<family>-d<level>-<hash>"``; files: the row's
            ``id``/``unique_id`` or ``"<filename>:<line>"``).
        question: the problem statement shown to the model.
        answer: the gold final answer in canonical short form (``"42"``, ``"3/4"``,
            ``"\\frac{1}{2}"``).
        source: where it came from (``"procedural"``, a file name, ``"hf:<name>"``).
        difficulty: level (procedural: 1..5; MATH: 1..5), or None when unknown.
        solution: a worked solution when the source has one, else None.
        meta: extra fields as a sorted tuple of ``(key, value)`` pairs, so a Problem stays hashable
            and picklable (a dict passed here is converted). Read it with `meta_dict` / `get_meta`.
    """

    id: str
    question: str
    answer: str
    source: str
    difficulty: int | None = None
    solution: str | None = None
    meta: Meta = field(default=())

    def __post_init__(self) -> None:
        for name in ("id", "question", "answer", "source"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Problem.{name} must be a non-empty string, got {value!r}.")
            check_unicode(f"Problem.{name}", value)
        if len(self.question) > MAX_QUESTION_CHARS:
            raise ValueError(
                f"Problem.question is {len(self.question):,} characters long; at most "
                f"{MAX_QUESTION_CHARS:,} are allowed (the math envs' observation space holds no longer "
                f"question; ttc_gym.problems.core.MAX_QUESTION_CHARS)."
            )
        if len(self.answer) > MAX_ANSWER_CHARS:
            raise ValueError(
                f"Problem.answer is {len(self.answer):,} characters long; the grader compares answers of "
                f"at most {MAX_ANSWER_CHARS:,} characters (ttc_gym.grading.MAX_ANSWER_CHARS), so this "
                f"problem could never be solved. Shorten the gold answer."
            )
        if self.solution is not None and not isinstance(self.solution, str):
            raise TypeError(f"Problem.solution must be a string or None, got {self.solution!r}.")
        d = self.difficulty
        if d is not None:
            if isinstance(d, bool) or not isinstance(d, numbers.Integral):
                raise TypeError(f"Problem.difficulty must be an int or None, got {d!r}.")
            object.__setattr__(self, "difficulty", int(d))
        meta = self.meta
        if isinstance(meta, Mapping):
            meta = freeze_meta(meta)
        else:
            try:
                meta = tuple(sorted(((str(k), freeze_meta(v)) for k, v in meta), key=_key))
            except (TypeError, ValueError):
                raise TypeError(
                    f"Problem.meta must be a mapping or (key, value) pairs, got {self.meta!r}."
                ) from None
        object.__setattr__(self, "meta", meta)

    @property
    def meta_dict(self) -> dict[str, Any]:
        """`meta` as a (new, shallow) dict."""
        return dict(self.meta)

    def get_meta(self, key: str, default: Any = None) -> Any:
        for k, v in self.meta:
            if k == key:
                return v
        return default


def randint(rng: np.random.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high] as a Python int."""
    return int(rng.integers(low, high + 1))


def pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


@runtime_checkable
class ProblemSource(Protocol):
    """Anything the math envs can draw problems from. All randomness comes from `rng`."""

    def sample(self, rng: np.random.Generator) -> Problem: ...


def check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), "
            f"got {rng!r} ({type(rng).__name__})."
        )
    return rng


class ListSource:
    """A finite list of problems, sampled uniformly (with replacement) with the given rng."""

    def __init__(self, problems: Sequence[Problem], name: str = "list") -> None:
        problems = tuple(problems)
        if not problems:
            raise ValueError(f"Problem source {name!r} is empty: expected at least one Problem.")
        for i, p in enumerate(problems):
            if not isinstance(p, Problem):
                raise TypeError(
                    f"Problem source {name!r}: item {i} must be a Problem, got {type(p).__name__}."
                )
        self.problems: tuple[Problem, ...] = problems
        self.name = name

    def sample(self, rng: np.random.Generator) -> Problem:
        return self.problems[int(check_rng(rng).integers(len(self.problems)))]

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems)

    def __getitem__(self, index: int) -> Problem:
        return self.problems[index]

    def __repr__(self) -> str:
        return f"ListSource({self.name!r}, {len(self.problems)} problems)"
