"""Grader latency under concurrency (issue 33 item 11): ordinary answer pairs that need the verifier
worker (symbolic identities; each pair distinct, so the verdict cache never answers), graded
sequentially and by THREADS threads at once. Prints p50 / p99 / max seconds per call.

    python examples/benchmarks/grader_concurrency.py [CALLS_PER_THREAD [THREADS]]

A benchmark, not a test: it measures speed on this machine (the note of issue 33 reports its figures);
the pool's behaviour is tested in tests/core/test_grading_pool.py. The workers are started (warm)
before timing, as they are after the first calls of a real run.
"""

from __future__ import annotations

import random
import statistics
import sys
import threading
import time

from ttc_gym.grading import client, compare_answers, start_worker


def ordinary_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """Equivalent pairs a model and a dataset would write: the same expression in another form."""
    rng = random.Random(seed)
    forms = [
        lambda a, b: (f"{a}x+{b}", f"{b}+{a}x"),
        lambda a, b: (f"(x-{a})(x+{a})", f"x^2-{a * a}"),
        lambda a, b: (f"\\frac{{{a}\\sqrt{{{b}}}}}{{2}}", f"{a}\\sqrt{{{b}}}/2"),
        lambda a, b: (f"{a}(x+{b})", f"{a}x+{a * b}"),
        lambda a, b: (f"\\sqrt{{{a * a * b}}}", f"{a}\\sqrt{{{b}}}"),
        lambda a, b: (f"({a}, {b})", f"({a},{b})"),
    ]
    return [rng.choice(forms)(rng.randint(2, 999), rng.randint(2, 999)) for _ in range(count)]


def timed(pairs: list[tuple[str, str]], out: list[float]) -> None:
    for pred, gold in pairs:
        t0 = time.perf_counter()
        verdict = compare_answers(pred, gold, timeout=2.0)
        out.append(time.perf_counter() - t0)
        if verdict is not True:
            print(f"  not decided equal: {pred!r} vs {gold!r}: {verdict}")


def summary(label: str, seconds: list[float]) -> str:
    s = sorted(seconds)
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))]
    return (f"{label}: {len(s)} calls, p50 {statistics.median(s):.3f} s, p99 {p99:.3f} s, max {s[-1]:.3f} s")


def main(calls_per_thread: int = 50, threads: int = 8) -> None:
    start_worker(min(threads, client.MAX_WORKERS))  # warm the pool: start its workers now
    warm = [threading.Thread(target=timed, args=(ordinary_pairs(2, 1000 + t), [])) for t in range(threads)]
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    sequential: list[float] = []
    timed(ordinary_pairs(calls_per_thread * 2, 1), sequential)
    print(summary("sequential", sequential))
    parallel: list[float] = []
    workers = [threading.Thread(target=timed, args=(ordinary_pairs(calls_per_thread, 100 + t), parallel))
               for t in range(threads)]
    t0 = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    print(summary(f"{threads} threads", parallel) + f"; wall {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
