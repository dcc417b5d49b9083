"""The grader's verifier worker: a separate interpreter in which math-verify and sympy decide whether
two answers are equivalent, for `ttc_gym.grading` (which starts it, waits at most a timeout for each
answer and kills it when that runs out).

    python -m ttc_gym.grading.worker PARENT_PID MEMORY_LIMIT_BYTES

Protocol, one JSON object per line: the worker first writes `{"ready": true, "math_verify": bool}`
(whether math-verify imported; without it only the latex2sympy fallback runs; when neither imports it
writes `{"ready": false, "error": str}` and exits: it never evaluates answer text instead), then answers each request
line `{"id": ..., "pred": str, "gold": str}` read from stdin with one line `{"id": ..., "equal":
bool | null}` on stdout. A line that is not a JSON object gets no answer; a comparison that ran out
of memory or recursion depth answers `"equal": null` (it did not complete: no verdict); one that
fails in any other way (a parse error, a request without "pred" / "gold") answers `"equal": false`. The worker ends when its stdin closes or when its parent (PARENT_PID)
is gone (checked every second); Ctrl+C is left to the parent; its address space is capped at
MEMORY_LIMIT_BYTES so that a runaway sympy computation fails instead of swapping the machine; what
libraries print goes to stderr, never into the protocol.

Importing this module does nothing else: sympy and math-verify are imported by `load_checker`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any, TextIO

#: A plain decimal (or scientific) number, compared exactly (see :func:`load_checker`).
DECIMAL_RE = re.compile(r"^\s*[-+]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][-+]?\d{1,4})\s*$")

USAGE = "usage: python -m ttc_gym.grading.worker PARENT_PID MEMORY_LIMIT_BYTES"

#: `equal(pred, gold) -> bool`: the slow-path equivalence check.
Checker = Callable[[str, str], bool]


class CheckerUnavailable(RuntimeError):
    """Neither math-verify nor latex2sympy2_extended imports: there is no parser that does not
    evaluate its input, so the worker refuses to compare (it never hands answer text to `eval`)."""


def load_checker() -> tuple[Checker, bool]:
    """(equal, has_math_verify): imports sympy, latex2sympy2_extended and (when it imports) math-verify,
    and returns the check. Raises :class:`CheckerUnavailable` when no safe parser imports.

    `equal(pred, gold)`: math-verify's `verify(parse(gold), parse(pred))` (each side parsed as
    `$...$` first, then as it is — as it is first when it holds Python's `**`, which is no LaTeX;
    no timeouts of its own; math-verify's removal of trailing unit words is off, since it also
    removes variables: `5t^3-6t` would read `5t^3-6` — units are stripped by `ttc_gym.grading`
    before), then sympy's `simplify(a - b) == 0` on the parsed expressions, or on latex2sympy's
    parse of both strings (`**` read as `^`) when math-verify parsed nothing or is not importable.
    Expressions over different free symbols are never equal. Three rules of ours on top: a decimal
    is exactly the number written (``1.41421356`` is not ``\\sqrt{2}``: math-verify would round it),
    a set ``\\{1,2\\}`` never equals an interval or tuple ``(1,2)``, and a free ``i`` is the
    imaginary unit (``i^2 = -1``; math-verify reads it as a variable).

    **No answer text is ever evaluated**: sympy's `parse_expr`/`sympify` run Python's `eval` on
    their input (`__import__('os')...` would run), so they are never called on an answer. Both
    parsers used here build the expression from a grammar (math-verify hands sympy's `parse_expr`
    only its own regex matches of digits, operators and spaces).
    """
    import sympy

    try:
        from latex2sympy2_extended import latex2sympy
    except Exception:  # broken or missing: math-verify (which needs it) will not import either
        latex2sympy = None
    try:
        from latex2sympy2_extended.latex2sympy2 import NormalizationConfig
        from math_verify import (
            ExprExtractionConfig,
            LatexExtractionConfig,
            parse,
            verify,
        )

        extraction = [
            LatexExtractionConfig(normalization_config=NormalizationConfig(
                basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False)),
            ExprExtractionConfig(),
        ]
    except Exception:  # not installed, or broken: the latex2sympy path still works
        parse = verify = None
    if parse is None and latex2sympy is None:
        raise CheckerUnavailable(
            "neither math-verify nor latex2sympy2_extended imports in the grading worker, and the "
            "grader never evaluates answer text with sympy's parse_expr; install them: "
            "pip install math-verify"
        )

    def mv_parse(s: str) -> list:
        forms = (s, "$" + s + "$") if "**" in s else ("$" + s + "$", s)
        got = parse(forms[0], extraction_config=extraction, parsing_timeout=None)
        return got if got else parse(forms[1], extraction_config=extraction, parsing_timeout=None)

    def grammar_parse(s: str) -> Any:
        """latex2sympy's parse of `s` (a grammar, no eval), or None when it does not parse."""
        if latex2sympy is None:
            return None
        try:
            return latex2sympy(s.replace("**", "^"))
        except (MemoryError, RecursionError):
            raise  # out of resources: no verdict (see handle_line)
        except Exception:  # the parser raises plain Exception on bad input
            return None

    def imaginary(x: Any) -> Any:
        """``x`` with a free symbol named ``i`` read as the imaginary unit."""
        if not isinstance(x, sympy.Expr):
            return x
        return x.subs({s: sympy.I for s in x.free_symbols if getattr(s, "name", "") == "i"})

    def sympy_equal(a: Any, b: Any) -> bool:
        a, b = imaginary(a), imaginary(b)
        if not (isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr)):
            return False
        if a.free_symbols != b.free_symbols and not (a.is_number and b.is_number):
            return False
        return sympy.simplify(a - b) == 0

    def parsed(s: str) -> Any:
        """The first expression math-verify finds in ``s``, else latex2sympy's parse, else None."""
        got = mv_parse(s) if parse is not None else []
        return got[0] if got else grammar_parse(s)

    def exact_against_decimal(decimal: str, other: str) -> bool:
        """A decimal is exactly the number written: ``other`` must equal it, with no rounding."""
        value = Fraction(decimal)
        x = imaginary(parsed(other))
        if not (isinstance(x, sympy.Expr) and x.is_number):
            return False
        return sympy.simplify(x - sympy.Rational(value.numerator, value.denominator)) == 0

    def kind(x: Any) -> str:
        if isinstance(x, sympy.FiniteSet):
            return "set"
        if isinstance(x, (sympy.Interval, sympy.Union, sympy.Tuple, tuple)):
            return "ordered"
        return "other"

    def equal(pred: str, gold: str) -> bool:
        for decimal, other in ((gold, pred), (pred, gold)):
            if DECIMAL_RE.match(decimal) and not DECIMAL_RE.match(other):
                return exact_against_decimal(decimal.strip(), other)
        g = p = []
        if parse is not None:
            g = mv_parse(gold)
            p = mv_parse(pred)
            if g and p and {kind(g[0]), kind(p[0])} == {"set", "ordered"}:
                return False  # {1,2} is no interval or tuple (math-verify lets them meet)
            if g and p and verify(g, p, timeout_seconds=None):
                return True
        if g and p:
            return bool(sympy_equal(g[0], p[0]))
        a, b = grammar_parse(gold), grammar_parse(pred)
        if a is None or b is None:
            return False
        return bool(sympy_equal(a, b))

    return equal, parse is not None


def handle_line(line: str, equal: Checker) -> str | None:
    """The answer line (without newline) to one request line, or None for a line that is not a JSON
    object. `equal` running out of memory or recursion depth answers "equal": null (no verdict); any
    other failure of it, or a request without "pred" / "gold", answers "equal": false."""
    try:
        request = json.loads(line)
    except ValueError:
        return None
    if not isinstance(request, dict):
        return None
    ok: bool | None
    try:
        ok = bool(equal(request["pred"], request["gold"]))
    except (MemoryError, RecursionError):  # it did not complete: unknown, not "not equal"
        ok = None
    except BaseException:  # the comparison must never end the worker
        ok = False
    return json.dumps({"id": request.get("id"), "equal": ok})


#: Pairs compared once before the ready line: the first parse and simplification of each kind loads
#: parser tables and fills sympy's caches (about a second in all on a busy 2-core machine), which
#: would otherwise land on the first callers' timeouts (a worker's start does not count in them).
WARM_UP_PAIRS = (("3x+5", "5+3x"), ("(x-2)(x+2)", "x^2-4"), ("\\frac{3\\sqrt{5}}{2}", "3\\sqrt{5}/2"),
                 ("\\sqrt{12}", "2\\sqrt{3}"), ("0.5", "\\frac{1}{2}"), ("x^2", "x**2"))


def warm_up(equal: Checker) -> None:
    """Compare :data:`WARM_UP_PAIRS` (verdicts unused; a failure only leaves the worker cold)."""
    for pred, gold in WARM_UP_PAIRS:
        try:
            equal(pred, gold)
        except Exception:  # noqa: BLE001 - warming must never stop the worker
            pass


def serve(lines: Iterable[str], out: TextIO, equal: Checker, *, math_verify: bool) -> None:
    """Write the ready line, then answer every request of `lines` on `out`, flushing each."""
    out.write(json.dumps({"ready": True, "math_verify": math_verify}) + "\n")
    out.flush()
    for line in lines:
        reply = handle_line(line, equal)
        if reply is not None:
            out.write(reply + "\n")
            out.flush()


def exit_when_orphaned(parent_pid: int, interval: float = 1.0) -> None:
    """Loop forever; end the process at once when its parent is no longer `parent_pid`."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            os._exit(0)


def limit_memory(limit: int) -> None:
    """Cap the process's address space at `limit` bytes where the platform allows (Unix)."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # no `resource` (Windows), or a hard limit already lower: run without the cap


def parse_args(argv: list[str]) -> tuple[int, int]:
    """(parent_pid, memory_limit) from the command line; ValueError naming what was expected."""
    if len(argv) != 2:
        raise ValueError(f"expected 2 arguments, PARENT_PID and MEMORY_LIMIT_BYTES, got {len(argv)}: {argv!r}.")
    try:
        parent_pid, limit = int(argv[0]), int(argv[1])
    except ValueError:
        raise ValueError(f"PARENT_PID and MEMORY_LIMIT_BYTES must be integers, got {argv!r}.") from None
    if parent_pid < 1 or limit < 1:
        raise ValueError(f"PARENT_PID and MEMORY_LIMIT_BYTES must be >= 1, got {argv!r}.")
    return parent_pid, limit


def main(argv: list[str] | None = None) -> int:
    """Run the worker on this process's stdin and stdout (see the module docstring)."""
    try:
        parent_pid, limit = parse_args(sys.argv[1:] if argv is None else list(argv))
    except ValueError as err:
        print(f"{USAGE}\nerror: {err}", file=sys.stderr)
        return 2
    out = sys.stdout
    sys.stdout = sys.stderr  # anything printed by libraries must not corrupt the protocol
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    threading.Thread(target=exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    limit_memory(limit)
    logging.disable(logging.CRITICAL)
    try:
        equal, has_math_verify = load_checker()
    except CheckerUnavailable as err:
        out.write(json.dumps({"ready": False, "error": str(err)}) + "\n")
        out.flush()
        return 1
    warm_up(equal)
    serve(sys.stdin, out, equal, math_verify=has_math_verify)
    return 0


if __name__ == "__main__":
    sys.exit(main())
