"""The grader: equivalence table, normalization keys, grade(), adversarial inputs, threads."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from ttc_gym.grading import (
    GradeResult,
    answers_equivalent,
    compare_answers,
    grade,
    normalize_answer,
    start_worker,
    stop_worker,
)

# (pred, gold, equivalent)
EQUIVALENCE_CASES = [
    # integers, negatives, decimals
    ("5", "5", True),
    ("5", "6", False),
    ("-3", "-3", True),
    ("-3", "3", False),
    ("-3.0", "-3", True),
    ("3.50", "3.5", True),
    ("0.5", "1/2", True),
    ("1/3", "0.333", False),  # decimals are exact
    ("2", "2.0000001", False),
    ("1,000", "1000", True),
    ("1,234,567.5", "1234567.5", True),
    ("+7", "7", True),
    # fractions
    ("2/4", "1/2", True),
    (r"\frac{1}{2}", "0.5", True),
    (r"\frac{2}{4}", r"\frac{1}{2}", True),
    (r"\dfrac12", "1/2", True),
    (r"\tfrac{3}{4}", "0.75", True),
    (r"-\frac{1}{2}", "-0.5", True),
    (r"\frac{-1}{2}", "-1/2", True),
    (r"\frac{1}{2}", r"\frac{1}{3}", False),
    ("3/4", "4/3", False),
    # percent: "p%" equals p and p/100; "p" vs "p/100" does not
    ("50%", "50", True),
    ("50%", "0.5", True),
    (r"50\%", "1/2", True),
    ("50", "50%", True),
    ("0.05", r"5\%", True),
    ("50", "0.5", False),
    ("50%", "0.5%", False),
    ("25%", "0.5", False),
    # radicals and constants
    (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}", True),
    (r"\sqrt{8}", r"2\sqrt{2}", True),
    (r"3\sqrt{3}", r"\sqrt{27}", True),
    (r"\sqrt{4}", "2", True),
    (r"\sqrt{2}", r"\sqrt{3}", False),
    (r"\frac{\pi}{2}", r"\pi/2", True),
    (r"\pi", "3.14159", False),
    ("2^{10}", "1024", True),
    ("2^{3^2}", "512", True),
    # expressions
    ("2x+1", "1+2x", True),
    ("x^2+2x+1", "(x+1)^2", True),
    ("2x", "2y", False),
    ("x^2", "x^3", False),
    ("2x+1", "2x-1", False),
    (r"\frac{x}{2}", "x/2", True),
    # variables named like units are variables; units set in text are units; Python's ** is a power
    ("5t^3-6t", "-6t+5t^3", True),
    ("2t", "2", False),
    ("5t^3-6", "5t^3-6t", False),
    ("3m+2s", "2s+3m", True),
    ("3m", "3", False),
    (r"12\,\mathrm{m}", "12", True),
    (r"5\text{ kg}", "5", True),
    (r"2\mathrm{e}", "2", False),
    ("2**2**2", "16", True),
    ("2**3", "8", True),
    ("2**3", "6", False),
    # tuples, sets, intervals
    ("(1,2)", "(1, 2)", True),
    ("(1,2)", "(2,1)", False),
    (r"\{1,2\}", r"\{2,1\}", True),
    ("{1,2}", "{2,1}", True),
    (r"\{1,2\}", r"\{1,3\}", False),
    ("[0,1)", "[0, 1)", True),
    ("[0,1)", "(0,1)", False),
    ("[0,1]", "[0,1)", False),
    (r"(-\infty, 3]", r"(-\infty,3]", True),
    (r"(-\infty, 3]", r"(-\infty, 3)", False),
    # text around answers
    ("x = 5", "5", True),
    ("5", "x=5", True),
    ("x = 5", "6", False),
    (r"\text{(A)}", "A", True),
    (r"\text{Yes}", "yes", True),
    ("yes", "no", False),
    (r"90^\circ", "90", True),
    (r"\$5", "5", True),
    ("$12$", "12", True),
    ("18 dollars", "18", True),
    ("12 cm", "12", True),
    ("5 apples", "6", False),
    ("50 percent", "0.5", True),
    ("2 pi", "2", False),  # math names after a number are not units
    (r"\boxed{7}", "7", True),
    (r"\left(1, 2\right)", "(1,2)", True),
    # degenerate
    ("", "5", False),
    ("5", "", False),
    ("   ", "   ", False),
]


@pytest.fixture(scope="module", autouse=True)
def _worker():
    start_worker()
    yield


@pytest.mark.parametrize("pred, gold, expected", EQUIVALENCE_CASES)
def test_equivalence_table(pred, gold, expected):
    assert answers_equivalent(pred, gold) is expected


def test_equivalence_table_is_large():
    assert len(EQUIVALENCE_CASES) >= 60
    assert sum(1 for *_, eq in EQUIVALENCE_CASES if not eq) >= 20


@pytest.mark.parametrize(
    "ans, key",
    [
        ("0.5", "1/2"),
        (r"\dfrac{2}{4}", "1/2"),
        (r"\frac12", "1/2"),
        ("$1,000.0$", "1000"),
        ("-0", "0"),
        (r"50\%", "50"),
        ("50%", "50"),
        (r"\boxed{\text{Yes}}", "yes"),
        ("No Solution.", "no solution"),
        ("x = (1, 2)", "(1,2)"),
        (r"\left[0, 1\right)", "[0,1)"),
        (r"\sqrt2", r"\sqrt{2}"),
        (r"90^{\circ}", "90"),
        ("x", "x"),
        ("X", "X"),
    ],
)
def test_normalize_answer(ans, key):
    assert normalize_answer(ans) == key


@pytest.mark.parametrize(
    "pair", [("0.5", r"\frac{1}{2}"), ("(1, 2)", r"\left(1,2\right)"), ("7.", "$7$")]
)
def test_equal_keys_mean_equivalent(pair):
    a, b = pair
    assert normalize_answer(a) == normalize_answer(b)
    assert answers_equivalent(a, b)


@pytest.mark.parametrize(
    "text, gold, answer, correct",
    [
        (r"... so the total is \boxed{\frac{1}{2}}.", "0.5", r"\frac{1}{2}", True),
        ("The answer is 42.", "42", "42", True),
        ("The answer is 41.", "42", "41", False),
        ("We end with 18 eggs", "18", "18", True),
        ("no idea", "18", None, False),
        ("She pays $1,250 in total", "Her total:\n#### 1,250", "1250", True),  # GSM8K gold
        ("it is 3", r"Hence the answer is $\boxed{3}$.", "3", True),  # MATH-style gold
        (r"\boxed{(1, 2)}", "(1,2)", "(1, 2)", True),
    ],
)
def test_grade(text, gold, answer, correct):
    result = grade(text, gold)
    assert result == GradeResult(answer=answer, correct=correct)
    assert result.reward == (1.0 if correct else 0.0)


def test_grade_without_last_number_fallback():
    assert grade("We end with 18 eggs", "18", last_number_fallback=False) == GradeResult(
        None, False
    )


def test_grade_result_is_frozen():
    result = grade("The answer is 1", "1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.correct = False  # type: ignore[misc]


@pytest.mark.parametrize(
    "call",
    [
        lambda: answers_equivalent(5, "5"),
        lambda: answers_equivalent("5", None),
        lambda: grade(b"5", "5"),
        lambda: grade("5", 5),
        lambda: normalize_answer(0.5),
        lambda: answers_equivalent("5", "5", timeout="2"),
    ],
)
def test_non_str_input_raises_type_error(call):
    with pytest.raises(TypeError, match="must be .*, got"):
        call()


@pytest.mark.parametrize("timeout", [0, -1.0, float("inf"), float("nan")])
def test_bad_timeout_raises_value_error(timeout):
    with pytest.raises(ValueError, match="timeout must be a positive finite number"):
        answers_equivalent("5", "5", timeout=timeout)


# Inputs that would hang or blow up a naive grader, with compare_answers' verdict against "2": False
# when rejected up front (or decided), None when the worker runs past its timeout (killed, not
# cached). "Bounded" is enforced by the tests' pytest-timeout: a call takes at most about twice its
# timeout plus worker restarts (see compare_answers).
ADVERSARIAL = {
    "python power tower": ("10**10**10**10", False),
    "latex power tower": ("9^{9^{9^{9^{9}}}}", False),
    "power with a huge exponent": ("2^{10000000}", False),
    "negative tower": ("10^{-10^{10}}", False),
    "giant factorial": ("99999999!", False),
    "100 kB string": ("1+" * 50_000, False),
    "10k nested braces": ("{" * 10_000, False),
    "unbalanced boxed with 50k chars": (r"\boxed{" + "a" * 50_000, False),
    "slow expansion (hits the timeout)": ("(x+1)^{50000}-1", None),
    "deep nesting under the length cap": ("(" * 400 + "1" + ")" * 400, False),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_equivalence_is_bounded(name):
    text, verdict = ADVERSARIAL[name]
    assert compare_answers(text, "2", timeout=1.0) is verdict
    assert answers_equivalent(text, "2", timeout=1.0) is False
    assert grade(text, "3", timeout=1.0).correct is False


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "name", ["python power tower", "latex power tower", "100 kB string", "10k nested braces"]
)
def test_adversarial_gold_is_rejected(name):
    gold = ADVERSARIAL[name][0]
    assert compare_answers("9", gold, timeout=1.0) is False
    assert grade("The answer is 9", gold, timeout=1.0) == GradeResult("9", False, complete=True)


@pytest.mark.timeout(60)
def test_worker_recovers_after_a_timeout():
    start_worker()
    assert compare_answers("(x+1)^{40000}-1", "x+1", timeout=0.5) is None
    # the killed worker is replaced on the next slow-path call
    assert answers_equivalent("x^2+2x+1", "(x+1)^2") is True


@pytest.mark.timeout(90)
def test_works_off_the_main_thread():
    start_worker()
    results: dict[str, object] = {}

    def target():
        results["slow"] = compare_answers("(x+1)^{60000}-1", "x", timeout=1.0)
        results["symbolic"] = answers_equivalent("(x-1)(x+1)", "x^2-1")
        results["tower"] = answers_equivalent(ADVERSARIAL["latex power tower"][0], "9")
        results["grade"] = grade(r"so \boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}")

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert results["slow"] is None  # ran past its timeout: unknown
    assert results["symbolic"] is True
    assert results["tower"] is False
    assert results["grade"] == GradeResult(r"\frac{\sqrt{3}}{2}", True)


@pytest.mark.timeout(120)
def test_concurrent_threads_agree():
    cases = [(p, g, e) for p, g, e in EQUIVALENCE_CASES[:40]]
    errors: list[str] = []

    def target(offset: int):
        for p, g, e in cases[offset:] + cases[:offset]:
            # distinct timeouts bypass the shared cache, so the worker really is shared
            got = answers_equivalent(p, g, timeout=3.0 + offset / 10)
            if got is not e:
                errors.append(f"{p!r} vs {g!r}: expected {e}, got {got}")

    threads = [threading.Thread(target=target, args=(i * 7,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_stop_worker_then_use_again():
    stop_worker()
    stop_worker()  # idempotent
    assert answers_equivalent("2x+1", "1+2x", timeout=5.0) is True


def test_import_is_silent_and_light():
    import subprocess
    import sys

    # Measured against `import ttc_gym`, so only what the grading modules add counts.
    code = (
        "import contextlib, io, sys; import ttc_gym; before = set(sys.modules); buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):\n"
        "    import ttc_gym.grading, ttc_gym.answer_extraction\n"
        "added = set(sys.modules) - before\n"
        "print(sorted(m for m in added if m.split('.')[0] in ('math_verify', 'sympy', 'latex2sympy2_extended')), repr(buf.getvalue()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] ''"


# -- the worker program (ttc_gym.grading.worker) -----------------------------------------------------
def _same_text(pred: str, gold: str) -> bool:
    """A stand-in checker: equal when the strings are."""
    return pred == gold


def test_worker_answers_a_request_in_process_with_the_real_checker():
    import json

    from ttc_gym.grading.worker import handle_line, load_checker

    equal, has_math_verify = load_checker()
    assert has_math_verify is True  # math-verify is a dependency of ttc-gym
    reply = handle_line(json.dumps({"id": 3, "pred": "2x+1", "gold": "1+2x"}), equal)
    assert json.loads(reply) == {"id": 3, "equal": True}
    reply = handle_line(json.dumps({"id": "b", "pred": "2x", "gold": "2y"}), equal)
    assert json.loads(reply) == {"id": "b", "equal": False}
    assert equal("(x-1)(x+1)", "x^2-1") is True and equal("x^2", "x^3") is False


def test_worker_handler_never_fails_on_bad_requests():
    import json

    from ttc_gym.grading.worker import handle_line

    def broken(pred: str, gold: str) -> bool:
        raise ValueError("unparseable")

    def exhausted(pred: str, gold: str) -> bool:
        raise RecursionError("deep")

    def out_of_memory(pred: str, gold: str) -> bool:
        raise MemoryError

    assert handle_line("not json", _same_text) is None
    assert handle_line("[1, 2]", _same_text) is None  # JSON, but not a request object
    assert json.loads(handle_line('{"id": 1, "pred": "5"}', _same_text)) == {"id": 1, "equal": False}
    assert json.loads(handle_line('{"id": 2, "pred": "5", "gold": "5"}', broken)) == {"id": 2, "equal": False}
    # out of recursion depth or memory: no verdict (null), which the parent reports as unknown
    assert json.loads(handle_line('{"id": 3, "pred": "5", "gold": "5"}', exhausted)) == {"id": 3, "equal": None}
    assert json.loads(handle_line('{"id": 4, "pred": "5", "gold": "5"}', out_of_memory)) == {"id": 4, "equal": None}
    assert json.loads(handle_line('{"pred": "5", "gold": "5"}', _same_text)) == {"id": None, "equal": True}


def test_worker_serves_a_ready_line_then_one_reply_per_request():
    import io
    import json

    from ttc_gym.grading.worker import serve

    out = io.StringIO()
    lines = ['{"id": 1, "pred": "a", "gold": "a"}\n', "garbage\n", '{"id": 2, "pred": "a", "gold": "b"}\n']
    serve(lines, out, _same_text, math_verify=False)
    assert [json.loads(x) for x in out.getvalue().splitlines()] == [
        {"ready": True, "math_verify": False}, {"id": 1, "equal": True}, {"id": 2, "equal": False},
    ]


@pytest.mark.parametrize(
    "argv, message",
    [([], "expected 2 arguments"), (["12", "x"], "must be integers"), (["0", "100"], "must be >= 1")],
)
def test_worker_command_line_is_checked(argv, message, capsys):
    from ttc_gym.grading.worker import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: python -m ttc_gym.grading.worker PARENT_PID MEMORY_LIMIT_BYTES" in err and message in err


def _start_worker_process(parent_pid: int, limit: int = 4 * 1024**3):
    import subprocess
    import sys

    from ttc_gym.grading import _worker_environment

    return subprocess.Popen(
        [sys.executable, "-P", "-m", "ttc_gym.grading.worker", str(parent_pid), str(limit)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_worker_environment(),
    )


def test_worker_module_speaks_the_protocol_and_ends_with_its_input():
    import json
    import os

    limit = 3 * 1024**3
    proc = _start_worker_process(os.getpid(), limit)
    try:
        assert json.loads(proc.stdout.readline()) == {"ready": True, "math_verify": True}
        if os.path.exists(f"/proc/{proc.pid}/limits"):  # Linux: the address-space cap is in place
            with open(f"/proc/{proc.pid}/limits") as f:
                row = next(line for line in f if line.startswith("Max address space"))
            assert row.split()[3:5] == [str(limit), str(limit)]
        proc.stdin.write('{"id": 7, "pred": "(x+1)^2", "gold": "x^2+2x+1"}\nnot json\n{"id": 8, "pred": "1", "gold": "2"}\n')
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == {"id": 7, "equal": True}
        assert json.loads(proc.stdout.readline()) == {"id": 8, "equal": False}
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
        assert proc.stdout.read() == ""
    finally:
        proc.kill()
        proc.wait()


def test_worker_exits_when_its_parent_is_gone():
    import os
    import subprocess
    import sys

    # An intermediate parent starts a worker and exits at once. The worker's stdin is a pipe whose
    # write end this test holds open, so only the parent's death can end the worker.
    read_end, write_end = os.pipe()
    code = (
        "import os, subprocess, sys\n"
        "from ttc_gym.grading import _worker_environment\n"
        "p = subprocess.Popen([sys.executable, '-P', '-m', 'ttc_gym.grading.worker', str(os.getpid()), str(4 * 1024**3)],"
        " stdin=int(sys.argv[1]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_worker_environment())\n"
        "print(p.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code, str(read_end)], pass_fds=(read_end,), capture_output=True,
                             text=True, timeout=120, check=True)
        os.close(read_end)
        worker_pid = int(out.stdout.strip())
        deadline = time.monotonic() + 60  # a liveness bound, not a speed requirement (it checks every second)
        while _running(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        orphan_alive = _running(worker_pid)
        if orphan_alive:
            os.kill(worker_pid, 9)
        assert not orphan_alive, "the orphaned worker did not exit"
    finally:
        os.close(write_end)


def _running(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie waiting to be reaped has)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (not Linux): it exists
        return True


# -- comparisons that do not complete (worker killed, stalled, not started) ------------------------
# A pair that only the worker can decide: no fast path, different normalization keys.
SLOW_PAIR = (
    "(x+1)^{12}",
    "x^{12}+12x^{11}+66x^{10}+220x^9+495x^8+792x^7+924x^6+792x^5+495x^4+220x^3+66x^2+12x+1",
)


@pytest.fixture
def send_hook(monkeypatch):
    """Install `hook(proc, line, send)` at the one point where the grader sends a request to its
    worker (`send` is the real sender); clears the verdict cache so the pair reaches the worker."""
    from ttc_gym import grading

    real_send = grading._WORKER._send
    grading._equivalent_cached.cache_clear()
    start_worker()

    def install(hook):
        monkeypatch.setattr(grading._WORKER, "_send", lambda proc, line: hook(proc, line, real_send))

    yield install
    monkeypatch.undo()
    grading._equivalent_cached.cache_clear()


def _kill_mid_comparison(proc, line, send):
    """Stop the worker (so it cannot answer first), send the request, let ~80 ms pass, SIGKILL it."""
    import os
    import signal

    os.kill(proc.pid, signal.SIGSTOP)
    send(proc, line)
    time.sleep(0.08)
    os.kill(proc.pid, signal.SIGKILL)


@pytest.mark.timeout(60)
def test_a_worker_killed_mid_comparison_is_retried_on_a_fresh_one(send_hook):
    pids: list[int] = []

    def hook(proc, line, send):
        pids.append(proc.pid)
        if len(pids) == 1:
            _kill_mid_comparison(proc, line, send)
        else:
            send(proc, line)

    send_hook(hook)
    assert compare_answers(*SLOW_PAIR) is True  # the retry on a fresh worker decided it
    assert len(pids) == 2 and pids[0] != pids[1]
    assert answers_equivalent(*SLOW_PAIR) is True  # and the next call agrees (now from the cache)
    assert len(pids) == 2


@pytest.mark.timeout(60)
def test_a_comparison_whose_worker_dies_twice_is_unknown_and_not_cached(send_hook):
    pids: list[int] = []

    def hook(proc, line, send):
        pids.append(proc.pid)
        _kill_mid_comparison(proc, line, send)

    send_hook(hook)
    assert compare_answers(*SLOW_PAIR) is None  # unknown, distinct from "not equivalent"
    assert len(pids) == 2  # tried once more, on a fresh worker
    assert answers_equivalent(*SLOW_PAIR) is False  # the bool API: unknown counts as not equal ...
    assert grade(r"so \boxed{(x+1)^{12}}", SLOW_PAIR[1]) == GradeResult(SLOW_PAIR[0], False, complete=False)
    assert len(pids) == 6  # ... and was never cached: each call went to (two) workers again
    send_hook(lambda proc, line, send: send(proc, line))  # the worker is left alone again
    assert answers_equivalent(*SLOW_PAIR) is True
    assert grade(r"so \boxed{(x+1)^{12}}", SLOW_PAIR[1]) == GradeResult(SLOW_PAIR[0], True, complete=True)


@pytest.mark.timeout(60)
def test_a_stalled_worker_is_killed_and_the_comparison_is_unknown_not_cached(send_hook):
    import os
    import signal

    stopped: list[int] = []

    def stall(proc, line, send):
        send(proc, line)
        os.kill(proc.pid, signal.SIGSTOP)  # alive but making no progress: only the timeout ends it
        stopped.append(proc.pid)

    send_hook(stall)
    try:
        assert compare_answers(*SLOW_PAIR, timeout=0.3) is None
        assert len(stopped) == 1  # a stall ran out the timeout: not retried (the wait stays bounded)
        assert not _running(stopped[0])  # the grader killed the stalled worker
    finally:
        for pid in stopped:  # should the grader not have killed it
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
    send_hook(lambda proc, line, send: send(proc, line))
    assert compare_answers(*SLOW_PAIR, timeout=30.0) is True  # not cached: decided on a fresh worker


@pytest.mark.timeout(60)
def test_a_worker_that_cannot_start_gives_unknown_with_a_warning(monkeypatch):
    from ttc_gym import grading

    stop_worker()
    grading._equivalent_cached.cache_clear()
    monkeypatch.setattr(grading.client, "WORKER_MODULE", "ttc_gym.no_such_grading_worker")
    with pytest.warns(RuntimeWarning, match="did not start"):
        assert compare_answers(*SLOW_PAIR) is None
    monkeypatch.undo()
    assert compare_answers(*SLOW_PAIR) is True  # the failure was not cached
    with pytest.raises(RuntimeError, match="did not start"):  # start_worker() itself still raises
        monkeypatch.setattr(grading.client, "WORKER_MODULE", "ttc_gym.no_such_grading_worker")
        stop_worker()
        start_worker()
    monkeypatch.undo()
    start_worker()
