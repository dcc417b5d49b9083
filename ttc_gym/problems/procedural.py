"""Seeded procedural math problems with exact answers, at difficulty levels 1..5.

Every random draw comes from the `numpy.random.Generator` passed in, so the same seed gives the same
problems. Families and the levels each one covers:

=========  ======  =================================================================================
family     levels  what
=========  ======  =================================================================================
arith      1-5     integer arithmetic: 1 = single-digit addition ("What is 3 + 4?"), 2 = one
                   operation, 3 = two operations with precedence, 4 = parentheses, 5 = exact
                   division and nesting
frac       2-5     fractions, answers reduced ("a/b", or an integer when whole): 2 = same
                   denominator, 3 = unlike denominators, 4 = multiply/divide, 5 = three fractions
linear     2-5     linear equations in x with an integer solution: 2 = x + a = b, 3 = ax + b = c,
                   4 = x on both sides, 5 = parentheses
word       1-5     short word problems: counting, shopping (unit price, change), ages, speeds,
                   discounts, work rates
=========  ======  =================================================================================

Each problem's `meta` holds what is needed to check it independently: ``family``, ``template``,
and ``expression`` (arith/frac/word: a Python/sympy expression whose exact value is the answer) or
``lhs``/``rhs`` (linear: sympy expressions in ``x``); word problems also hold their ``numbers``.
Ids are ``"gen-<family>-d<level>-<10 hex digits>"``, a hash of (family, level, template, question).
"""

from __future__ import annotations

import ast
import hashlib
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ttc_gym.problems.core import Problem, check_rng
from ttc_gym.problems.core import pick as _pick
from ttc_gym.problems.core import randint as _ri
from ttc_gym.problems.word import word_problem
from ttc_gym.validation import check_int, unknown_name_error

LEVELS = (1, 2, 3, 4, 5)
FAMILY_LEVELS: dict[str, tuple[int, ...]] = {
    "arith": (1, 2, 3, 4, 5),
    "frac": (2, 3, 4, 5),
    "linear": (2, 3, 4, 5),
    "word": (1, 2, 3, 4, 5),
}
FAMILIES = tuple(FAMILY_LEVELS)

# Placeholder default mix, to be calibrated against the default model (SmolLM2-135M-Instruct).
DEFAULT_DIFFICULTY: dict[int, float] = {1: 0.6, 2: 0.3, 3: 0.1}

DifficultySpec = int | Sequence[int] | Mapping[int, float]

# ----------------------------------------------------------------------------------- helpers

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate(expression: str) -> Fraction:
    """Exact value of an expression of integers, + - * / and parentheses."""

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(f"unsupported expression {expression!r}")

    return ev(ast.parse(expression, mode="eval").body)


def format_number(value: Fraction) -> str:
    """Canonical short form: "7", "-3", "3/4", "-5/2"."""
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def _render(expression: str) -> str:
    """The question form of an expression: × and ÷, bare fraction literals."""
    text = re.sub(r"\((\d+/\d+)\)", r"\1", expression)
    return text.replace(" * ", " × ").replace(" / ", " ÷ ")


def _proper(rng: np.random.Generator, den: int) -> tuple[int, int]:
    """A reduced proper fraction num/den."""
    return _pick(rng, [n for n in range(1, den) if math.gcd(n, den) == 1]), den


def _frac(f: tuple[int, int]) -> str:
    return f"({f[0]}/{f[1]})"


# Each family builder returns (template, question, expression-or-None, extra meta).
Built = tuple[str, str, str, dict[str, Any]]

# ------------------------------------------------------------------------------------ arith


def _arith(rng: np.random.Generator, level: int) -> Built:
    if level == 1:
        template, expr = "add", f"{_ri(rng, 1, 9)} + {_ri(rng, 1, 9)}"
    elif level == 2:
        template = _pick(rng, ("add", "sub", "mul"))
        if template == "add":
            expr = f"{_ri(rng, 10, 30)} + {_ri(rng, 2, 9)}"
        elif template == "sub":
            a = _ri(rng, 5, 20)
            expr = f"{a} - {_ri(rng, 1, a - 1)}"
        else:
            expr = f"{_ri(rng, 2, 9)} * {_ri(rng, 2, 9)}"
    elif level == 3:
        template = _pick(rng, ("add_mul", "mul_sub", "add_sub"))
        if template == "add_mul":
            expr = f"{_ri(rng, 1, 20)} + {_ri(rng, 2, 9)} * {_ri(rng, 2, 9)}"
        elif template == "mul_sub":
            a, b = _ri(rng, 2, 9), _ri(rng, 2, 9)
            expr = f"{a} * {b} - {_ri(rng, 1, a * b)}"
        else:
            a, b = _ri(rng, 10, 50), _ri(rng, 10, 50)
            expr = f"{a} + {b} - {_ri(rng, 1, a + b)}"
    elif level == 4:
        template = _pick(rng, ("paren_mul_sub", "mul_paren_add", "paren_paren"))
        if template == "paren_mul_sub":
            expr = f"({_ri(rng, 2, 15)} + {_ri(rng, 2, 15)}) * {_ri(rng, 2, 9)} - {_ri(rng, 1, 30)}"
        elif template == "mul_paren_add":
            b = _ri(rng, 5, 20)
            expr = f"{_ri(rng, 2, 9)} * ({b} - {_ri(rng, 1, b - 1)}) + {_ri(rng, 1, 30)}"
        else:
            a = _ri(rng, 5, 20)
            expr = f"({a} - {_ri(rng, 1, a - 1)}) * ({_ri(rng, 1, 9)} + {_ri(rng, 1, 9)})"
    else:
        template = _pick(rng, ("div_chain", "mixed4", "nested"))
        if template == "div_chain":
            d, a, b = _ri(rng, 2, 9), _ri(rng, 2, 12), _ri(rng, 2, 12)
            q = a * b // d + _ri(rng, 1, 10)
            expr = f"({a} * {b} + {d * q - a * b}) / {d} - {_ri(rng, 1, q)}"
        elif template == "mixed4":
            f = _ri(rng, 2, 9)
            a, b, c, d = (_ri(rng, 2, 12) for _ in range(4))
            expr = f"{a} * {b} - {c} * {d} + {f * _ri(rng, 2, 9)} / {f}"
        else:
            d = _ri(rng, 5, 15)
            expr = (
                f"{_ri(rng, 2, 6)} * ({_ri(rng, 1, 10)} + {_ri(rng, 2, 5)} * "
                f"({d} - {_ri(rng, 1, d - 1)}))"
            )
    return template, f"What is {_render(expr)}?", expr, {}


# ------------------------------------------------------------------------------------- frac


def _fractions(rng: np.random.Generator, level: int) -> Built:
    if level == 2:
        template, den = "same_den_add", _ri(rng, 3, 9)
        a = _ri(rng, 1, den - 2)
        expr = f"{_frac((a, den))} + {_frac((_ri(rng, 1, den - 1 - a), den))}"
    elif level == 3:
        template = _pick(rng, ("add", "sub"))
        b = _ri(rng, 2, 9)
        d = _pick(rng, [k for k in range(2, 10) if k != b])
        x, y = _proper(rng, b), _proper(rng, d)
        if template == "sub" and Fraction(*x) < Fraction(*y):
            x, y = y, x
        expr = f"{_frac(x)} {'+' if template == 'add' else '-'} {_frac(y)}"
    elif level == 4:
        template = _pick(rng, ("mul", "div"))
        x, y = _proper(rng, _ri(rng, 2, 9)), _proper(rng, _ri(rng, 2, 9))
        expr = f"{_frac(x)} {'*' if template == 'mul' else '/'} {_frac(y)}"
    else:
        template = _pick(rng, ("add_mul", "sub_div"))
        x, y, z = (_proper(rng, _ri(rng, 2, 9)) for _ in range(3))
        if template == "add_mul":
            expr = f"{_frac(x)} + {_frac(y)} * {_frac(z)}"
        else:
            while Fraction(*x) == Fraction(*y):
                y = _proper(rng, _ri(rng, 2, 9))
            if Fraction(*x) < Fraction(*y):
                x, y = y, x
            expr = f"({_frac(x)} - {_frac(y)}) / {_frac(z)}"
    question = f"What is {_render(expr)}? Give the answer as a fraction in lowest terms."
    return template, question, expr, {}


# ----------------------------------------------------------------------------------- linear


def _side(coef: int, const: int) -> str:
    """Display form of coef*x + const (coef may be 0; const may be 0)."""
    parts = []
    if coef:
        parts.append("x" if coef == 1 else "-x" if coef == -1 else f"{coef}x")
    if const or not parts:
        if parts:
            parts.append(f"{'+' if const > 0 else '-'} {abs(const)}")
        else:
            parts.append(str(const))
    return " ".join(parts)


def _linear(rng: np.random.Generator, level: int) -> Built:
    if level == 2:
        template, a = _pick(rng, ("plus", "minus")), _ri(rng, 1, 9)
        if template == "plus":
            x = _ri(rng, 1, 9)
            lhs, rhs, shown = f"x + {a}", f"{x + a}", f"x + {a} = {x + a}"
        else:
            x = a + _ri(rng, 1, 9)
            lhs, rhs, shown = f"x - {a}", f"{x - a}", f"x - {a} = {x - a}"
    elif level == 3:
        template = "ax_b"
        a, x, b = _ri(rng, 2, 9), _ri(rng, 1, 10), _pick(rng, (-1, 1)) * _ri(rng, 1, 20)
        lhs, rhs, shown = f"{a}*x + ({b})", f"{a * x + b}", f"{_side(a, b)} = {a * x + b}"
    elif level == 4:
        template = "both_sides"
        a = _ri(rng, 2, 9)
        c = _pick(rng, [k for k in range(1, 10) if k != a])
        x = _pick(rng, [k for k in range(-10, 11) if k])
        b = _ri(rng, -20, 20)
        d = (a - c) * x + b
        lhs, rhs, shown = f"{a}*x + ({b})", f"{c}*x + ({d})", f"{_side(a, b)} = {_side(c, d)}"
    else:
        template = "parens"
        a = _ri(rng, 2, 6)
        b = _pick(rng, [k for k in range(-9, 10) if k])
        c = _pick(rng, [k for k in range(1, 10) if k != a])
        x = _ri(rng, -12, 12)
        d = a * (x + b) - c * x
        lhs, rhs = f"{a}*(x + ({b}))", f"{c}*x + ({d})"
        shown = f"{a}({_side(1, b)}) = {_side(c, d)}"
    return template, f"Solve for x: {shown}.", None, {"lhs": lhs, "rhs": rhs, "solution_x": x}


_BUILDERS: dict[str, Callable[[np.random.Generator, int], Built]] = {
    "arith": _arith,
    "frac": _fractions,
    "linear": _linear,
    "word": word_problem,
}

# --------------------------------------------------------------------------------- public API


def generate_problem(
    rng: np.random.Generator, difficulty: int, family: str | None = None
) -> Problem:
    """One procedural problem at `difficulty` (1..5), from `family` or a family drawn with `rng`."""
    check_rng(rng)
    level = check_int("difficulty", difficulty, minimum=1, maximum=5)
    if family is None:
        family = _pick(rng, [f for f in FAMILIES if level in FAMILY_LEVELS[f]])
    elif family not in FAMILY_LEVELS:
        raise unknown_name_error("problem family", family, FAMILIES)
    elif level not in FAMILY_LEVELS[family]:
        raise ValueError(
            f"Family {family!r} has difficulty levels {list(FAMILY_LEVELS[family])}, got {level}."
        )
    template, question, expr, extra = _BUILDERS[family](rng, level)
    if expr is not None:
        value = evaluate(expr)
        if family != "frac" and value.denominator != 1:  # pragma: no cover - generator bug guard
            raise AssertionError(f"non-integer answer {value} for {expr!r}")
        answer = format_number(value)
        extra = {**extra, "expression": expr}
    else:
        answer = str(extra["solution_x"])
    digest = hashlib.sha1(repr((family, level, template, question)).encode()).hexdigest()[:10]
    return Problem(
        id=f"gen-{family}-d{level}-{digest}",
        question=question,
        answer=answer,
        source="procedural",
        difficulty=level,
        meta={"family": family, "template": template, **extra},
    )


def parse_difficulty(spec: DifficultySpec) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Levels and their probabilities from an int, a list of ints (uniform), or {level: weight}
    (non-negative weights, normalized)."""
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError("difficulty mix must not be empty: expected {level: weight, ...}.")
        levels = tuple(check_int("difficulty level", k, minimum=1, maximum=5) for k in spec)
        weights = []
        for k, w in spec.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0:
                raise ValueError(
                    f"difficulty weight for level {k} must be a number >= 0, got {w!r}."
                )
            weights.append(float(w))
        total = sum(weights)
        if not total > 0 or not math.isfinite(total):
            raise ValueError(
                f"difficulty weights must have a positive finite sum, got {dict(spec)!r}."
            )
        pairs = [(lv, w / total) for lv, w in zip(levels, weights, strict=True) if w > 0]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    if isinstance(spec, Iterable) and not isinstance(spec, (str, bytes)):
        levels = tuple(check_int("difficulty level", k, minimum=1, maximum=5) for k in spec)
        if not levels:
            raise ValueError("difficulty levels must not be empty: expected e.g. [1, 2, 3].")
        return levels, tuple(1.0 / len(levels) for _ in levels)
    if isinstance(spec, (str, bytes)):
        raise TypeError(f"difficulty must be an int, a list of ints or a dict, got {spec!r}.")
    return (check_int("difficulty", spec, minimum=1, maximum=5),), (1.0,)


class ProceduralSource:
    """An infinite source of procedural problems.

    Args:
        difficulty: an int (fixed level), a list of levels (uniform), or {level: weight}.
            Default `DEFAULT_DIFFICULTY` (mostly levels 1-2, calibrated so that the default model's
            forced-answer accuracy lies between 5 % and 80 %: see examples/studies/calibrate_math.py).
        families: the families to draw from (default all); for each level, a family is drawn
            uniformly among those that cover it.
    """

    name = "procedural"

    def __init__(
        self, difficulty: DifficultySpec | None = None, families: Sequence[str] | None = None
    ) -> None:
        spec = DEFAULT_DIFFICULTY if difficulty is None else difficulty
        self.levels, self.probs = parse_difficulty(spec)
        if isinstance(families, str):
            families = [families]
        families = tuple(FAMILIES if families is None else families)
        if not families:
            raise ValueError(f"families must not be empty: expected some of {list(FAMILIES)}.")
        for f in families:
            if f not in FAMILY_LEVELS:
                raise unknown_name_error("problem family", f, FAMILIES)
        self.families = families
        self._by_level = {lv: [f for f in families if lv in FAMILY_LEVELS[f]] for lv in self.levels}
        for lv, fams in self._by_level.items():
            if not fams:
                raise ValueError(
                    f"No family in {list(families)} has difficulty level {lv}: levels by family "
                    f"are { {f: list(FAMILY_LEVELS[f]) for f in families} }."
                )

    def sample(self, rng: np.random.Generator) -> Problem:
        check_rng(rng)
        level = self.levels[0]
        if len(self.levels) > 1:
            level = self.levels[int(rng.choice(len(self.levels), p=self.probs))]
        return generate_problem(rng, level, _pick(rng, self._by_level[level]))

    def take(self, n: int, seed: int, *, unique: bool = False) -> list[Problem]:
        """`n` problems from `numpy.random.default_rng(seed)`: the same seed gives the same list.
        With `unique=True`, repeated questions are redrawn (ValueError if there are too few)."""
        n = check_int("n", n, minimum=0)
        rng = np.random.default_rng(check_int("seed", seed, minimum=0))
        if not unique:
            return [self.sample(rng) for _ in range(n)]
        out: dict[str, Problem] = {}
        for _ in range(50 * n + 100):
            if len(out) == n:
                break
            p = self.sample(rng)
            out.setdefault(p.id, p)
        if len(out) < n:
            raise ValueError(
                f"Could only draw {len(out)} distinct problems of the {n} asked from {self!r}; "
                f"widen the difficulty mix or pass unique=False."
            )
        return list(out.values())

    @classmethod
    def fixed(
        cls,
        n: int,
        seed: int,
        *,
        difficulty: DifficultySpec | None = None,
        families: Sequence[str] | None = None,
        unique: bool = False,
    ) -> list[Problem]:
        """A reproducible finite list: ``ProceduralSource(difficulty, families).take(n, seed)``."""
        return cls(difficulty, families).take(n, seed, unique=unique)

    def __repr__(self) -> str:
        mix = {lv: round(p, 4) for lv, p in zip(self.levels, self.probs, strict=True)}
        return f"ProceduralSource(difficulty={mix}, families={list(self.families)})"
