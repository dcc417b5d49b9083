"""Which configuration made the results in an output folder: `bench_config.json` says it for the whole
run, and each record names the env and env kwargs it was made with. A resumed run continues only
results of its own configuration; these functions find out, and say in words what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

CONFIG_FILE = "bench_config.json"


def read_stored_config(path: Path, keys: Sequence[str]) -> tuple[dict | None, str | None]:
    """(the configuration stored in `path`, None), or (None, what is wrong with the file, as "is missing"
    or "is damaged (...)"). `keys`: what a complete configuration holds."""
    path = Path(path)
    if not path.exists():
        return None, "is missing"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, "is damaged (not UTF-8 text)"
    if not text.strip():
        return None, "is damaged (empty)"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"is damaged (not JSON: {err.msg} at line {err.lineno})"
    except RecursionError:
        return None, "is damaged (JSON nested too deeply)"
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        return None, 'is damaged (no "config" object)'
    missing = [k for k in keys if k not in config]
    if missing:
        return None, f"is damaged (its config lacks {', '.join(missing)})"
    return config, None


def config_differences(stored: dict, current: dict) -> str | None:
    """"key: X there, Y now; ..." for each key whose value differs, or None when none does."""
    diffs = [k for k in current if stored.get(k) != current[k]]
    if not diffs:
        return None
    return "; ".join(f"{k}: {stored.get(k)!r} there, {current[k]!r} now" for k in diffs)


def foreign_records(records: Sequence[dict], env_id: str, env_kwargs: object) -> str | None:
    """What sets apart the records made with another env or env kwargs than (`env_id`, `env_kwargs`, as
    JSON stores them), in words, or None when every record that names its env names this one."""
    by_diff: dict[str, int] = {}
    for record in records:
        if "env_id" not in record and "env_kwargs" not in record:
            continue  # written before records named their env: the config file speaks for them
        parts = [
            f"{key}: {record.get(key)!r} there, {now!r} now"
            for key, now in (("env_id", env_id), ("env_kwargs", env_kwargs))
            if record.get(key) != now
        ]
        if parts:
            text = "; ".join(parts)
            by_diff[text] = by_diff.get(text, 0) + 1
    if not by_diff:
        return None
    count = sum(by_diff.values())
    return f"{count} record{'s' if count > 1 else ''} made with another configuration (" + " | ".join(
        f"{n} with {text}" for text, n in by_diff.items()
    ) + ")"


def vouch_for_records(records: Sequence[dict], env_id: str, env_kwargs: object, agents: Sequence[str],
                      budgets: Sequence[str]) -> str | None:
    """Whether the records alone show they belong to this run (for a folder whose config file is missing or
    damaged): None when every record names this env and env kwargs, and one of its agents and budgets;
    else why not, in words."""
    unnamed = sum(1 for r in records if "env_id" not in r or "env_kwargs" not in r)
    if unnamed:
        return (f"{unnamed} of its {len(records)} records do not name their env "
                f"(written by a ttc-gym that did not record it)")
    foreign = foreign_records(records, env_id, env_kwargs)
    if foreign:
        return foreign
    others = sorted({r["agent"] for r in records} - set(agents)) + sorted({r["budget"] for r in records} - set(budgets))
    if others:
        return f"it holds records of agents or budgets this run does not have ({', '.join(others)})"
    return None
