"""Input files read safely: only regular files of bounded size (a FIFO would block the reader forever,
a link to /dev/zero would be read until memory runs out), and JSON nested too deeply for Python's
parser reported as bad input instead of a RecursionError traceback."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

#: The largest input file read (bytes): far above any problem, trace or results file.
MAX_INPUT_BYTES = 4 * 1024**3


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device (such as /dev/zero)"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def check_regular_file(path: str | Path, what: str) -> Path:
    """`path`, after checking that it (or what its link points to) is a regular file of at most
    :data:`MAX_INPUT_BYTES`: ValueError saying what came instead. Missing files are the caller's
    to report (each has its own message)."""
    path = Path(path)
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path}: expected {what} (a regular file), got {_kind(info.st_mode)}.")
    if info.st_size > MAX_INPUT_BYTES:
        raise ValueError(f"{path}: {what} is {info.st_size:,} bytes; at most {MAX_INPUT_BYTES:,} are read.")
    return path


def too_deep(where: str) -> str:
    """The message for JSON nested deeper than Python's parser follows (a RecursionError)."""
    return (f"{where}: JSON nested too deeply for the parser (Python's recursion limit); expected an object "
            f"of plain fields.")


def loads(text: str | bytes, where: str, decoder: json.JSONDecoder | None = None) -> Any:
    """`json.loads` (or `decoder.decode`), a RecursionError becoming a ValueError naming `where`."""
    try:
        return json.loads(text) if decoder is None else decoder.decode(text)
    except RecursionError:
        raise ValueError(too_deep(where)) from None
