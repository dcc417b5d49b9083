"""One benchmark run per output folder: the lock of `ttc_gym.folder_lock` (shared with `ttc-gym traces
analyze`), under the name the benchmark has always imported it by."""

from __future__ import annotations

from ttc_gym.folder_lock import LOCK_FILE, FolderLock, OutputFolderBusy, check_unlocked, describe_holder

__all__ = ["LOCK_FILE", "FolderLock", "OutputFolderBusy", "check_unlocked", "describe_holder"]
