r"""The 0/1 final-answer reward ``r(x, z)``: extract the model's answer, decide if it equals the gold.

Public API:

- :func:`grade` — extract (:func:`ttc_gym.answer_extraction.extract_answer`) and compare.
- :func:`compare_answers` — mathematical equivalence of two answer strings, time-limited: True,
  False, or None when the comparison did not complete (unknown).
- :func:`answers_equivalent` — the same as a bool (an unknown counts as not equivalent).
- :func:`normalize_answer` — a cheap canonical key for majority voting (maj@k).
- :func:`start_worker` / :func:`stop_worker` — manage the verifier subprocess (optional; it starts
  on first need and stops at exit).

How equivalence is decided (:func:`compare_answers`), cheapest first:

1. Absurd input is rejected (``False``): empty, longer than :data:`MAX_ANSWER_CHARS`, numeric powers
   whose value would have more than :data:`MAX_POWER_DIGITS` digits (``9^{9^{9^9}}``,
   ``10**10**10**10``), factorials of numbers above 10 000, brackets nested deeper than
   :data:`MAX_NESTING_DEPTH`.
2. Plain numbers (integers, decimals, ``a/b``, ``\frac{a}{b}``, thousands commas, ``x = 5``,
   ``18 dollars``, a unit set in text: ``12\,\mathrm{m}``; a bare ``12m`` is a product) are
   compared exactly with :class:`fractions.Fraction` in-process — no sympy. **Percent rule**: when
   exactly one side carries ``%``, ``p%`` matches both ``p`` and ``p/100`` (``"50%"`` equals
   ``"50"`` and ``"0.5"``, while ``"50"`` does not equal ``"0.5"``); when both do, the numbers
   before ``%`` are compared. Decimals are exact: ``0.333`` is not ``1/3``.
3. Equal :func:`normalize_answer` keys mean equal (``(1, 2)`` vs ``(1,2)``, ``\dfrac`` vs ``\frac``).
4. Otherwise math-verify — ``verify(parse(gold), parse(pred))``, both sides parsed, gold first,
   its own ``signal.alarm`` timeouts disabled — with a sympy fallback (``simplify(a - b) == 0``),
   run in a persistent worker subprocess. The call waits at most ``timeout`` seconds for it; on
   timeout the worker is killed (and restarted on the next call) and the answer is unknown
   (``None``: the comparison did not complete). If the worker dies (killed, crashed, out of
   memory) or cannot be started or written to, the request is retried once on a fresh worker;
   a second failure is unknown too. This works from any thread, unlike math-verify's own
   timeouts. The worker is the module :mod:`ttc_gym.grading_worker` run as ``python -m`` in a
   fresh interpreter started with ``subprocess`` (fork + exec, so a parent that has loaded torch
   is safe, and the parent's ``__main__`` is never re-imported); the first slow-path call waits for it to start (about 1–2 s,
   not counted in ``timeout``).

Verdicts are memoized (``functools.lru_cache``, :data:`CACHE_SIZE` entries) on ``(pred, gold,
timeout)``; an unknown never is, so a comparison cut short by a crash or a stall is tried again on
the next call. Importing this module is cheap and silent: math-verify and sympy are only imported in
the worker.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import math
import os
import queue
import re
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ttc_gym.answer_extraction import BOX_COMMANDS, check_text, extract_answer, extract_boxed, gsm8k_answer

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

#: Answers longer than this (after extraction) are never equivalent to anything.
MAX_ANSWER_CHARS = 1000
#: A numeric power (tower) whose value would have more digits than this is rejected up front.
MAX_POWER_DIGITS = 100_000
#: Brackets ((), [], {}) nested deeper than this are rejected up front: the LaTeX parser's time
#: grows steeply with depth (twenty nested ``\frac`` take seconds), and no answer needs it.
MAX_NESTING_DEPTH = 20
#: Entries kept by the (pred, gold) equivalence cache. Inputs longer than 2 * MAX_ANSWER_CHARS
#: are rejected before the cache, so it holds at most ~64 MB even when filled with junk.
CACHE_SIZE = 16_384
#: Seconds allowed for the worker subprocess to start (import sympy and math-verify).
WORKER_STARTUP_TIMEOUT = 120.0


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------




def _check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"timeout must be a number of seconds, got {type(value).__name__}: {value!r:.80}."
        )
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"timeout must be a positive finite number of seconds, got {value}.")
    return value


# --------------------------------------------------------------------------------------------
# Normalization (cheap, pure)
# --------------------------------------------------------------------------------------------

_SPACING_RE = re.compile(r"\\[!,;: ]|\\left\b|\\right\b|\\displaystyle\b|~")
_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}"
)
_FRAC_CMD_RE = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_FRAC_SHORT_RE = re.compile(r"\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])")
_FRAC_HALF_SHORT_RE = re.compile(r"\\frac\s*(\{[^{}]*\})\s*([0-9a-zA-Z])")
_SQRT_SHORT_RE = re.compile(r"\\sqrt\s*([0-9a-zA-Z])")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")
_ASSIGN_RE = re.compile(r"^[a-zA-Z](?:_\{?\w{1,8}\}?)?\s*=(?!=)")
_WS_RE = re.compile(r"\s+")
# "18 dollars", "5 apples", "12 cm": a number followed by up to four words of letters only.
_NUMBER_WITH_WORDS_RE = re.compile(
    r"^([-+]?[\d.,/]+(?:\\?%)?)\s+([A-Za-z]{2,}(?:\s+[A-Za-z]{2,}){0,3})$"
)
_MATH_WORDS = frozenset(
    {
        "pi",
        "sqrt",
        "sin",
        "cos",
        "tan",
        "cot",
        "sec",
        "csc",
        "log",
        "ln",
        "exp",
        "inf",
        "infinity",
        "i",
        "e",
    }
)
_WORD_RE = re.compile(r"^[A-Za-z][A-Za-z ]*[A-Za-z]$")
# "12 \text{m}", "5\,\mathrm{kg}": a number and a unit set in text (any length, one letter too).
_NUMBER_TEXT_UNIT_RE = re.compile(
    r"^\s*([-+]?[\d.,/]+)\s*\\(?:text|textrm|mathrm|mbox)\s*\{\s*([A-Za-z]+(?:\s+[A-Za-z]+){0,3})\s*\}\s*$"
)

# Plain numbers (whitespace already removed): -1,234.5 | -12 | 3.5 | .5 | -3/4 | \frac{-3}{4}
_PLAIN_NUMBER_RE = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)$")
_SLASH_FRACTION_RE = re.compile(r"^([-+]?)(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)$")
_LATEX_FRACTION_RE = re.compile(r"^([-+]?)\\frac\{([-+]?\d+(?:\.\d+)?)\}\{([-+]?\d+(?:\.\d+)?)\}$")


def _strip_delimiters(ans: str) -> str:
    """Remove math delimiters and a surrounding ``\\boxed{}``."""
    ans = ans.strip()
    if any(cmd in ans for cmd in BOX_COMMANDS):
        boxed = extract_boxed(ans)
        if boxed is not None:
            ans = boxed
    ans = ans.replace("\\$", "").replace("$", "")
    ans = ans.strip()
    for left, right in (("\\(", "\\)"), ("\\[", "\\]")):
        if ans.startswith(left) and ans.endswith(right):
            ans = ans[len(left) : -len(right)].strip()
    return ans


def _light_normalize(ans: str) -> str:
    """Meaning-preserving cleanup shared by the key and the number fast path (no whitespace removal)."""
    ans = _strip_delimiters(ans)
    ans = _SPACING_RE.sub(" ", ans)
    m = _NUMBER_TEXT_UNIT_RE.match(ans)  # "12 \text{m}": a unit in text (a bare "12m" is a product)
    if m and m.group(2).lower() not in _MATH_WORDS:
        ans = m.group(1)
    for _ in range(3):  # \text{\textbf{x}}: a few rounds, never unbounded
        new = _TEXT_CMD_RE.sub(r"\1", ans)
        if new == ans:
            break
        ans = new
    ans = _FRAC_CMD_RE.sub(r"\\frac", ans)
    ans = _FRAC_SHORT_RE.sub(r"\\frac{\1}{\2}", ans)
    ans = _FRAC_HALF_SHORT_RE.sub(r"\\frac\1{\2}", ans)
    ans = _SQRT_SHORT_RE.sub(r"\\sqrt{\1}", ans)
    ans = _DEGREE_RE.sub("", ans)
    ans = ans.strip()
    if ans.count("=") == 1:
        ans = _ASSIGN_RE.sub("", ans).strip()
    while ans.endswith("."):
        ans = ans[:-1].rstrip()
    m = _NUMBER_WITH_WORDS_RE.match(ans)
    if m and not any(w.lower() in _MATH_WORDS for w in m.group(2).split()):
        percent = m.group(2).lower() in ("percent", "per cent") and not m.group(1).endswith("%")
        ans = m.group(1) + ("%" if percent else "")
    return ans


def _parse_number(ans: str) -> tuple[Fraction, bool] | None:
    """``(value, had_percent)`` if ``ans`` (whitespace-free, lightly normalized) is a plain number."""
    percent = False
    if ans.endswith("\\%"):
        ans, percent = ans[:-2], True
    elif ans.endswith("%"):
        ans, percent = ans[:-1], True
    if not ans or len(ans) > 400:  # Fraction() is fast, but keep the fast path trivially cheap
        return None
    try:
        if _PLAIN_NUMBER_RE.match(ans):
            return Fraction(ans.replace(",", "")), percent
        m = _SLASH_FRACTION_RE.match(ans) or _LATEX_FRACTION_RE.match(ans)
        if m:
            sign, num, den = m.groups()
            den_value = Fraction(den)
            if den_value == 0:
                return None
            value = Fraction(num) / den_value
            return (-value if sign == "-" else value), percent
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _format_fraction(value: Fraction) -> str:
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def normalize_answer(ans: str) -> str:
    r"""A canonical key for majority voting over answers (cheap, pure, never calls sympy).

    - ``\boxed{}``, ``$``, ``\(\)``, ``\[\]``, ``\left``/``\right``, LaTeX spacing, ``\text{}``-like
      wrappers, degree signs, a leading single-variable assignment (``x = 5`` -> ``5``), words
      after a number (``18 dollars`` -> ``18``; not ``2 pi``), trailing periods and all whitespace
      are removed; ``\dfrac``/``\tfrac`` -> ``\frac``,
      ``\frac12`` -> ``\frac{1}{2}``, ``\sqrt2`` -> ``\sqrt{2}``.
    - Plain numbers become their exact reduced value: ``"1,000"``, ``"1000.0"`` -> ``"1000"``;
      ``"0.5"``, ``"\frac{2}{4}"``, ``"1/2"`` -> ``"1/2"``; ``"-0"`` -> ``"0"``.
    - Percent: ``"50%"`` / ``"50\%"`` -> ``"50"`` (the number as written), so it votes with
      ``"50"``; it does *not* share a key with ``"0.5"`` although :func:`answers_equivalent`
      accepts that pair (a key cannot encode a non-transitive rule).
    - Words (``"Yes"``, ``"No solution"``) are lower-cased; single letters (variables, choices) keep
      their case.

    Two non-empty answers of at most ``2 * MAX_ANSWER_CHARS`` characters with equal keys are
    always :func:`answers_equivalent`; the converse does not hold (``2x+1`` vs ``1+2x`` differ as
    keys). Only the first ``4 * MAX_ANSWER_CHARS`` characters of an absurdly long answer count.
    """
    ans = check_text("ans", ans)
    if len(ans) > 4 * MAX_ANSWER_CHARS:
        ans = ans[: 4 * MAX_ANSWER_CHARS]  # keys of absurd answers need not be exact
    light = _light_normalize(ans)
    key = _WS_RE.sub("", light)
    number = _parse_number(key)
    if number is not None:
        return _format_fraction(number[0])
    if _WORD_RE.match(light) and " " in light or (len(key) > 1 and key.isalpha()):
        return _WS_RE.sub(" ", light).lower()
    return key


# --------------------------------------------------------------------------------------------
# Up-front rejection of inputs that would make sympy hang
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The verifier worker subprocess
# --------------------------------------------------------------------------------------------

# The worker is the module `ttc_gym.grading_worker`, run as `python -m` in a fresh interpreter; its
# docstring gives the protocol (JSON lines: a ready line, then one {"id", "equal"} per {"id", "pred", "gold"}).
WORKER_MODULE = "ttc_gym.grading_worker"

#: Address-space cap for the worker (bytes), so a runaway sympy computation fails instead of
#: swapping the machine; it is killed on timeout anyway.
_WORKER_MEMORY_LIMIT = 4 * 1024**3


def _worker_environment() -> dict[str, str]:
    """The worker's environment: this one, with this process's copy of ttc_gym first on the path
    (the worker runs the parent's code) and one BLAS thread (it does no linear algebra; fewer
    threads reserve less of its capped address space)."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    return env


def _pump(stream: Any, sink: queue.SimpleQueue) -> None:
    """Reader thread: every line of the worker's stdout into ``sink``; None at EOF."""
    try:
        for line in stream:
            try:
                sink.put(json.loads(line))
            except ValueError:
                continue
    except (OSError, ValueError):
        pass
    finally:
        sink.put(None)


#: :meth:`_Worker._attempt`'s "the worker died, retry on a fresh one" outcome.
_DIED = object()
# What the reply wait gets when it runs out of time (the reply queue's None means end of output).
_STALLED = object()


class _Worker:
    """One persistent verifier subprocess; one request at a time (a lock serializes callers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._replies: queue.SimpleQueue | None = None
        self._next_id = 0
        self._pid = os.getpid()

    def _reset_after_fork(self) -> None:
        # A forked child must not share the parent's worker pipes or a lock held at fork time.
        self._lock = threading.Lock()
        self._proc = None
        self._replies = None
        self._pid = os.getpid()

    def _start(self) -> None:
        cmd = [sys.executable]
        if sys.version_info >= (3, 11):
            cmd.append("-P")  # do not put the working directory on sys.path
        cmd += ["-m", WORKER_MODULE, str(os.getpid()), str(_WORKER_MEMORY_LIMIT)]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=_worker_environment(),
        )
        replies: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(
            target=_pump, args=(proc.stdout, replies), daemon=True, name="ttc-gym-grader"
        ).start()
        try:
            hello = replies.get(timeout=WORKER_STARTUP_TIMEOUT)
        except queue.Empty:
            hello = None
        if not (isinstance(hello, dict) and hello.get("ready")):
            self._kill(proc)
            raise RuntimeError(
                f"The grading worker ({sys.executable} -m {WORKER_MODULE}) did not start within "
                f"{WORKER_STARTUP_TIMEOUT:.0f} s: expected a ready message, got {hello!r} (None: it "
                f"exited). Check that `{sys.executable} -m {WORKER_MODULE} {os.getpid()} "
                f"{_WORKER_MEMORY_LIMIT}` starts (sympy and math-verify must import)."
            )
        self._proc, self._replies = proc, replies

    @staticmethod
    def _kill(proc: subprocess.Popen | None) -> None:
        if proc is None:
            return
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):  # e.g. a broken pipe on flush
                    stream.close()

    def start(self) -> None:
        if os.getpid() != self._pid:
            self._reset_after_fork()
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()

    def stop(self) -> None:
        if os.getpid() != self._pid:
            self._reset_after_fork()
            return
        with self._lock:
            self._kill(self._proc)
            self._proc = self._replies = None

    def _discard(self) -> None:
        """Kill the current worker (if any); the next comparison starts a fresh one."""
        self._kill(self._proc)
        self._proc = self._replies = None

    def _send(self, proc: subprocess.Popen, line: str) -> None:
        """Write one request line to worker ``proc`` (the one place a request is sent)."""
        proc.stdin.write(line)
        proc.stdin.flush()

    def _attempt(self, pred: str, gold: str, timeout: float) -> bool | None | object:
        """One try: the worker's verdict, None (it did not answer within ``timeout``, or gave up
        on this comparison), or :data:`_DIED` (it died, or could not be started or written to)."""
        if self._proc is None or self._proc.poll() is not None:
            self._discard()
            try:
                self._start()
            except (RuntimeError, OSError) as err:
                warnings.warn(f"ttc_gym.grading: {err}", RuntimeWarning, stacklevel=4)
                return _DIED
        self._next_id += 1
        req_id = self._next_id
        try:
            self._send(self._proc, json.dumps({"id": req_id, "pred": pred, "gold": gold}) + "\n")
        except (OSError, ValueError):  # e.g. a broken pipe: it died between requests
            self._discard()
            return _DIED
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                reply = self._replies.get(timeout=remaining) if remaining > 0 else _STALLED
            except queue.Empty:
                reply = _STALLED
            if reply is _STALLED:  # too slow, or stalled: killed, never retried (bounded time)
                self._discard()
                return None
            if reply is None:  # end of its output: it died (killed, out of memory, crashed)
                self._discard()
                return _DIED
            if reply.get("id") == req_id:
                equal = reply.get("equal")
                return equal if isinstance(equal, bool) else None

    def equal(self, pred: str, gold: str, timeout: float) -> bool | None:
        """True/False from the worker, or None when the comparison did not complete.

        It did not complete when the worker did not answer within ``timeout`` (it is then killed;
        the next call starts a fresh one), when the worker answered that it gave up (out of
        memory or recursion depth), or when the worker died, could not be written to or could
        not be started on two tries in a row: after the first such failure the request is sent
        again, once, to a fresh worker (with a fresh ``timeout``)."""
        if os.getpid() != self._pid:
            self._reset_after_fork()
        with self._lock:
            for _ in range(2):
                outcome = self._attempt(pred, gold, timeout)
                if outcome is not _DIED:
                    return outcome  # type: ignore[return-value]
            return None


_WORKER = _Worker()
atexit.register(_WORKER.stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WORKER._reset_after_fork)


def start_worker() -> None:
    """Start the verifier subprocess now (otherwise it starts on the first slow-path comparison)."""
    _WORKER.start()


def stop_worker() -> None:
    """Stop the verifier subprocess (it restarts on the next need; also done at exit)."""
    _WORKER.stop()


# --------------------------------------------------------------------------------------------
# Equivalence and grading
# --------------------------------------------------------------------------------------------


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
    pred_num = _parse_number(_WS_RE.sub("", pred_light))
    gold_num = _parse_number(_WS_RE.sub("", gold_light))
    if pred_num is not None and gold_num is not None:
        return _numbers_equal(pred_num, gold_num)
    if normalize_answer(pred) == normalize_answer(gold):
        return True
    if _too_hard(pred_light) or _too_hard(gold_light) or _not_math(pred_light):
        return False
    result = _WORKER.equal(_strip_delimiters(pred), _strip_delimiters(gold), timeout)
    if result is None:
        raise _Incomplete
    return result


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
