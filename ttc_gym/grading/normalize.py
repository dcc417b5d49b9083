r"""Cheap, pure normalization of answer strings: delimiters and wrappers removed, plain numbers
parsed exactly (:class:`fractions.Fraction`), and :func:`normalize_answer`, the maj@k voting key."""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

from ttc_gym.answer_extraction import BOX_COMMANDS, check_text, extract_boxed
from ttc_gym.grading.limits import MAX_ANSWER_CHARS

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
# Whitespace between digits separates numbers ("2 3" is not 23); after a comma it makes a list
# ("1, 234" is not 1234). A side holding such a gap is never read as one number.
_DIGIT_GAP_RE = re.compile(r"\d\s+\d")
_NUMBER_GAP_RE = re.compile(r"[\d.,]\s+[\d.]")
# LaTeX thousands separators: 1\,234 and 1{,}234 (before \, becomes a space).
_THIN_THOUSANDS_RE = re.compile(r"(?<=\d)(?:\\,|\{,\})(?=\d{3}(?!\d))")
_COLOR_RE = re.compile(r"\\color\s*\{[^{}]*\}")
_TEXTCOLOR_RE = re.compile(r"\\textcolor\s*\{[^{}]*\}\s*\{([^{}]*)\}")
_EMPTYSET_RE = re.compile(r"\\varnothing(?![a-zA-Z])|∅|\\\{\s*\\\}")
# "5 = x": the value on the left of a lone variable (the mirror of _ASSIGN_RE).
_ASSIGN_RIGHT_RE = re.compile(r"(?<![=<>!])=\s*[a-zA-Z](?:_\{?\w{1,8}\}?)?\s*$")
# A chained inequality in one variable, "1 < x < 2" or "-1 \le x < 3": the interval it describes.
_LESS = r"(<=|<|\\leq?(?![a-zA-Z])|≤)"
_CHAIN_RE = re.compile(r"^\s*([^<>=≤\s]+)\s*" + _LESS + r"\s*[a-zA-Z]\s*" + _LESS + r"\s*([^<>=≤\s]+)\s*$")
# Unicode that stands for ASCII math: vulgar fractions, the minus sign, no-break spaces.
_VULGAR = {ch: unicodedata.numeric(ch) for ch in "½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞⅐⅑⅒"}
_UNICODE_ASCII = {"−": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "⁄": "/"}
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

# Plain numbers (whitespace already removed): -1,234.5 | -12 | 3.5 | .5 | 1e3 | 1.0e+02 | -3/4 |
# \frac{-3}{4} | 0.\overline{3}. "<decimal>e<integer>" is scientific notation (not Euler's e).
_PLAIN_NUMBER_RE = re.compile(
    r"^[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d*)?|\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,4})?$"
)
_REPEATING_RE = re.compile(r"^([-+]?)(\d*)\.(\d*)\\overline\{(\d{1,100})\}$")
_SLASH_FRACTION_RE = re.compile(r"^([-+]?)(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)$")
_LATEX_FRACTION_RE = re.compile(r"^([-+]?)\\frac\{([-+]?\d+(?:\.\d+)?)\}\{([-+]?\d+(?:\.\d+)?)\}$")


def _strip_delimiters(ans: str) -> str:
    """Remove math delimiters and a surrounding ``\\boxed{}``; Unicode that stands for ASCII math
    becomes it (``½`` -> ``\\frac{1}{2}``, ``−`` -> ``-``), invisible format characters (zero-width
    spaces) are removed."""
    ans = _ascii_math(ans).strip()
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


def _ascii_math(ans: str) -> str:
    if ans.isascii():
        return ans
    out = []
    for ch in ans:
        if ch in _VULGAR:
            value = Fraction(_VULGAR[ch]).limit_denominator(10)
            out.append(f"\\frac{{{value.numerator}}}{{{value.denominator}}}")
        elif ch in _UNICODE_ASCII:
            out.append(_UNICODE_ASCII[ch])
        elif unicodedata.category(ch) != "Cf" or (out and out[-1].endswith("\\")):
            out.append(ch)  # zero-width spaces, joiners, BOMs are invisible: dropped (unless escaped)
    return "".join(out)


def _unwrap_braces(ans: str) -> str:
    """``{5}`` -> ``5``: plain group braces around the whole answer (as ``\\color{red}{5}`` leaves)."""
    while ans.startswith("{") and ans.endswith("}"):
        depth = 0
        for i, ch in enumerate(ans):
            depth += ch == "{"
            depth -= ch == "}"
            if depth == 0 and i < len(ans) - 1:
                return ans  # "{a}{b}": the first group closes early
        ans = ans[1:-1].strip()
    return ans


def _chain_to_interval(ans: str) -> str:
    """``a < x < b`` -> ``(a,b)``, ``a \\le x < b`` -> ``[a,b)``: a chained inequality in one variable
    is the interval it describes (so it meets interval answers)."""
    m = _CHAIN_RE.match(ans)
    if not m:
        return ans
    low, op1, op2, high = m.groups()
    left = "(" if op1 == "<" else "["
    right = ")" if op2 == "<" else "]"
    return f"{left}{low},{high}{right}"


def _light_normalize(ans: str) -> str:
    """Meaning-preserving cleanup shared by the key and the number fast path (no whitespace removal)."""
    ans = _strip_delimiters(ans)
    ans = _THIN_THOUSANDS_RE.sub(",", ans)
    ans = _SPACING_RE.sub(" ", ans)
    ans = _unwrap_braces(_TEXTCOLOR_RE.sub(r"\1", _COLOR_RE.sub("", ans)).strip())
    ans = _EMPTYSET_RE.sub(r"\\emptyset", ans)
    m = _NUMBER_TEXT_UNIT_RE.match(ans)  # "12 \text{m}": a unit in text (a bare "12m" is a product)
    if m and m.group(2).lower() not in _MATH_WORDS:
        ans = m.group(1)
    while True:  # \text{\textbf{x}}: innermost first; each round shortens the text, so it ends
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
        ans = _ASSIGN_RIGHT_RE.sub("", _ASSIGN_RE.sub("", ans)).strip()
    ans = _chain_to_interval(ans)
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
    if not ans or len(ans) > 4 * MAX_ANSWER_CHARS:  # Fraction() is fast on text this short
        return None
    try:
        if _PLAIN_NUMBER_RE.match(ans):
            return Fraction(ans.replace(",", "")), percent
        m = _REPEATING_RE.match(ans)
        if m:  # 0.1\overline{6} = 1/10 + 6/90: the repeating block over 10^k - 1, shifted
            sign, whole, fixed, block = m.groups()
            shift = 10 ** len(fixed)
            value = Fraction(int(whole or "0")) + Fraction(int(fixed or "0"), shift)
            value += Fraction(int(block), (10 ** len(block) - 1) * shift)
            return (-value if sign == "-" else value), percent
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


def _compact(light: str) -> str:
    """``light`` without whitespace, except one space where whitespace separates two digits."""
    return _WS_RE.sub(
        lambda m: " " if 0 < m.start() and m.end() < len(light) and light[m.start() - 1].isdigit()
        and light[m.end()].isdigit() else "",
        light,
    )


def number_value(light: str) -> tuple[Fraction, bool] | None:
    """``(value, had_percent)`` when the lightly normalized ``light`` is one plain number: never when
    whitespace separates digits (``2 3``) or follows a comma before a digit (``1, 234``: a list)."""
    if _NUMBER_GAP_RE.search(light):
        return None
    return _parse_number(_WS_RE.sub("", light))


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
    key = _compact(light)
    number = number_value(light)
    if number is not None:
        return _format_fraction(number[0])
    if _WORD_RE.match(light) and " " in light or (len(key) > 1 and key.isalpha()):
        return _WS_RE.sub(" ", light).lower()
    return key
