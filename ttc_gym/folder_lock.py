"""One run per output folder (a benchmark, a trace analysis): a lock file `.ttc-gym-bench.lock` in the
folder (the name is the benchmark's, kept so that locks of older versions still count).

The lock is an OS advisory lock (`fcntl.flock` on POSIX, `msvcrt.locking` on Windows) held on the
file for the whole run, so the OS releases it when the process ends, however it ends. The file names
its holder (pid, host, start time): a second run refuses at once and says who holds the folder; a run
that finds the file still naming a holder but the lock free took over from a process that ended
without releasing it (killed), and says so. The file is emptied, never deleted, on release (deleting
a lock file lets two processes lock two different files of the same name).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import IO

from ttc_gym.errors import TTCGymError

LOCK_FILE = ".ttc-gym-bench.lock"

try:  # POSIX
    import fcntl

    def _try_lock(f: IO) -> bool:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(f: IO) -> None:
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)

except ImportError:  # Windows: lock one byte far past the holder's text, which stays readable
    import msvcrt

    _WINDOWS_LOCK_OFFSET = 1 << 20

    def _try_lock(f: IO) -> bool:
        f.seek(_WINDOWS_LOCK_OFFSET)
        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(f: IO) -> None:
        f.seek(_WINDOWS_LOCK_OFFSET)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)


class OutputFolderBusy(TTCGymError, RuntimeError):
    """Another run holds the output folder's lock."""

    exit_code = 2


def _holder(text: str) -> dict | None:
    """The holder a lock file names ({"pid", "host", "started"}), or None for an empty file."""
    if not text.strip():
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        holder = None
    return holder if isinstance(holder, dict) else {"pid": None, "host": None, "text": text.strip()[:80]}


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "an unknown process"
    if holder.get("pid") is None:
        return f"an unknown process (lock file says {holder.get('text')!r})"
    where = "" if holder.get("host") in (None, socket.gethostname()) else f" on host {holder['host']}"
    since = f", started {holder['started']}" if holder.get("started") else ""
    return f"pid {holder['pid']}{where}{since}"


def _busy(folder: Path, f: IO, what: str = "ttc-gym bench") -> OutputFolderBusy:
    f.seek(0)
    who = describe_holder(_holder(f.read()))
    return OutputFolderBusy(
        f"{folder} is in use by another {what} ({who}); wait for it to finish, or give this run "
        f"another output folder (--out)."
    )


def check_unlocked(folder: Path) -> None:
    """Raise `OutputFolderBusy` if a live run holds `folder`; changes nothing (a probe, for validation)."""
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return
    with open(path, "r+", encoding="utf-8") as f:
        if not _try_lock(f):
            raise _busy(Path(folder), f)
        _unlock(f)


class FolderLock:
    """`with FolderLock(folder) as lock:` holds `folder` for this process; raises `OutputFolderBusy` if
    another process holds it. `lock.stale_holder` is the holder named by a lock left behind by a
    process that ended without releasing it (None if there was none). `what` names the run in the
    error a second one gets ("ttc-gym bench", "ttc-gym traces analyze")."""

    def __init__(self, folder: Path, what: str = "ttc-gym bench"):
        self.folder = Path(folder)
        self.what = what
        self.path = self.folder / LOCK_FILE
        self.stale_holder: dict | None = None
        self._file: IO | None = None

    def acquire(self) -> "FolderLock":
        f = open(self.path, "a+", encoding="utf-8")
        try:
            if not _try_lock(f):
                raise _busy(self.folder, f, self.what)
            f.seek(0)
            self.stale_holder = _holder(f.read())
            f.seek(0)
            f.truncate()
            f.write(json.dumps({
                "pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            }))
            f.flush()
        except BaseException:
            f.close()
            raise
        self._file = f
        return self

    def release(self) -> None:
        f, self._file = self._file, None
        if f is None:
            return
        try:
            f.seek(0)
            f.truncate()  # released cleanly: nothing stale left behind
            f.flush()
            _unlock(f)
        finally:
            f.close()

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
