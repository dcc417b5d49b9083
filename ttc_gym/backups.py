"""Backup names for files a command is about to repair or replace (results files, analysed traces)."""

from __future__ import annotations

import time
from pathlib import Path


def backup_path(path: Path) -> Path:
    """`path` + `.bak-YYYYmmdd-HHMMSS` (with `-2`, `-3`, ... if that exists already)."""
    path = Path(path)
    base = path.with_name(f"{path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate
