"""The grader's size limits on answers (one home: normalization, guards and the cache use them)."""

from __future__ import annotations

#: Answers longer than this (after extraction) are never equivalent to anything.
MAX_ANSWER_CHARS = 1000
#: A numeric power (tower) whose value would have more digits than this is rejected up front.
MAX_POWER_DIGITS = 100_000
#: Brackets ((), [], {}) nested deeper than this are rejected up front: the LaTeX parser's time
#: grows steeply with depth (twenty nested ``\frac`` take seconds), and no answer needs it.
MAX_NESTING_DEPTH = 20
#: Entries kept by the (pred, gold) equivalence cache. Inputs longer than 2 * MAX_ANSWER_CHARS
