"""Seeds hashed from text: the one place ttc-gym turns a string into a random seed.

Python's `hash()` of a string changes from process to process; these seeds do not (BLAKE2b of the
text's UTF-8 bytes), so the same (problem, prefix) or the same (call seed, row) gets the same random
numbers in every process and on every platform.
"""

from __future__ import annotations

import hashlib

from ttc_gym.validation import check_int


def text_seed(text: str, bits: int = 63) -> int:
    """A `bits`-bit seed (1 <= bits <= 64) hashed from `text`: the top `bits` bits of the 8-byte
    BLAKE2b digest of its UTF-8 bytes (lone surrogates allowed), read little-endian."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r:.80}.")
    check_int("bits", bits, minimum=1, maximum=64)
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> (64 - bits)


def prefix_seed(seed: int, *parts: str) -> int:
    """A 63-bit seed from `seed` and the text `parts` (e.g. a problem and the episodes so far): the
    `text_seed` of `seed` and the parts joined by NUL characters, so ("ab", "c") and ("a", "bc")
    differ."""
    return text_seed("\x00".join((str(seed), *parts)))
