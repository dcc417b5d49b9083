"""The time-bounded verifier subprocess, seen from the parent: start it, send one comparison, wait at
most a timeout for the reply, kill it when that runs out, retry once on a fresh one when it died."""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import warnings
from typing import Any

#: Seconds allowed for the worker subprocess to start (import sympy and math-verify).
WORKER_STARTUP_TIMEOUT = 120.0

# The worker is the module `ttc_gym.grading.worker`, run as `python -m` in a fresh interpreter; its
# docstring gives the protocol (JSON lines: a ready line, then one {"id", "equal"} per {"id", "pred", "gold"}).
WORKER_MODULE = "ttc_gym.grading.worker"

#: Address-space cap for the worker (bytes), so a runaway sympy computation fails instead of
#: swapping the machine; it is killed on timeout anyway.
_WORKER_MEMORY_LIMIT = 4 * 1024**3


def _worker_environment() -> dict[str, str]:
    """The worker's environment: this one, with this process's copy of ttc_gym first on the path
    (the worker runs the parent's code) and one BLAS thread (it does no linear algebra; fewer
    threads reserve less of its capped address space)."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    return env


def _pump(stream: Any, sink: queue.SimpleQueue) -> None:
    """Reader thread: every line of the worker's stdout into ``sink``; None at EOF."""
    try:
        for line in stream:
            try:
                sink.put(json.loads(line))
            except ValueError:
                continue
    except (OSError, ValueError):
        pass
    finally:
        sink.put(None)


#: :meth:`_Worker._attempt`'s "the worker died, retry on a fresh one" outcome.
_DIED = object()
# What the reply wait gets when it runs out of time (the reply queue's None means end of output).
_STALLED = object()


def _write(proc: subprocess.Popen, line: str) -> None:
    """Write one request line to worker ``proc``."""
    proc.stdin.write(line)
    proc.stdin.flush()


class _Worker:
    """One persistent verifier subprocess; one request at a time (a lock serializes callers). Its
    requests go out through ``send`` (the pool's, so there is one place a request is sent)."""

    def __init__(self, send: Any = None) -> None:
        self._sender = send
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._replies: queue.SimpleQueue | None = None
        self._next_id = 0
        self._pid = os.getpid()

    def _reset_after_fork(self) -> None:
        # A forked child must not share the parent's worker pipes or a lock held at fork time.
        self._lock = threading.Lock()
        self._proc = None
        self._replies = None
        self._pid = os.getpid()

    def _start(self) -> None:
        cmd = [sys.executable]
        if sys.version_info >= (3, 11):
            cmd.append("-P")  # do not put the working directory on sys.path
        cmd += ["-m", WORKER_MODULE, str(os.getpid()), str(_WORKER_MEMORY_LIMIT)]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=_worker_environment(),
        )
        replies: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(
            target=_pump, args=(proc.stdout, replies), daemon=True, name="ttc-gym-grader"
        ).start()
        try:
            hello = replies.get(timeout=WORKER_STARTUP_TIMEOUT)
        except queue.Empty:
            hello = None
        if not (isinstance(hello, dict) and hello.get("ready")):
            self._kill(proc)
            if isinstance(hello, dict) and isinstance(hello.get("error"), str):
                raise RuntimeError(f"The grading worker did not start: {hello['error']}.")
            raise RuntimeError(
                f"The grading worker ({sys.executable} -m {WORKER_MODULE}) did not start within "
                f"{WORKER_STARTUP_TIMEOUT:.0f} s: expected a ready message, got {hello!r} (None: it "
                f"exited). Check that `{sys.executable} -m {WORKER_MODULE} {os.getpid()} "
                f"{_WORKER_MEMORY_LIMIT}` starts (sympy and math-verify must import)."
            )
        self._proc, self._replies = proc, replies

    @staticmethod
    def _kill(proc: subprocess.Popen | None) -> None:
        if proc is None:
            return
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):  # e.g. a broken pipe on flush
                    stream.close()

    def start(self) -> None:
        if os.getpid() != self._pid:
            self._reset_after_fork()
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()

    def stop(self) -> None:
        if os.getpid() != self._pid:
            self._reset_after_fork()
            return
        with self._lock:
            self._kill(self._proc)
            self._proc = self._replies = None

    def _discard(self) -> None:
        """Kill the current worker (if any); the next comparison starts a fresh one."""
        self._kill(self._proc)
        self._proc = self._replies = None

    def _send(self, proc: subprocess.Popen, line: str) -> None:
        if self._sender is not None:
            self._sender(proc, line)
        else:
            _write(proc, line)

    def _attempt(self, pred: str, gold: str, timeout: float) -> bool | None | object:
        """One try: the worker's verdict, None (it did not answer within ``timeout``, or gave up
        on this comparison), or :data:`_DIED` (it died, or could not be started or written to)."""
        if self._proc is None or self._proc.poll() is not None:
            self._discard()
            try:
                self._start()
            except (RuntimeError, OSError) as err:
                warnings.warn(f"ttc_gym.grading: {err}", RuntimeWarning, stacklevel=4)
                return _DIED
        self._next_id += 1
        req_id = self._next_id
        try:
            self._send(self._proc, json.dumps({"id": req_id, "pred": pred, "gold": gold}) + "\n")
        except (OSError, ValueError):  # e.g. a broken pipe: it died between requests
            self._discard()
            return _DIED
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                reply = self._replies.get(timeout=remaining) if remaining > 0 else _STALLED
            except queue.Empty:
                reply = _STALLED
            if reply is _STALLED:  # too slow, or stalled: killed, never retried (bounded time)
                self._discard()
                return None
            if reply is None:  # end of its output: it died (killed, out of memory, crashed)
                self._discard()
                return _DIED
            if reply.get("id") == req_id:
                equal = reply.get("equal")
                return equal if isinstance(equal, bool) else None

    def equal(self, pred: str, gold: str, timeout: float) -> bool | None:
        """True/False from the worker, or None when the comparison did not complete.

        It did not complete when the worker did not answer within ``timeout`` (it is then killed;
        the next call starts a fresh one), when the worker answered that it gave up (out of
        memory or recursion depth), or when the worker died, could not be written to or could
        not be started on two tries in a row: after the first such failure the request is sent
        again, once, to a fresh worker (with a fresh ``timeout``)."""
        if os.getpid() != self._pid:
            self._reset_after_fork()
        with self._lock:
            for _ in range(2):
                outcome = self._attempt(pred, gold, timeout)
                if outcome is not _DIED:
                    return outcome  # type: ignore[return-value]
            return None


#: Most verifier subprocesses run at once: one per concurrent caller up to this many (started on
#: demand, each ~150 MB): at least 4 (a slow comparison or a restart then holds up few callers
#: even on 2 cores), one per CPU core up to 8. A caller that finds all busy waits for one,
#: within its timeout.
MAX_WORKERS = min(8, max(4, os.cpu_count() or 1))


class _Pool:
    """Up to :data:`MAX_WORKERS` workers, each serving one caller at a time, so that a slow
    comparison holds up only its own caller. The wait for a free worker counts in the caller's
    timeout: a call never waits longer than its timeout in all (plus the start of a worker the pool
    adds for it, as it grows). A worker killed by a timeout is restarted in the background and
    rejoins the pool when ready, so no caller waits for its restart beyond its own timeout."""

    def __init__(self) -> None:
        self._reset_after_fork()

    def _reset_after_fork(self) -> None:
        # A forked child must not share the parent's workers (their pipes) or a lock held at fork.
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        # Callers waiting for a worker, first come first served: without it a caller that just gave
        # a worker back takes it again at once, and one already waiting starves until its timeout.
        self._queue: collections.deque[object] = collections.deque()
        self._all: list[_Worker] = []
        self._pid = os.getpid()

    def _check_pid(self) -> None:
        if os.getpid() != self._pid:
            self._reset_after_fork()

    def _send(self, proc: subprocess.Popen, line: str) -> None:
        """The one place a request is sent to a worker (tests hook it)."""
        _write(proc, line)

    def _checkout(self, deadline: float | None) -> _Worker | None:
        """An idle worker, a new one while fewer than MAX_WORKERS exist, or None at ``deadline``;
        callers are served in the order they came."""
        with self._cond:
            ticket = object()
            self._queue.append(ticket)
            try:
                while True:
                    if self._queue[0] is ticket:
                        if self._idle:
                            return self._idle.pop()
                        if len(self._all) < MAX_WORKERS:
                            worker = _Worker(send=lambda proc, line: self._send(proc, line))
                            self._all.append(worker)
                            return worker
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return None
                    self._cond.wait(remaining)
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line looks again

    def _checkin(self, worker: _Worker) -> None:
        if worker._proc is None and any(w is worker for w in self._all):
            # Its comparison killed it (a timeout) or it died: start its replacement now, in the
            # background, so that no caller pays the start; it rejoins the idle list once ready.
            threading.Thread(target=self._restart, args=(worker,), daemon=True, name="ttc-gym-grader-restart").start()
            return
        self._return(worker)

    def _restart(self, worker: _Worker) -> None:
        try:
            worker.start()
        except (RuntimeError, OSError):
            pass  # its next comparison tries again, and says None if that fails too (`_Worker.equal`)
        self._return(worker)

    def _return(self, worker: _Worker) -> None:
        with self._cond:
            if any(w is worker for w in self._all):
                self._idle.append(worker)
                self._cond.notify_all()  # wakes the first in line (`_checkout`)
                return
        worker.stop()  # the pool was stopped while it was in use: it is no longer the pool's

    def start(self, count: int = 1) -> None:
        """Make sure `count` workers (at most MAX_WORKERS) are started; raises RuntimeError when one
        cannot start."""
        self._check_pid()
        workers = [self._checkout(None) for _ in range(max(1, min(count, MAX_WORKERS)))]
        try:
            for worker in workers:
                worker.start()
        finally:
            for worker in workers:
                self._return(worker)

    def stop(self) -> None:
        """Stop every worker (one in use stops when its comparison ends)."""
        if os.getpid() != self._pid:
            self._reset_after_fork()
            return
        with self._cond:  # the pool forgets them all: the next call starts afresh
            workers, self._all, self._idle = self._all, [], []
            self._cond.notify_all()
        for worker in workers:
            worker.stop()

    def equal(self, pred: str, gold: str, timeout: float) -> bool | None:
        """True/False from a worker, or None when the comparison did not complete within
        ``timeout`` — the wait for a free worker included — or its worker died twice (see
        :meth:`_Worker.equal`)."""
        self._check_pid()
        t0 = time.monotonic()
        worker = self._checkout(t0 + timeout)
        if worker is None:  # every worker stayed busy for the whole timeout
            return None
        waited = time.monotonic() - t0
        try:  # what is left of the timeout after the wait (a worker's start is not counted)
            return worker.equal(pred, gold, max(timeout - waited, 1e-3))
        finally:
            self._checkin(worker)


_WORKER = _Pool()
atexit.register(_WORKER.stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WORKER._reset_after_fork)


def start_worker(count: int = 1) -> None:
    """Start `count` verifier subprocesses now (at most :data:`MAX_WORKERS`; otherwise one starts on
    the first slow-path comparison, more on demand when threads compare at once)."""
    _WORKER.start(count)


def stop_worker() -> None:
    """Stop the verifier subprocesses (they restart on the next need; also done at exit)."""
    _WORKER.stop()
