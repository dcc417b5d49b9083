"""The grader under concurrency (issue 33 item 11): a pool of workers, so a slow or stalled
comparison holds up only its own caller, and a caller's timeout bounds its wait for a free worker.
Ordering of events is asserted, never a wall-clock time (the timing is examples/benchmarks/grader_concurrency.py)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from ttc_gym import grading
from ttc_gym.grading import client, compare_answers, stop_worker


@pytest.fixture
def stalling_pool(monkeypatch):
    """A pool of `size` workers whose next request sent to a worker stalls it (SIGSTOP) when armed."""
    stopped: list[int] = []
    armed = threading.Event()
    real_send = grading._WORKER._send  # the real sender, before the hook replaces it

    def send(proc, line):
        real_send(proc, line)
        if armed.is_set():
            armed.clear()
            os.kill(proc.pid, signal.SIGSTOP)
            stopped.append(proc.pid)

    def make(size: int):
        stop_worker()
        monkeypatch.setattr(client, "MAX_WORKERS", size)
        monkeypatch.setattr(grading._WORKER, "_send", send)
        grading._equivalent_cached.cache_clear()
        return armed, stopped

    yield make
    monkeypatch.undo()
    for pid in stopped:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    stop_worker()
    grading._equivalent_cached.cache_clear()


def _in_thread(fn):
    box: dict = {}
    done = threading.Event()

    def run():
        box["value"] = fn()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return box, done


@pytest.mark.timeout(120)
def test_a_stalled_comparison_does_not_hold_up_other_callers(stalling_pool):
    armed, stopped = stalling_pool(2)
    assert compare_answers("2x+3", "3+2x", timeout=60.0) is True  # one worker started and warm
    armed.set()
    slow, slow_done = _in_thread(lambda: compare_answers("(x-1)(x+1)", "x^2-1", timeout=60.0))
    while armed.is_set():  # until the first caller's worker is stalled
        threading.Event().wait(0.01)
    # a second caller gets the other worker and its verdict while the first is still stalled
    assert compare_answers("(x-2)(x+2)", "x^2-4", timeout=60.0) is True
    assert not slow_done.is_set()
    os.kill(stopped[0], signal.SIGKILL)  # the stalled worker dies: its caller retries on a fresh one
    assert slow_done.wait(60) and slow["value"] is True


@pytest.mark.timeout(120)
def test_the_timeout_bounds_the_wait_for_a_free_worker(stalling_pool):
    armed, stopped = stalling_pool(1)
    assert compare_answers("2x+5", "5+2x", timeout=60.0) is True
    armed.set()
    slow, slow_done = _in_thread(lambda: compare_answers("(x-3)(x+3)", "x^2-9", timeout=60.0))
    while armed.is_set():
        threading.Event().wait(0.01)
    # the only worker is stalled for up to 60 s: a caller with a 0.5 s timeout does not wait for it
    assert compare_answers("(x-5)(x+5)", "x^2-25", timeout=0.5) is None
    assert not slow_done.is_set()  # it gave up while the first caller was still waiting
    os.kill(stopped[0], signal.SIGKILL)
    assert slow_done.wait(60) and slow["value"] is True


@pytest.mark.timeout(120)
def test_a_worker_killed_by_a_timeout_is_restarted_in_the_background(stalling_pool):
    armed, stopped = stalling_pool(1)
    assert compare_answers("2x+7", "7+2x", timeout=60.0) is True
    armed.set()
    assert compare_answers("(x-4)(x+4)", "x^2-16", timeout=1.0) is None  # stalled: killed at its timeout
    pool = grading._WORKER
    while True:  # with no call made, its replacement starts and rejoins the idle workers
        with pool._cond:
            ready = [w for w in pool._idle if w._proc is not None and w._proc.poll() is None]
        if ready:
            break
        threading.Event().wait(0.05)
    assert ready[0]._proc.pid != stopped[0]
    assert compare_answers("(x-4)(x+4)", "x^2-16", timeout=60.0) is True


def test_start_worker_starts_as_many_workers_as_asked(monkeypatch):
    stop_worker()
    monkeypatch.setattr(client, "MAX_WORKERS", 2)
    try:
        grading.start_worker(5)  # capped at MAX_WORKERS
        pool = grading._WORKER
        assert len(pool._all) == 2 and all(w._proc is not None and w._proc.poll() is None for w in pool._idle)
    finally:
        stop_worker()


def test_callers_waiting_for_a_worker_are_served_in_order(monkeypatch):
    """A caller that gives its worker back and asks again at once does not take it from a caller
    already waiting (which used to starve until its timeout while others recycled the workers)."""
    import time

    monkeypatch.setattr(client, "MAX_WORKERS", 1)
    pool = client._Pool()  # a pool of its own; its worker is never started (no subprocess)
    worker = pool._checkout(None)
    got = []
    waiter = threading.Thread(target=lambda: got.append(pool._checkout(time.monotonic() + 60)))
    waiter.start()
    while not pool._queue:  # until the waiter is in line
        threading.Event().wait(0.01)
    pool._return(worker)
    assert pool._checkout(time.monotonic() + 0.2) is None  # behind the waiter: not served before it
    waiter.join(60)
    assert got == [worker]
