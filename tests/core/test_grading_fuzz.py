r"""Fuzzing the grader: generated adversarial answer pairs against known-equal and known-unequal golds.

Each pair is built so that its truth is certain (the same expression re-spaced, a reordered sum,
2/4 vs 1/2, a power tower against its value, a number against that number plus one, ...), among
inputs meant to break a grader: deep nesting, power towers, huge numbers, Unicode (lone surrogates
included), malformed LaTeX, long strings, ``\frac`` chains, sets and intervals, percent and units.
Four threads grade them at once through :func:`ttc_gym.grading.compare_answers`, and every call must

- raise nothing,
- return (a hang fails the test through its pytest-timeout bound, not through a wall-clock assert),
- judge a known-equal pair equal (True), and a known-unequal pair not equal (False) or unknown
  (None): never a wrong verdict.

The default run grades :data:`DEFAULT_PAIRS` pairs; ``TTC_FUZZ_PAIRS=10000`` sets the count (the
issue's full run). The test prints the time per call (p50 / p99) and the wall time; so does
``python tests/core/test_grading_fuzz.py [PAIRS [THREADS]]``.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import pytest

from ttc_gym.grading import compare_answers, start_worker

#: Pairs graded by the default test run (seconds); TTC_FUZZ_PAIRS overrides it.
DEFAULT_PAIRS = 600
#: Threads grading at once.
THREADS = 4
#: The grader's per-call timeout in this test: generous, so that a known-equal pair the worker
#: decides in milliseconds is still decided on a loaded machine.
TIMEOUT = 5.0
#: Seed of the pair generator.
SEED = 20240613


@dataclass(frozen=True)
class Pair:
    kind: str
    pred: str
    gold: str
    equal: bool  # known truth: True = certainly equivalent, False = certainly not


# -- generators: each takes a random.Random and returns one Pair ------------------------------------
_UNICODE_POOLS = (
    "αβγδεζηθλμξπρστφχψω",  # Greek (π included)
    "∑∏∫∂∇√∞≈≠≤≥±×÷∈∉∪∩⊂⊃",  # math symbols
    "日本語中文한국어",  # CJK
    "😀🙃🔥🧮",  # emoji (astral)
    "\u200b\u200d\u2060\ufeff",  # zero-width characters
    "\u202e\u202d",  # bidi overrides
    "\u0301\u0308\u20d7",  # combining marks
    "\ud800\udbff\udc00\udfff",  # lone surrogates
)


def _respace(rng: random.Random, text: str) -> str:
    """`text` with random spaces around operators, commas and brackets (never after a backslash,
    which would make a LaTeX space of it, nor between the two stars of Python's `**`)."""
    out = []
    for i, ch in enumerate(text):
        after_escape = i > 0 and text[i - 1] == "\\"
        in_power = ch == "*" and "*" in (text[i - 1 : i], text[i + 1 : i + 2])
        if ch in "+-=*/,()[]^" and not after_escape and not in_power and rng.random() < 0.5:
            out.append(" " * rng.randint(1, 3) + ch + " " * rng.randint(0, 2))
        else:
            out.append(ch)
    return "".join(out)


def _poly_terms(rng: random.Random, var: str) -> list[tuple[int, int]]:
    """Distinct-degree (coefficient, degree) terms, coefficients nonzero."""
    degrees = rng.sample(range(0, 6), rng.randint(2, 4))
    return [(rng.choice([c for c in range(-9, 10) if c]), d) for d in degrees]


def _poly(terms: list[tuple[int, int]], var: str) -> str:
    parts = []
    for coef, deg in terms:
        mono = "" if deg == 0 else var if deg == 1 else f"{var}^{{{deg}}}" if deg > 9 else f"{var}^{deg}"
        body = str(abs(coef)) if deg == 0 or abs(coef) != 1 else ""
        sign = "-" if coef < 0 else "+"
        parts.append((sign, body + mono))
    text = "".join(f"{s}{b}" for s, b in parts)
    return text[1:] if text.startswith("+") else text


def gen_integer(rng: random.Random) -> Pair:
    n = rng.choice([rng.randint(0, 99), rng.randint(100, 10**6), rng.randint(10**6, 10**12)])
    if rng.random() < 0.5:
        forms = [str(n), f" {n} ", f"{n}.0", f"{n:,}", rf"\boxed{{{n}}}", f"${n}$", f"x = {n}", f"{n}."]
        return Pair("integer", rng.choice(forms), str(n), True)
    return Pair("integer", rng.choice([str(n + 1), f"{n + 1:,}", f"-{n + 1}", f"{n}.5"]), str(n), False)


def gen_fraction(rng: random.Random) -> Pair:
    a, b, k = rng.randint(1, 50), rng.randint(2, 50), rng.randint(2, 9)
    value = Fraction(a, b)
    gold = f"{value.numerator}/{value.denominator}" if value.denominator != 1 else str(value.numerator)
    if rng.random() < 0.5:
        pred = rng.choice([f"{k * a}/{k * b}", rf"\frac{{{k * a}}}{{{k * b}}}", rf"\dfrac{{{k * a}}}{{{k * b}}}"])
        return Pair("fraction", pred, gold, True)
    other = value + Fraction(1, rng.randint(2, 1000))
    return Pair("fraction", rf"\frac{{{other.numerator}}}{{{other.denominator}}}", gold, False)


def gen_polynomial(rng: random.Random) -> Pair:
    var = rng.choice("xyt")
    terms = _poly_terms(rng, var)
    gold = _poly(terms, var)
    shuffled = terms[:]
    rng.shuffle(shuffled)
    if rng.random() < 0.5:
        return Pair("polynomial", _respace(rng, _poly(shuffled, var)), gold, True)
    i = rng.randrange(len(shuffled))
    coef, deg = shuffled[i]
    shuffled[i] = (coef + rng.choice([-2, -1, 1, 2]) or 3, deg)
    return Pair("polynomial", _respace(rng, _poly(shuffled, var)), gold, False)


def gen_tower(rng: random.Random) -> Pair:
    if rng.random() < 0.5:  # small towers against their exact value
        a, b, c = rng.choice([(2, 2, 2), (2, 2, 3), (3, 2, 2), (2, 3, 2), (5, 2, 1), (2, 2, 4)])
        value = a ** (b**c)
        pred = rng.choice([f"{a}^{{{b}^{{{c}}}}}", f"{a}^{{{b}^{c}}}", f"{a}**{b}**{c}"])
        return Pair("tower", pred, str(value), True)
    # towers far too big to evaluate, against a small number they cannot equal
    depth = rng.randint(3, 6)
    bases = [rng.randint(2, 99) for _ in range(depth)]
    pred = bases[-1].__str__()
    for base in reversed(bases[:-1]):
        pred = rng.choice([f"{base}^{{{pred}}}", f"{base}**({pred})"])
    return Pair("tower", pred, str(rng.randint(0, 3)), False)


def gen_huge_number(rng: random.Random) -> Pair:
    digits = rng.randint(20, 380)
    n = rng.randint(10 ** (digits - 1), 10**digits - 1)
    roll = rng.random()
    if roll < 0.35:
        return Pair("huge number", f"{n:,}" if digits < 300 else str(n), str(n), True)
    if roll < 0.5:  # a power against its decimal expansion (decided by the worker)
        base, exp = rng.randint(2, 9), rng.randint(50, 300)
        return Pair("huge number", f"{base}^{{{exp}}}", str(base**exp), True)
    if roll < 0.75:
        return Pair("huge number", str(n + rng.randint(1, 10)), str(n), False)
    exp = rng.choice([10**6, 10**7, 10**9, 10**100])  # far past MAX_POWER_DIGITS
    return Pair("huge number", f"{rng.randint(2, 99)}^{{{exp}}}", str(rng.randint(0, 10**6)), False)


def gen_nesting(rng: random.Random) -> Pair:
    n = rng.randint(2, 99)
    if rng.random() < 0.4:
        depth = rng.randint(1, 5)
        left, right = rng.choice([("(", ")"), ("{", "}"), (r"\left(", r"\right)")])
        return Pair("nesting", left * depth + str(n) + right * depth, str(n), True)
    depth = rng.randint(21, 6000)  # past MAX_NESTING_DEPTH (rejected up front)
    left, right = rng.choice([("(", ")"), ("{", "}"), ("[", "]"), (r"\sqrt{", "}"), (r"\frac{1}{", "}")])
    closing = right * (depth if rng.random() < 0.7 else rng.randint(0, depth))  # balanced or not
    return Pair("nesting", left * depth + str(n) + closing, str(n + 1 + rng.randint(0, 50)), False)


def gen_frac_chain(rng: random.Random) -> Pair:
    depth = rng.randint(2, 10) if rng.random() < 0.6 else rng.randint(21, 120)
    numbers = [rng.randint(1, 9) for _ in range(depth + 1)]
    text, value = str(numbers[-1]), Fraction(numbers[-1])
    for a in reversed(numbers[:-1]):
        text, value = rf"\frac{{{a}}}{{{text}}}", a / value
    gold = f"{value.numerator}/{value.denominator}" if value.denominator != 1 else str(value.numerator)
    if depth <= 6 and rng.random() < 0.6:
        return Pair("frac chain", text, gold, True)
    wrong = value + 1
    return Pair("frac chain", text, f"{wrong.numerator}/{wrong.denominator}", False)


def gen_unicode(rng: random.Random) -> Pair:
    length = rng.randint(1, 200)
    pool = "".join(rng.sample(_UNICODE_POOLS, rng.randint(1, len(_UNICODE_POOLS)))) + r"{}\^_()"
    junk = "".join(rng.choice(pool) for _ in range(length))
    if rng.random() < 0.3:  # the same junk on both sides, re-spaced: the same text
        return Pair("unicode", _respace(rng, junk), junk, True)
    return Pair("unicode", junk, str(rng.randint(2, 10**6)), False)  # no digit in junk: cannot equal


def gen_malformed_latex(rng: random.Random) -> Pair:
    a, b = rng.randint(1, 99), rng.randint(1, 99)
    junk = rng.choice([
        rf"\frac{{{a}}}{{", rf"\frac{{{a}}}{{{b}", rf"\frac{{{{{a}}}{{{b}}}", rf"\sqrt[", rf"\sqrt[{a}]{{",
        rf"\left( {a}, {b}", rf"{a} \right)", rf"\begin{{pmatrix}} {a} & {b}", rf"\end{{array}}{a}",
        rf"\boxed{{{a}", rf"}}{{{a}}}{{", r"\\\\\\", rf"${a}", rf"\text{{{a}", rf"^{{{a}}}_{{", rf"\frac{a}",
        rf"\mathrm{{\frac{{{a}}}", rf"{a}\%\%", rf"\{{{a}, {b}", rf"\int_{{{a}}}^{{", r"\\frac\\frac\\frac",
    ])
    # a gold no reading of the junk (two small numbers) can reach
    return Pair("malformed latex", junk, str(10**7 + rng.randint(0, 10**6)), False)


def gen_long_string(rng: random.Random) -> Pair:
    k = rng.randint(10, 300)
    if rng.random() < 0.3:  # under the answer-length cap: a long but decidable sum
        return Pair("long string", "+".join(["1"] * k), str(k), True)
    k = rng.randint(1000, 60_000)
    piece = rng.choice(["1+", "x", "(", r"\frac{1}{2}+", "a" * 7, "  ", "\u00e9"])
    return Pair("long string", piece * (k // len(piece)), str(rng.randint(0, 10**6)), False)


def gen_set_interval(rng: random.Random) -> Pair:
    if rng.random() < 0.5:
        items = rng.sample(range(-20, 40), rng.randint(2, 5))
        gold = r"\{" + ", ".join(map(str, sorted(items))) + r"\}"
        perm = items[:]
        rng.shuffle(perm)
        if rng.random() < 0.5:
            return Pair("set", _respace(rng, r"\{" + ",".join(map(str, perm)) + r"\}"), gold, True)
        perm[rng.randrange(len(perm))] = 100 + rng.randint(0, 50)
        return Pair("set", r"\{" + ",".join(map(str, perm)) + r"\}", gold, False)
    lo, hi = sorted(rng.sample(range(-50, 50), 2))
    left, right = rng.choice("[("), rng.choice("])")
    gold = f"{left}{lo}, {hi}{right}"
    if rng.random() < 0.5:
        return Pair("interval", _respace(rng, f"{left}{lo},{hi}{right}"), gold, True)
    if rng.random() < 0.5:
        flipped = {"[": "(", "(": "["}[left]
        return Pair("interval", f"{flipped}{lo},{hi}{right}", gold, False)
    return Pair("interval", f"{left}{lo},{hi + 1}{right}", gold, False)


def gen_percent_units(rng: random.Random) -> Pair:
    p = rng.randint(1, 99)
    unit = rng.choice(["dollars", "cm", "apples", "meters", "kg"])
    equal = [(f"{p}%", str(p)), (rf"{p}\%", f"{p}/100"), (f"{p} percent", str(Fraction(p, 100))),
             (f"{p} {unit}", str(p)), (rf"\${p}", str(p)), (rf"{p}^\circ", str(p))]
    unequal = [(f"{p}%", str(p + 1)), (f"{p} {unit}", str(p + 1)), (rf"{p}\%", str(Fraction(p + 1, 100))),
               (f"{p}", str(Fraction(p, 100)) if p % 100 else "2")]
    if rng.random() < 0.5:
        return Pair("percent/units", *rng.choice(equal), True)
    return Pair("percent/units", *rng.choice(unequal), False)


GENERATORS: tuple[Callable[[random.Random], Pair], ...] = (
    gen_integer, gen_fraction, gen_polynomial, gen_tower, gen_huge_number, gen_nesting, gen_frac_chain,
    gen_unicode, gen_malformed_latex, gen_long_string, gen_set_interval, gen_percent_units,
)


def generate_pairs(count: int, seed: int = SEED) -> list[Pair]:
    """`count` pairs, the generators taken in turn (each kind about equally often), from `seed`."""
    rng = random.Random(seed)
    return [GENERATORS[i % len(GENERATORS)](rng) for i in range(count)]


# -- the run ------------------------------------------------------------------------------------------
@dataclass
class FuzzReport:
    seconds: list[float]  # per call
    wall: float
    errors: list[str]  # exceptions and wrong verdicts
    unknown: int  # known-unequal pairs judged unknown (allowed)
    threads: int = THREADS

    def summary(self) -> str:
        times = sorted(self.seconds)
        p50 = times[len(times) // 2]
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        return (f"grader fuzz: {len(times)} pairs, {self.threads} threads, timeout {TIMEOUT:g} s: per call "
                f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {times[-1] * 1000:.0f} ms; wall "
                f"{self.wall:.1f} s; {self.unknown} unknown; {len(self.errors)} errors")


def run_fuzz(pairs: list[Pair], threads: int = THREADS) -> FuzzReport:
    """Grade `pairs` with `threads` threads (pair i on thread i mod `threads`), the workers started
    first (a worker's start is not a comparison's time)."""
    start_worker(threads)
    seconds = [0.0] * len(pairs)
    errors: list[str] = []
    unknown = [0] * threads

    def work(t: int) -> None:
        for i in range(t, len(pairs), threads):
            pair = pairs[i]
            t0 = time.perf_counter()
            try:
                got = compare_answers(pair.pred, pair.gold, timeout=TIMEOUT)
            except BaseException as err:  # noqa: BLE001 - any exception is a finding
                errors.append(f"{pair.kind}: {pair.pred!r:.80} vs {pair.gold!r:.40} raised {err!r:.200}")
                continue
            finally:
                seconds[i] = time.perf_counter() - t0
            if pair.equal and got is not True:
                errors.append(f"{pair.kind}: known-equal {pair.pred!r:.80} vs {pair.gold!r:.40} gave {got}")
            elif not pair.equal and got is True:
                errors.append(f"{pair.kind}: known-unequal {pair.pred!r:.80} vs {pair.gold!r:.40} gave True")
            elif got is None:
                unknown[t] += 1

    t0 = time.perf_counter()
    workers = [threading.Thread(target=work, args=(t,), name=f"fuzz-{t}") for t in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()  # a call that never returns is caught by the test's pytest-timeout
    return FuzzReport(seconds, time.perf_counter() - t0, errors, sum(unknown), threads)


def _pair_count() -> int:
    raw = os.environ.get("TTC_FUZZ_PAIRS", str(DEFAULT_PAIRS))
    try:
        count = int(raw)
    except ValueError:
        raise ValueError(f"TTC_FUZZ_PAIRS must be a whole number of pairs, got {raw!r}.") from None
    if count < len(GENERATORS):
        raise ValueError(f"TTC_FUZZ_PAIRS must be at least {len(GENERATORS)} (one pair per kind), got {count}.")
    return count


PAIRS = _pair_count()


def test_generator_covers_every_kind_both_ways_and_is_seeded():
    pairs = generate_pairs(len(GENERATORS) * 50)
    kinds = {p.kind for p in pairs}
    assert {"integer", "fraction", "polynomial", "tower", "huge number", "nesting", "frac chain", "unicode",
            "malformed latex", "long string", "percent/units"} <= kinds and kinds & {"set", "interval"}
    assert any(p.equal for p in pairs) and any(not p.equal for p in pairs)
    assert any("\ud800" in p.pred or "\udc00" in p.pred or "\udfff" in p.pred or "\udbff" in p.pred
               for p in pairs)  # lone surrogates are among the inputs
    assert pairs == generate_pairs(len(GENERATORS) * 50)  # the same seed, the same pairs


# A hang detector, far above the slowest possible run (each call is bounded by about 2 * TIMEOUT
# plus worker restarts, and most take milliseconds).
@pytest.mark.timeout(300 + PAIRS)
def test_fuzzed_pairs_never_raise_hang_or_give_a_wrong_verdict(capsys):
    report = run_fuzz(generate_pairs(PAIRS))
    with capsys.disabled():
        print("\n" + report.summary())
    assert report.errors == []
    assert len(report.seconds) == PAIRS


if __name__ == "__main__":  # python tests/core/test_grading_fuzz.py [PAIRS [THREADS]]
    count = int(sys.argv[1]) if len(sys.argv) > 1 else PAIRS
    result = run_fuzz(generate_pairs(count), int(sys.argv[2]) if len(sys.argv) > 2 else THREADS)
    print(result.summary())
    slowest = sorted(range(count), key=lambda i: -result.seconds[i])[:5]
    pairs = generate_pairs(count)
    print("  slowest: " + "; ".join(f"{pairs[i].kind} {result.seconds[i]:.2f} s" for i in slowest))
    for line in result.errors[:50]:
        print("  " + line)
    sys.exit(1 if result.errors else 0)
