"""`results.jsonl`, the benchmark's one record of finished work: what a record must hold, and the
file's reading, repairing and appending, which are those of every append-only JSONL log
(`ttc_gym.jsonl_log`).

One line per finished problem (agent, budget and seed identify it). A line that is not a complete
record (cut short by a kill, emptied, edited by hand, `{}` or `null`) is *damaged*: reading skips and
counts it, so its problem is computed again on resume. Repairing cuts a torn last line off and
rewrites the file without damaged lines in the middle, after keeping the original as a backup.
"""

from __future__ import annotations

import math
from pathlib import Path

from ttc_gym.jsonl_log import JsonlAppender, LogRead, read_jsonl_log, repair_jsonl_log

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
    if not all(math.isfinite(record[k]) for k in ("total_reward", "outcome")):
        return f"total_reward or outcome is not finite ({record['total_reward']!r}, {record['outcome']!r})"
    if record["outcome"] not in (0, 1):
        return f"outcome is {record['outcome']!r}, not 0 or 1"
    if record["episodes_used"] < 0 or record["tokens_used"] < 0:
        return "episodes_used or tokens_used is negative"
    if not record["j_curve"] or len(record["token_curve"]) != len(record["j_curve"]):
        return "j_curve and token_curve do not match"
    if not all(isinstance(x, _NUMBER) and not isinstance(x, bool) for x in record["j_curve"] + record["token_curve"]):
        return "j_curve or token_curve holds a non-number"
    if not all(math.isfinite(j) and 0.0 <= j <= 1.0 for j in record["j_curve"]):
        return "j_curve holds a value outside [0, 1]"
    return None


def record_key(record: dict) -> tuple:
    """(agent, budget label, seed): which problem of which run a record is."""
    return (record["agent"], record["budget"], int(record["seed"]))


# The file is an append-only JSONL log (`ttc_gym.jsonl_log`) whose records `record_problem` checks.
ResultsWriter = JsonlAppender
repair_results = repair_jsonl_log


def read_results(path: Path) -> LogRead:
    """The complete records of a results file; damaged lines skipped and counted (`read_jsonl_log`).
    Never raises for what the file holds (only for an unreadable file)."""
    return read_jsonl_log(path, record_problem)
