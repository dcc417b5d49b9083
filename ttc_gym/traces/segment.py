"""MRT's episode segmentation of a free-form reasoning trace (docs/formulation.md §6).

Follows CMU-AIRe/MRT `analysis/code/break_into_meta_steps.ipynb` (`break_into_meta_steps`,
`merge_meta_steps`; the batched notebook `break_into_meta_steps_batched.ipynb` is the same with
other constants):

1. The text is split into paragraphs at blank lines ("\\n\\n").
2. A paragraph that begins with an episode marker (`ttc_gym.prompts.EPISODE_MARKERS`: "Wait",
   "But wait", "Alternatively", ...) starts a new piece, unless it is fewer than `min_gap` (3)
   paragraphs after the start of the current piece: then it stays inside it (the notebook's
   `prev_i == i or prev_i == i-1 or prev_i == i-2: continue`). The first piece starts at
   paragraph 0, so a marker in paragraphs 0..2 never splits.
3. After `max_pieces` (49 in the R1 notebook, 99 in the batched one) pieces, the rest of the text
   is one last piece.
4. Consecutive pieces are merged in groups of `group_size` (5 in the R1 notebook, 10 in the batched
   one) into one episode each: these are the episodes whose prefixes are scored.

Pieces are joined back with "\\n\\n" and right-stripped of newlines, as in the notebook.

**Where ttc-gym differs:** a marker must end at a word boundary ("Waiting for the sum" does not
start an episode; the notebook's `str.startswith` would split there), and leading spaces of a
paragraph are ignored when matching (a "\\n\\n\\n" gap leaves "\\nWait" in the notebook, which it
does not match). Markers are configurable. A trace with no marker is one episode.
"""

from __future__ import annotations

import re
from typing import Sequence

from ttc_gym.prompts import EPISODE_MARKERS
from ttc_gym.validation import check_int

PARAGRAPH_BREAK = "\n\n"
# MRT's R1 notebook constants (analysis/code/break_into_meta_steps.ipynb).
MRT_MIN_GAP = 3
MRT_MAX_PIECES = 49
MRT_GROUP_SIZE = 5


def marker_pattern(markers: Sequence[str]) -> re.Pattern:
    """A regex that matches a paragraph beginning with one of `markers` as whole words."""
    if isinstance(markers, str) or not markers or not all(isinstance(m, str) and m.strip() for m in markers):
        raise ValueError(f"markers must be a non-empty list of non-empty strings such as {list(EPISODE_MARKERS[:2])}, "
                         f"got {markers!r}.")
    alternatives = "|".join(re.escape(m.strip()) for m in sorted(markers, key=len, reverse=True))
    # A marker that ends in a word character must not continue into a longer word ("Waiting").
    return re.compile(rf"^\s*(?:{alternatives})(?:(?<=\W)|(?!\w))")


def starts_episode(paragraph: str, markers: Sequence[str] = EPISODE_MARKERS) -> bool:
    """Whether `paragraph` begins with one of `markers` (a whole word or phrase)."""
    return marker_pattern(markers).match(paragraph) is not None


def split_pieces(text: str, markers: Sequence[str] = EPISODE_MARKERS, *, min_gap: int = MRT_MIN_GAP,
                 max_pieces: int = MRT_MAX_PIECES) -> list[str]:
    """Steps 1-3 of the module docstring: the trace cut at marker paragraphs (MRT's meta steps)."""
    if not isinstance(text, str):
        raise TypeError(f"trace text must be a string, got {type(text).__name__}.")
    check_int("min_gap", min_gap, minimum=1)
    check_int("max_pieces", max_pieces, minimum=1)
    pattern = marker_pattern(markers)
    paragraphs = text.split(PARAGRAPH_BREAK)
    pieces: list[str] = []
    start = 0
    for i, paragraph in enumerate(paragraphs):
        if len(pieces) == max_pieces:
            break
        if pattern.match(paragraph) is None or i - start < min_gap:
            continue
        pieces.append(PARAGRAPH_BREAK.join(paragraphs[start:i]).rstrip("\n"))
        start = i
    pieces.append(PARAGRAPH_BREAK.join(paragraphs[start:]).rstrip("\n"))
    return pieces


def segment_trace(text: str, markers: Sequence[str] = EPISODE_MARKERS, *, min_gap: int = MRT_MIN_GAP,
                  max_pieces: int = MRT_MAX_PIECES, group_size: int = MRT_GROUP_SIZE) -> list[str]:
    """The episodes of a reasoning trace, as MRT's analysis cuts them (module docstring): pieces
    at marker paragraphs, merged `group_size` at a time. Empty pieces (an empty trace) are dropped,
    so an empty text has no episode."""
    check_int("group_size", group_size, minimum=1)
    pieces = split_pieces(text, markers, min_gap=min_gap, max_pieces=max_pieces)
    episodes = [PARAGRAPH_BREAK.join(pieces[i:i + group_size]) for i in range(0, len(pieces), group_size)]
    return [e for e in episodes if e.strip()]
