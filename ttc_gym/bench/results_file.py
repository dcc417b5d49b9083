"""`results.jsonl`, the benchmark's one record of finished work: reading it forgivingly, repairing it,
appending to it, and keeping backups.

One line per finished problem (agent, budget and seed identify it). A line that is not a complete
record (cut short by a kill, emptied, edited by hand, `{}` or `null`) is *damaged*: reading skips and
counts it, so its problem is computed again on resume. Repairing cuts a torn last line off and
rewrites the file without damaged lines in the middle, after keeping the original as a backup.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ttc_gym.backups import backup_path

RESULTS_FILE = "results.jsonl"

# What a record must hold, and of what type, to be summarized (`ttc_gym.bench.report`).
_NUMBER = (int, float)
_REQUIRED = {
    "agent": str, "budget": str, "seed": int, "total_reward": _NUMBER, "outcome": _NUMBER,
    "episodes_used": int, "tokens_used": int, "j_curve": list, "token_curve": list,
}


def record_problem(record) -> str | None:
    """Why `record` (a parsed line) is not a complete results record, or None when it is."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__ if record is not None else 'null'}, not an object"
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        return f"no {', '.join(missing)}"
    for key, kind in _REQUIRED.items():
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            return f"{key} is {value!r}"
    if int(record["seed"]) < 0:
        return f"seed is {record['seed']!r}"
    if not record["j_curve"] or len(record["token_curve"]) != len(record["j_curve"]):
        return "j_curve and token_curve do not match"
    if not all(isinstance(x, _NUMBER) and not isinstance(x, bool) for x in record["j_curve"] + record["token_curve"]):
        return "j_curve or token_curve holds a non-number"
    return None


def record_key(record: dict) -> tuple:
    """(agent, budget label, seed): which problem of which run a record is."""
    return (record["agent"], record["budget"], int(record["seed"]))


@dataclass
class ResultsRead:
    """What `read_results` found. `damaged`: (line number, why) of each line skipped; `torn`: the last
    line has no newline (a write cut short); `good_end`: bytes up to the end of the last complete line."""

    records: list[dict] = field(default_factory=list)
    damaged: list[tuple[int, str]] = field(default_factory=list)
    torn: bool = False
    good_end: int = 0
    size: int = 0

    def notice(self, path: Path) -> str | None:
        """One line on what was skipped, or None when nothing was."""
        if not self.damaged:
            return None
        lines = ", ".join(str(n) for n, _ in self.damaged[:5]) + (", ..." if len(self.damaged) > 5 else "")
        return (
            f"{path}: skipped {len(self.damaged)} damaged record{'s' if len(self.damaged) > 1 else ''} "
            f"(line{'s' if len(self.damaged) > 1 else ''} {lines}: {self.damaged[0][1]}); "
            f"{'their problems' if len(self.damaged) > 1 else 'its problem'} will be computed again."
        )


def read_results(path: Path) -> ResultsRead:
    """The complete records of a results file; damaged lines skipped and counted. Never raises for what
    the file holds (only for an unreadable file)."""
    out = ResultsRead()
    path = Path(path)
    if not path.exists():
        return out
    data = path.read_bytes()
    out.size = len(data)
    offset = 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        offset += len(line)
        if not line.endswith(b"\n"):  # the last line, without its newline: a write cut short
            out.torn = True
            out.damaged.append((number, "cut short"))
            break
        out.good_end = offset
        if not line.strip():
            out.damaged.append((number, "empty"))
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            out.damaged.append((number, "not JSON"))
            continue
        why = record_problem(record)
        if why is not None:
            out.damaged.append((number, why))
            continue
        out.records.append(record)
    return out


def move_to_backup(path: Path) -> Path | None:
    """Rename `path` to its backup name; None when there was nothing to keep (missing or empty)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    target = backup_path(path)
    os.replace(path, target)
    return target


def repair_results(path: Path, read: ResultsRead) -> Path | None:
    """Make the file hold `read.records` only: a torn last line is cut off; damaged lines in the middle
    are dropped by rewriting the file (atomically), after keeping the original as a backup, whose path
    is returned (None when no backup was needed)."""
    path = Path(path)
    middle = [n for n, why in read.damaged if why != "cut short"]
    if not middle:
        if read.torn:
            with open(path, "r+b") as f:
                f.truncate(read.good_end)
        return None
    backup = backup_path(path)
    tmp = path.with_name(f".{path.name}.repair-tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in read.records:
            f.write(json.dumps(record) + "\n")
    shutil.copy2(path, backup)
    os.replace(tmp, path)
    return backup


class ResultsWriter:
    """Appends one record per line, unbuffered, so a line is on disk (or the error raised) when `append`
    returns. A failed write is undone (the file cut back to where the line began) where possible, so a
    full disk leaves no half line behind; an `OSError` then reaches the caller."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = open(self.path, "ab", buffering=0)

    def append(self, line: str) -> None:
        data = line.encode("utf-8")
        start = self._file.seek(0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                view = view[written:]
        except OSError:
            try:
                self._file.truncate(start)
            except OSError:
                pass  # reading skips a torn line anyway
            raise

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ResultsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
