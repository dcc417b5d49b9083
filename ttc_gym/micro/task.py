"""Multi-step arithmetic chains: the micro-reasoner's problem family (problem source "micro").

A problem gives a start number and `level + 1` numbered operations (add, subtract, multiply by a
small number), applied left to right; the gold answer is the final number (an integer, graded by
`ttc_gym.grading.compare_answers` like any other answer). Levels 1..5:

=====  =====  ============  ==============  ===========  =========
level  steps  start         add / subtract  multiply by  values ≤
=====  =====  ============  ==============  ===========  =========
1      2      1..9          1..9            2..3         50
2      3      1..19         1..9            2..4         99
3      4      1..29         1..19           2..5         150
4      5      1..29         1..19           2..5         199
5      6      1..29         1..29           2..5         199
=====  =====  ============  ==============  ===========  =========

Every intermediate value stays in 1..max (a subtraction never goes below 1, a product never above
the level's bound). All randomness comes from the `numpy.random.Generator` passed in.

    Start at 7. Step 1: add 5. Step 2: multiply by 3. Step 3: subtract 4. What is the result?
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ttc_gym.problems.core import Problem, check_rng

LEVELS = (1, 2, 3, 4, 5)
SOURCE_NAME = "micro"
OPS = ("add", "sub", "mul")
SYMBOLS = {"add": "+", "sub": "-", "mul": "×"}
PHRASES = {"add": "add", "sub": "subtract", "mul": "multiply by"}


@dataclass(frozen=True)
class LevelSpec:
    """How the problems of one level are drawn."""

    steps: int
    start: tuple[int, int]
    addend: tuple[int, int]
    factor: tuple[int, int]
    max_value: int


LEVEL_SPECS: dict[int, LevelSpec] = {
    1: LevelSpec(2, (1, 9), (1, 9), (2, 3), 50),
    2: LevelSpec(3, (1, 19), (1, 9), (2, 4), 99),
    3: LevelSpec(4, (1, 29), (1, 19), (2, 5), 150),
    4: LevelSpec(5, (1, 29), (1, 19), (2, 5), 199),
    5: LevelSpec(6, (1, 29), (1, 29), (2, 5), 199),
}


def apply_op(value: int, op: str, operand: int) -> int:
    """`value` after one operation ("add", "sub" or "mul")."""
    if op == "add":
        return value + operand
    if op == "sub":
        return value - operand
    if op == "mul":
        return value * operand
    raise ValueError(f"op must be one of {OPS}, got {op!r}.")


def run_chain(start: int, ops: Sequence[tuple[str, int]]) -> list[int]:
    """The values of a chain: [start, after op 1, ..., after the last op]."""
    values = [int(start)]
    for op, operand in ops:
        values.append(apply_op(values[-1], op, operand))
    return values


def question_text(start: int, ops: Sequence[tuple[str, int]]) -> str:
    """The problem statement of a chain."""
    steps = " ".join(f"Step {i}: {PHRASES[op]} {a}." for i, (op, a) in enumerate(ops, start=1))
    return f"Start at {start}. {steps} What is the result?"


_QUESTION = re.compile(r"Start at (\d+)\. ((?:Step \d+: (?:add|subtract|multiply by) \d+\. )+)What is the result\?")
_STEP = re.compile(r"Step (\d+): (add|subtract|multiply by) (\d+)\.")


def parse_question(question: str) -> tuple[int, list[tuple[str, int]]]:
    """(start, ops) of a micro problem's statement (the inverse of `question_text`)."""
    match = _QUESTION.fullmatch(question.strip())
    if match is None:
        raise ValueError(f"not a micro problem statement (expected {question_text(7, [('add', 5)])!r}), "
                         f"got {question!r:.120}.")
    by_phrase = {v: k for k, v in PHRASES.items()}
    ops = [(by_phrase[p], int(a)) for _, p, a in _STEP.findall(match.group(2))]
    return int(match.group(1)), ops


def draw_chain(rng: np.random.Generator, level: int) -> tuple[int, list[tuple[str, int]]]:
    """(start, ops) of one problem of `level`, every value within 0..the level's bound."""
    spec = level_spec(level)
    value = int(rng.integers(spec.start[0], spec.start[1] + 1))
    start, ops = value, []
    for _ in range(spec.steps):
        choices = ["add"]
        if value >= 2:
            choices.append("sub")
        if value >= 2 and value * spec.factor[0] <= spec.max_value:
            choices.append("mul")
        op = choices[int(rng.integers(len(choices)))]
        if op == "mul":
            top = min(spec.factor[1], spec.max_value // value)
            operand = int(rng.integers(spec.factor[0], top + 1))
        elif op == "sub":
            operand = int(rng.integers(1, min(spec.addend[1], value - 1) + 1))
        else:
            top = min(spec.addend[1], spec.max_value - value)
            if top < spec.addend[0]:  # at the bound: subtract instead
                op, operand = "sub", int(rng.integers(1, min(spec.addend[1], value - 1) + 1))
            else:
                operand = int(rng.integers(spec.addend[0], top + 1))
        ops.append((op, operand))
        value = apply_op(value, op, operand)
    return start, ops


def make_problem(start: int, ops: Sequence[tuple[str, int]], level: int) -> Problem:
    """The `Problem` of a chain (id "micro-d<level>-<10 hex digits>", meta: start, ops, values)."""
    ops = [(str(op), int(a)) for op, a in ops]
    question = question_text(start, ops)
    values = run_chain(start, ops)
    digest = hashlib.sha256(f"{level}|{question}".encode()).hexdigest()[:10]
    return Problem(id=f"micro-d{level}-{digest}", question=question, answer=str(values[-1]),
                   source=SOURCE_NAME, difficulty=level,
                   meta={"family": "chain", "start": start, "ops": ops, "values": values})


def level_spec(level: int) -> LevelSpec:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or int(level) not in LEVEL_SPECS:
        raise ValueError(f"micro difficulty level must be one of {LEVELS}, got {level!r}.")
    return LEVEL_SPECS[int(level)]


def check_levels(difficulty: int | Sequence[int] | Mapping[int, float] | None) -> dict[int, float]:
    """{level: probability} from a level, a list of levels (uniform) or a mapping of weights."""
    if difficulty is None:
        difficulty = LEVELS
    if isinstance(difficulty, (int, np.integer)) and not isinstance(difficulty, bool):
        difficulty = [int(difficulty)]
    if isinstance(difficulty, Mapping):
        weights = {}
        for k, v in difficulty.items():
            level_spec(k)
            weights[int(k)] = float(v)
    elif isinstance(difficulty, Sequence) and not isinstance(difficulty, str):
        if not difficulty:
            raise ValueError("micro difficulty list is empty; give at least one level of 1..5.")
        weights = {}
        for k in difficulty:
            level_spec(k)
            weights[int(k)] = weights.get(int(k), 0.0) + 1.0
    else:
        raise TypeError(f"micro difficulty must be a level 1..5, a list of levels or a {{level: weight}} "
                        f"mapping, got {difficulty!r}.")
    total = sum(weights.values())
    if any(w < 0 for w in weights.values()) or total <= 0:
        raise ValueError(f"micro difficulty weights must be >= 0 with a positive sum, got {weights}.")
    return {k: w / total for k, w in sorted(weights.items())}


class MicroSource:
    """Problem source of arithmetic chains (`ttc_gym.problems.ProblemSource`): a level drawn from
    `difficulty` ({level: probability}; default uniform over 1..5), then a chain of that level."""

    def __init__(self, difficulty: int | Sequence[int] | Mapping[int, float] | None = None):
        self.difficulty = check_levels(difficulty)
        self._levels = np.array(list(self.difficulty))
        self._probs = np.array(list(self.difficulty.values()))

    def sample(self, rng: np.random.Generator) -> Problem:
        rng = check_rng(rng)
        level = int(self._levels[int(rng.choice(len(self._levels), p=self._probs))])
        return make_problem(*draw_chain(rng, level), level=level)

    def problems(self, n: int, seed: int) -> list[Problem]:
        """`n` problems drawn with `numpy.random.default_rng(seed)`."""
        rng = np.random.default_rng(seed)
        return [self.sample(rng) for _ in range(int(n))]

    def __repr__(self) -> str:
        return f"MicroSource(difficulty={self.difficulty})"


def source_from_spec(arg: str | None) -> MicroSource:
    """The source of the spec "micro" (None), "micro:3", "micro:1-3" or "micro:1,2"."""
    if arg is None:
        return MicroSource()
    text = arg.replace(" ", "")
    if re.fullmatch(r"[1-5]", text):
        return MicroSource(int(text))
    match = re.fullmatch(r"([1-5])-([1-5])", text)
    if match and int(match.group(1)) <= int(match.group(2)):
        return MicroSource(list(range(int(match.group(1)), int(match.group(2)) + 1)))
    if re.fullmatch(r"[1-5](,[1-5])+", text):
        return MicroSource([int(t) for t in text.split(",")])
    raise ValueError(f"Bad source spec 'micro:{arg}': expected a level 1..5 ('micro:3'), a range "
                     f"('micro:1-3') or a list ('micro:1,2').")
