"""Pull a model's final answer out of free text: ``\\boxed{}``, "the answer is …", last number.

Every function here is pure, cheap, never raises on ``str`` input and runs in time linear in a
bounded window of the input (only the last :data:`SCAN_CHARS` characters are looked at, brace
nesting is capped at :data:`MAX_BRACE_DEPTH`, and no regex has nested quantifiers), so
adversarial model output (100 kB of ``{``, an unclosed ``\\boxed{``) cannot stall a rollout.

>>> extract_boxed(r"so \\boxed{\\frac{1}{2}}.")
'\\\\frac{1}{2}'
>>> extract_answer("Thus, the answer is $42$.")
'42'
>>> extract_answer("I got 3 apples and then 1,250 more")
'1250'
>>> gsm8k_answer("...\\n#### 1,000")
'1000'
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "BOX_COMMANDS",
    "MAX_BRACE_DEPTH",
    "SCAN_CHARS",
    "check_text",
    "closing_brace",
    "extract_answer",
    "extract_boxed",
    "extract_last_number",
    "first_box_command",
    "gsm8k_answer",
]

#: Only the tail of a text is searched: final answers come last, and this bounds the work.
SCAN_CHARS = 20_000
#: A ``\boxed{`` whose braces nest deeper than this is treated as malformed.
MAX_BRACE_DEPTH = 200
#: At most this many ``\boxed`` candidates are tried (from the last backwards) when later ones
#: are malformed, so the scan stays linear.
_MAX_BOX_CANDIDATES = 8
#: A phrase answer ("the answer is …") longer than this is not an answer but prose.
_MAX_PHRASE_ANSWER = 300

#: The commands whose argument is a committed answer.
BOX_COMMANDS = ("\\boxed", "\\fbox")
# A brace, escaped (``\{``, ``\}``: content, e.g. set notation) or not (structure).
_BRACE_RE = re.compile(r"\\[{}]|[{}]")


def check_text(name: str, value: Any) -> str:
    """`value` if it is a str; else a TypeError naming `name` and what came (the text checks of
    this module and of `ttc_gym.grading`)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}: {value!r:.80}.")
    return value


def closing_brace(text: str, start: int = 0) -> int | None:
    r"""Index of the first ``}`` at or after ``start`` that closes a brace opened before ``start``
    (a ``}`` matching no ``{`` between ``start`` and it), or None when there is none.

    The one brace scanner of ttc-gym: the argument of ``\boxed{`` is what lies between its ``{``
    and ``closing_brace(text, index of "{" + 1)``; a forced answer after a prompt that ends inside
    ``\boxed{`` ends at ``closing_brace(answer)``. Escaped braces ``\{`` ``\}`` (set notation) are
    content, not structure. Nesting deeper than :data:`MAX_BRACE_DEPTH` counts as malformed (None).
    Time linear in ``len(text) - start``.
    """
    depth = 1
    for m in _BRACE_RE.finditer(check_text("text", text), start):
        brace = m.group()
        if brace == "{":
            depth += 1
            if depth > MAX_BRACE_DEPTH:
                return None
        elif brace == "}":
            depth -= 1
            if depth == 0:
                return m.start()
    return None


def _is_box_command(text: str, end: int) -> bool:
    r"""Whether the box command's name that ends at ``end`` is the command itself (``\boxedx`` is another)."""
    return not (end < len(text) and text[end].isalpha())


def first_box_command(text: str) -> int | None:
    r"""Index where the first box command (``\boxed``, ``\fbox``: :data:`BOX_COMMANDS`) of ``text``
    starts, well-formed or not, or None: where an answer is committed, or begins to be."""
    text = check_text("text", text)
    starts = []
    for cmd in BOX_COMMANDS:
        pos = text.find(cmd)
        while pos != -1 and not _is_box_command(text, pos + len(cmd)):
            pos = text.find(cmd, pos + 1)
        if pos != -1:
            starts.append(pos)
    return min(starts, default=None)


def _box_content(text: str, start: int) -> str | None:
    """The argument of a box command whose name ends at ``start``, or None if malformed."""
    n = len(text)
    i = start
    if i < n and text[i] == "*":  # \boxed*{...} (rare starred form)
        i += 1
    j = i
    while j < n and text[j] in " \t":
        j += 1
    if j < n and text[j] == "{":
        end = closing_brace(text, j + 1)
        return None if end is None else text[j + 1 : end]  # None: unbalanced or nested too deep
    # `\boxed 5` without braces: needs a space, then one token.
    if j == i or j >= n:
        return None
    k = j
    while k < n and text[k] not in " \t\n$":
        k += 1
    return text[j:k]


def extract_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (or ``\fbox{...}``, or ``\boxed 5``) in ``text``.

    Nested braces are matched (``\boxed{\frac{1}{2}}`` gives ``\frac{1}{2}``); a malformed last box
    (unbalanced, nested deeper than :data:`MAX_BRACE_DEPTH`, empty) is skipped in favour of the one
    before it. Only the last :data:`SCAN_CHARS` characters are searched. Returns None when there is
    no well-formed box.
    """
    text = check_text("text", text)[-SCAN_CHARS:]
    # Candidate positions of every box command, latest first.
    positions: list[tuple[int, int]] = []
    for cmd in BOX_COMMANDS:
        pos = text.rfind(cmd)
        tries = 0
        while pos != -1 and tries < _MAX_BOX_CANDIDATES:
            end = pos + len(cmd)
            if _is_box_command(text, end):
                positions.append((pos, end))
                tries += 1
            pos = text.rfind(cmd, 0, pos)
    positions.sort(reverse=True)
    for _, end in positions[:_MAX_BOX_CANDIDATES]:
        content = _box_content(text, end)
        if content is not None and content.strip():
            return content.strip()
    return None


# "the answer is", "final answer:", "**Answer:**", "Answer =", case-insensitive. The optional `**`
# handles markdown bold around the label. No nested quantifiers.
_PHRASE_RE = re.compile(
    r"\b(?:final\s{1,5}answer|answer)\s{0,5}(?:\*\*)?\s{0,5}(?:is\b\s{0,5}:?|:|=)(?:\s{0,5}\*\*)?",
    re.IGNORECASE,
)
# Math spans inside a phrase answer: $...$, \(...\), \[...\].
_MATH_SPAN_RE = re.compile(r"\$\$?([^$]{1,300})\$|\\\((.{1,300}?)\\\)|\\\[(.{1,300}?)\\\]")
# Where a phrase answer's sentence ends: ". " / ".\n" / end, ";", or "because"/"since".
_SENTENCE_END_RE = re.compile(r"\.(?:\s|$)|;|\s(?:because|since|as|which|so)\s", re.IGNORECASE)

# A number: thousands-separated, plain / decimal, fraction a/b, or .5; optional minus unless the
# minus is a binary operator (preceded by a word character or closing bracket).
_NUMBER_RE = re.compile(
    r"(?:(?<![\w)\]}])-)?"
    r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])"
    r"|\d+/\d+"
    r"|\d+(?:\.\d+)?"
    r"|\.\d+)"
)


def _clean_answer(ans: str) -> str:
    """Strip the wrapping a model puts around an answer: markdown bold, $, trailing period."""
    ans = ans.strip()
    prev = None
    while ans != prev:
        prev = ans
        ans = ans.strip().strip("*").strip()
        ans = ans.removesuffix(".")
        if ans.startswith("$") or ans.endswith("$"):
            ans = ans.strip("$")
        if ans.startswith("\\(") and ans.endswith("\\)"):
            ans = ans[2:-2]
        if ans.startswith("\\[") and ans.endswith("\\]"):
            ans = ans[2:-2]
    return ans.strip()


def _last_match(pattern: re.Pattern, text: str) -> re.Match | None:
    """The last non-overlapping match of `pattern` in `text` (scanning left to right), or None."""
    last = None
    for last in pattern.finditer(text):  # noqa: B007  (the loop keeps the last one)
        pass
    return last


def _phrase_answer(text: str) -> str | None:
    """The answer after the last "the answer is" / "final answer:" / "Answer:" phrase."""
    last = _last_match(_PHRASE_RE, text)
    if last is None:
        return None
    rest = text[last.end() : last.end() + 4 * _MAX_PHRASE_ANSWER]
    # The rest of the line; if the label stood alone on its line, the next non-empty line.
    lines = rest.split("\n")
    line = lines[0].strip()
    if not line.strip("*$ ").strip():
        line = next((ln.strip() for ln in lines[1:] if ln.strip("*$ ").strip()), "")
    if not line:
        return None
    math = _MATH_SPAN_RE.search(line)
    if math is not None:
        ans = next(g for g in math.groups() if g is not None)
    else:
        end = _SENTENCE_END_RE.search(line)
        ans = line[: end.start()] if end is not None else line
    ans = _clean_answer(ans)
    if not ans or len(ans) > _MAX_PHRASE_ANSWER:
        return None
    return ans


def extract_last_number(text: str) -> str | None:
    """The last number in ``text`` (``-3``, ``2.5``, ``3/4``, ``1,250`` -> ``1250``), or None."""
    text = check_text("text", text)[-SCAN_CHARS:]
    last = _last_match(_NUMBER_RE, text)
    if last is None:
        return None
    return last.group(0).replace(",", "")


def extract_answer(text: str, *, last_number_fallback: bool = True) -> str | None:
    r"""The model's final answer in ``text``, or None when it gave none.

    In order of preference:

    1. the content of the last ``\boxed{...}`` / ``\fbox{...}`` (see :func:`extract_boxed`);
    2. the text after the last "the answer is", "final answer:", "Answer:" (case-insensitive,
       markdown ``**`` allowed around the label): its first ``$...$`` math span if there is one,
       else up to the end of the sentence; ``$``, ``**`` and a trailing period are stripped;
    3. if ``last_number_fallback``, the last number in the text (ints, decimals, negatives,
       fractions ``3/4``, thousands separators removed).

    Only the last :data:`SCAN_CHARS` characters are searched.
    """
    text = check_text("text", text)[-SCAN_CHARS:]
    if not isinstance(last_number_fallback, bool):
        raise TypeError(
            f"last_number_fallback must be a bool, got {type(last_number_fallback).__name__}: "
            f"{last_number_fallback!r:.80}."
        )
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    phrase = _phrase_answer(text)
    if phrase is not None:
        return phrase
    if last_number_fallback:
        return extract_last_number(text)
    return None


def gsm8k_answer(solution: str) -> str | None:
    """The reference answer of a GSM8K solution: the text after its last ``####``, commas removed.

    Only the rest of that line counts. Returns None when there is no ``####`` or nothing after it.
    """
    solution = check_text("solution", solution)[-SCAN_CHARS:]
    pos = solution.rfind("####")
    if pos == -1:
        return None
    ans = solution[pos + 4 :].split("\n", 1)[0]
    ans = ans.replace(",", "").strip().strip("$").strip()
    if ans.endswith("."):
        ans = ans[:-1].strip()
    return ans or None
