"""Spaces for text written by models."""

from __future__ import annotations

import string
from typing import Any

from gymnasium import spaces

# Characters `sample()` draws from. `contains` accepts any Unicode text, whatever this set holds.
SAMPLE_CHARSET = string.ascii_letters + string.digits + " .,;:!?+-*/=()[]{}\\^_$'\n"


class AnyText(spaces.Text):
    """A `Text` space that contains any Python `str` whose length is within [min_length, max_length].

    Gymnasium's `Text` accepts only characters of its charset; a model can write any Unicode
    character, so membership here checks type and length alone. `sample()` draws from a printable
    ASCII charset (with spaces, punctuation and newlines).
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None):
        super().__init__(max_length, min_length=min_length, charset=SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"AnyText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, AnyText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random string; never whitespace-only when min_length > 0 (an empty episode is invalid)."""
        text = super().sample(mask=mask, probability=probability)
        if self.min_length > 0 and not text.strip():
            text = "a" + text[1:]
        return text
