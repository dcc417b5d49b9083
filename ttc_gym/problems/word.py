"""Short word problems (counting, shopping, ages, speeds, discounts, work rates) for the
procedural generator. Each template returns its text, the numbers it used, and an expression of
those numbers whose exact value is the answer. Builders take (rng, name, other_name) and return
(text, numbers, expression)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ttc_gym.problems.core import pick as _pick
from ttc_gym.problems.core import randint as _ri

_NAMES = ("Sam", "Mia", "Ben", "Lily", "Tom", "Anna", "Leo", "Emma", "Max", "Zoe", "Omar", "Nina")
_THINGS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "shells", "cards")
_GOODS = (
    ("pencil", "pencils"),
    ("notebook", "notebooks"),
    ("apple", "apples"),
    ("ticket", "tickets"),
    ("toy car", "toy cars"),
    ("sandwich", "sandwiches"),
)

# template -> (level, builder(rng, name, other_name) -> (text, numbers, expression))
WordBuilder = Callable[[np.random.Generator, str, str], tuple[str, dict[str, int], str]]


def _w_gain(rng, name, _):
    a, b, t = _ri(rng, 2, 9), _ri(rng, 2, 9), _pick(rng, _THINGS)
    text = f"{name} has {a} {t} and gets {b} more {t}. How many {t} does {name} have now?"
    return text, {"a": a, "b": b}, f"{a} + {b}"


def _w_combine(rng, _, __):
    a, b = _ri(rng, 1, 9), _ri(rng, 1, 9)
    text = f"There are {a} red balls and {b} blue balls in a box. How many balls are in the box?"
    return text, {"a": a, "b": b}, f"{a} + {b}"


def _w_lose(rng, name, _):
    a, t = _ri(rng, 5, 15), _pick(rng, _THINGS)
    b = _ri(rng, 1, a - 1)
    text = (
        f"{name} has {a} {t} and gives {b} of them to a friend. How many {t} does {name} have left?"
    )
    return text, {"a": a, "b": b}, f"{a} - {b}"


def _w_unit_price(rng, _, __):
    p, n, (one, many) = _ri(rng, 2, 9), _ri(rng, 2, 9), _pick(rng, _GOODS)
    text = f"One {one} costs {p} dollars. How much do {n} {many} cost, in dollars?"
    return text, {"p": p, "n": n}, f"{n} * {p}"


def _w_change(rng, name, _):
    n, p, (_one, many) = _ri(rng, 2, 6), _ri(rng, 2, 9), _pick(rng, _GOODS)
    bill = min(b for b in (10, 20, 50, 100) if b >= n * p)
    text = (
        f"{name} buys {n} {many} that cost {p} dollars each and pays with a {bill}-dollar bill. "
        f"How much change does {name} get, in dollars?"
    )
    return text, {"n": n, "p": p, "bill": bill}, f"{bill} - {n} * {p}"


def _w_age_future(rng, name, other):
    a, b, c = _ri(rng, 3, 12), _ri(rng, 2, 9), _ri(rng, 2, 10)
    text = (
        f"{name} is {a} years old. {other} is {b} years older than {name}. "
        f"How old will {other} be in {c} years?"
    )
    return text, {"a": a, "b": b, "c": c}, f"{a} + {b} + {c}"


def _w_age_ratio(rng, name, _):
    child, k = _ri(rng, 4, 15), _ri(rng, 2, 6)
    s = (k + 1) * child
    text = (
        f"{name}'s mother is {k} times as old as {name}. Together they are {s} years old. "
        f"How old is {name}?"
    )
    return text, {"k": k, "s": s}, f"{s} / ({k} + 1)"


def _w_two_speeds(rng, _, __):
    v, t1, w, t2 = 5 * _ri(rng, 6, 16), _ri(rng, 2, 5), 5 * _ri(rng, 6, 16), _ri(rng, 1, 4)
    text = (
        f"A train travels at {v} km per hour for {t1} hours, then at {w} km per hour for {t2} "
        f"hours. How many km does it travel in total?"
    )
    return text, {"v": v, "t1": t1, "w": w, "t2": t2}, f"{v} * {t1} + {w} * {t2}"


def _two_goods(rng):
    i = int(rng.integers(len(_GOODS)))
    j = _pick(rng, [k for k in range(len(_GOODS)) if k != i])
    return (
        _GOODS[i][1],
        _GOODS[j][1],
        _ri(rng, 2, 6),
        _ri(rng, 2, 9),
        _ri(rng, 2, 6),
        _ri(rng, 2, 9),
    )


def _w_two_items(rng, name, _):
    g1, g2, n, p, m, q = _two_goods(rng)
    text = (
        f"{name} buys {n} {g1} at {p} dollars each and {m} {g2} at {q} dollars each. "
        f"How much does {name} spend in total, in dollars?"
    )
    return text, {"n": n, "p": p, "m": m, "q": q}, f"{n} * {p} + {m} * {q}"


def _w_two_items_change(rng, name, _):
    g1, g2, n, p, m, q = _two_goods(rng)
    bill = min(b for b in (20, 50, 100) if b >= n * p + m * q)
    text = (
        f"{name} buys {n} {g1} at {p} dollars each and {m} {g2} at {q} dollars each, and pays "
        f"with a {bill}-dollar bill. How much change does {name} get, in dollars?"
    )
    return text, {"n": n, "p": p, "m": m, "q": q, "bill": bill}, f"{bill} - ({n} * {p} + {m} * {q})"


def _w_age_future_ratio(rng, name, other):
    m = _ri(rng, 2, 3)
    k = _ri(rng, m + 1, m + 3)
    j = _ri(rng, 2, 8)
    n = j * (k - m)  # then other's age (m - 1) * j solves k*L + n = m*(L + n)
    text = (
        f"{name} is {k} times as old as {other}. In {n} years, {name} will be {m} times as old as "
        f"{other}. How old is {other} now?"
    )
    return text, {"k": k, "m": m, "n": n}, f"{n} * ({m} - 1) / ({k} - {m})"


def _w_work_rate(rng, _, __):
    t = _ri(rng, 2, 6)
    u = _pick(rng, [u for u in range(1, t + 1) if (t * t) % u == 0])
    a, b = t + u, t + t * t // u  # (a - t)(b - t) = t^2  <=>  ab / (a + b) = t
    text = (
        f"Pipe A can fill a tank in {a} hours. Pipe B can fill the same tank in {b} hours. "
        f"How many hours does it take to fill the tank with both pipes open?"
    )
    return text, {"a": a, "b": b}, f"{a} * {b} / ({a} + {b})"


def _w_discount(rng, _, __):
    pct, price, n = _pick(rng, (10, 20, 25, 50)), 20 * _ri(rng, 1, 10), _ri(rng, 2, 5)
    one, many = _pick(rng, _GOODS)
    text = (
        f"A {one} costs {price} dollars. During a sale every price is reduced by {pct}%. "
        f"How much do {n} {many} cost during the sale, in dollars?"
    )
    return text, {"pct": pct, "price": price, "n": n}, f"{n} * {price} * (100 - {pct}) / 100"


WORD_TEMPLATES: dict[str, tuple[int, WordBuilder]] = {
    "gain": (1, _w_gain),
    "combine": (1, _w_combine),
    "lose": (2, _w_lose),
    "unit_price": (2, _w_unit_price),
    "change": (3, _w_change),
    "age_future": (3, _w_age_future),
    "age_ratio": (4, _w_age_ratio),
    "two_speeds": (4, _w_two_speeds),
    "two_items": (4, _w_two_items),
    "two_items_change": (5, _w_two_items_change),
    "age_future_ratio": (5, _w_age_future_ratio),
    "work_rate": (5, _w_work_rate),
    "discount": (5, _w_discount),
}


def word_problem(rng: np.random.Generator, level: int) -> tuple[str, str, str, dict[str, Any]]:
    """(template, question, expression, {"numbers": ...}) of a word problem at `level`."""
    template = _pick(rng, [t for t, (lv, _) in WORD_TEMPLATES.items() if lv == level])
    i = int(rng.integers(len(_NAMES)))
    other = _pick(rng, [n for k, n in enumerate(_NAMES) if k != i])
    text, numbers, expr = WORD_TEMPLATES[template][1](rng, _NAMES[i], other)
    return template, text, expr, {"numbers": numbers}
