"""The grader never evaluates answer text (issue 33 item 1): payloads planted on either side of a
comparison, with math-verify made unimportable, must not run — in the checker and through the worker."""

from __future__ import annotations

import sys

import pytest

from ttc_gym.grading import compare_answers, stop_worker

PAYLOADS = [
    "__import__('os').mkdir('pwned1')",
    "__import__('os').system('touch pwned2')",
    "exec(\"open('pwned3', 'w')\")",
    "[open('pwned4', 'w')]",
    "(lambda: __import__('os').mkdir('pwned5'))()",
    "2**__import__('os').mkdir('pwned6')",
    "x + __import__('os').mkdir('pwned7')",
]


def _pairs():
    for payload in PAYLOADS:
        yield "5", payload
        yield payload, "5"
        yield payload, payload


def test_checker_without_math_verify_never_runs_planted_code(monkeypatch, tmp_path):
    from ttc_gym.grading.worker import load_checker

    monkeypatch.setitem(sys.modules, "math_verify", None)  # `import math_verify` now raises ImportError
    monkeypatch.chdir(tmp_path)
    equal, has_math_verify = load_checker()
    assert has_math_verify is False
    for pred, gold in _pairs():
        try:
            equal(pred, gold)
        except (MemoryError, RecursionError):
            pass
    assert list(tmp_path.iterdir()) == []
    # the grammar fallback still decides ordinary answers
    assert equal("2x+1", "1+2x") is True and equal("x^2", "x**2") is True and equal("2x", "3x") is False


def test_checker_refuses_to_run_without_a_parser_that_does_not_evaluate(monkeypatch):
    from ttc_gym.grading.worker import CheckerUnavailable, load_checker

    monkeypatch.setitem(sys.modules, "math_verify", None)
    monkeypatch.setitem(sys.modules, "latex2sympy2_extended", None)
    with pytest.raises(CheckerUnavailable, match="pip install math-verify"):
        load_checker()


@pytest.mark.timeout(180)
def test_worker_without_math_verify_never_runs_planted_code(monkeypatch, tmp_path):
    shadow = tmp_path / "shadow" / "math_verify"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "shadow"))
    monkeypatch.chdir(work)
    stop_worker()
    try:
        for i, (pred, gold) in enumerate(_pairs()):
            # a fresh timeout per pair defeats the verdict cache of earlier runs
            verdict = compare_answers(pred, gold, timeout=20.0 + i / 1000)
            assert verdict is (pred == gold) or (verdict is None and pred != gold)
        assert compare_answers("2x+1", "1+2x", timeout=20.0) is True
    finally:
        stop_worker()  # the next comparison starts a worker with math-verify again
    assert list(work.iterdir()) == []
