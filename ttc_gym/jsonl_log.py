"""Append-only JSONL logs that a killed run may have cut: reading them forgivingly, repairing them,
appending to them so that a failed write leaves no half line behind, and keeping backups.

One record per line, each line ending in a newline. Used by the benchmark's `results.jsonl`
(`ttc_gym.bench.results_file`) and the analysed traces' `analysed.jsonl` (`ttc_gym.traces.analyze`).

- A last line without its newline is *torn* (a write cut short by a kill): reading stops there.
- A complete line that is empty, not UTF-8, not JSON, or not a valid record (the caller's `check`) is
  *damaged*: reading skips and counts it, so whatever it recorded is computed again.
- Repairing makes the file hold the kept lines only: a torn last line alone is cut off (nothing of
  value is lost, so no backup); damaged lines in the middle are dropped by rewriting the file
  atomically after copying the original to a backup (`ttc_gym.backups.backup_path`). The rewrite puts
  back each kept line's bytes exactly as they were read, so nothing is re-serialised.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ttc_gym.backups import backup_path
from ttc_gym.files import check_regular_file

TORN = "cut short"  # the reason given for a torn last line
_NOTICE_LINES = 5  # line numbers a notice names before "..."
_NOTICE_WHY = 120  # characters of the first reason a notice quotes


@dataclass
class LogRead:
    """What `read_jsonl_log` found.

    records: the valid records, in file order. lines: each kept record's line as it was read (bytes,
        with its newline), parallel to `records`.
    damaged: (line number, why) of each line skipped, a torn last line included (why = "cut short").
    torn: the last line has no newline (a write cut short). good_end: bytes up to the end of the last
        complete line. size: the file's size in bytes (0 when it does not exist).
    """

    records: list[Any] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    damaged: list[tuple[int, str]] = field(default_factory=list)
    torn: bool = False
    good_end: int = 0
    size: int = 0

    def notice(self, path: Path, unit: str = "problem", backup: Path | None = None) -> str | None:
        """One line on what was skipped (None when nothing was): how many lines, which, the first
        reason, that their `unit`s are computed again, and the backup of the original if one was made."""
        if not self.damaged:
            return None
        many = len(self.damaged) > 1
        lines = ", ".join(str(n) for n, _ in self.damaged[:_NOTICE_LINES])
        lines += ", ..." if len(self.damaged) > _NOTICE_LINES else ""
        why = self.damaged[0][1].replace("\n", " ")
        why = why if len(why) <= _NOTICE_WHY else why[:_NOTICE_WHY - 3] + "..."
        kept = f" The file as it was is kept as {backup}." if backup is not None else ""
        return (
            f"{path}: skipped {len(self.damaged)} damaged record{'s' if many else ''} "
            f"(line{'s' if many else ''} {lines}: {why}); "
            f"{f'their {unit}s' if many else f'its {unit}'} will be computed again.{kept}"
        )


def read_jsonl_log(path: Path, check: Callable[[Any], str | None]) -> LogRead:
    """The valid records of a JSONL log (module docstring); damaged lines skipped and counted.
    `check(record)` says why a parsed line is not a valid record, or None when it is. Never raises
    for what the file holds (only for an unreadable file)."""
    out = LogRead()
    path = Path(path)
    if not path.exists():
        return out
    data = check_regular_file(path, "a JSONL log").read_bytes()
    out.size = len(data)
    pieces = data.split(b"\n")  # on "\n" only: a stray "\r" inside a line does not end it
    last = pieces.pop()  # what follows the last newline: b"" when the file ends with one
    offset = 0
    for number, piece in enumerate(pieces, start=1):
        line = piece + b"\n"
        offset += len(line)
        out.good_end = offset
        if not piece.strip():
            out.damaged.append((number, "empty"))
            continue
        try:
            record = json.loads(piece.decode("utf-8-sig" if number == 1 else "utf-8"))  # a BOM may start a file
        except UnicodeDecodeError:
            out.damaged.append((number, "not UTF-8"))
            continue
        except json.JSONDecodeError:
            out.damaged.append((number, "not JSON"))
            continue
        except RecursionError:
            out.damaged.append((number, "JSON nested too deeply"))
            continue
        why = check(record)
        if why is not None:
            out.damaged.append((number, why))
            continue
        out.records.append(record)
        out.lines.append(line)
    if last:
        out.torn = True
        out.damaged.append((len(pieces) + 1, TORN))
    return out


def repair_jsonl_log(path: Path, read: LogRead) -> Path | None:
    """Make the file at `path` hold `read`'s kept lines only (module docstring): a torn last line is cut
    off; damaged lines in the middle are dropped by an atomic rewrite (a temporary file, synced, then
    renamed over it) after the original is copied to a backup, whose path is returned. None when no
    backup was needed."""
    path = Path(path)
    middle = read.damaged[:-1] if read.torn else read.damaged  # a torn line is always the last one
    if not middle:
        if read.torn:
            with open(path, "r+b") as f:
                f.truncate(read.good_end)
        return None
    backup = backup_path(path)
    tmp = path.with_name(f".{path.name}.repair-tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(b"".join(read.lines))
            f.flush()
            os.fsync(f.fileno())
        shutil.copy2(path, backup)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return backup


def move_to_backup(path: Path) -> Path | None:
    """Rename `path` to its backup name (`backup_path`) and return that; None when there was nothing to
    keep (missing or empty)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    target = backup_path(path)
    os.replace(path, target)
    return target


class JsonlAppender:
    """Appends lines to a JSONL log, unbuffered, so the lines are on disk (or the error raised) when
    `append` / `append_many` returns; `sync=True` also fsyncs them. A write that fails (a full disk, an
    interrupt) is undone, the file cut back to where it began, where possible, so it leaves no half line
    behind; the error then reaches the caller. A context manager that closes the file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = open(self.path, "ab", buffering=0)

    def append(self, line: str, *, sync: bool = False) -> None:
        """Append one line; `line` is one JSON text followed by a newline."""
        self.append_many([line], sync=sync)

    def append_many(self, lines: Iterable[str], *, sync: bool = False) -> None:
        """Append `lines` (each one JSON text followed by a newline) together: all of them or none."""
        lines = list(lines)
        for line in lines:
            if not isinstance(line, str) or not line.endswith("\n") or "\n" in line[:-1]:
                raise ValueError(f"{self.path}: a log line must be one line of text ending in a newline, got {line!r:.80}.")
        self._write("".join(lines).encode("utf-8"), sync)

    def _write(self, data: bytes, sync: bool) -> None:
        start = self._file.seek(0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                view = view[written:]
            if sync:
                os.fsync(self._file.fileno())
        except BaseException:
            try:
                self._file.truncate(start)
            except OSError:
                pass  # reading cuts a torn last line off anyway
            raise

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
