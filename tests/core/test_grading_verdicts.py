r"""The grader's verdict table of issue 33 (items 4 and 5): every verdict the hostile probe found
wrong, each as it must be, with the conventions of ``ttc_gym.grading`` (its module docstring)."""

from __future__ import annotations

import json

import pytest

from ttc_gym.grading import MAX_ANSWER_CHARS, compare_answers, normalize_answer

# (pred, gold, verdict)
VERDICTS = [
    # whitespace never joins digits; a comma followed by a space makes a list
    ("2 3", "23", False),
    ("1, 234", "1234", False),
    (r"\boxed{2 3}", "23", False),
    ("1,234", "1234", True),
    (r"1\,234", "1234", True),  # LaTeX thousands separators
    ("10{,}000", "10000", True),
    # decimals are exactly the number written
    (r"\sqrt{2}", "1.41421356", False),
    ("1.41421356", r"\sqrt{2}", False),
    ("0." + "3" * 500, "1/3", False),
    ("3.14", r"\pi", False),
    ("0.5", r"\frac{1}{2}", True),
    # a set is no interval or tuple
    ("(1,2)", r"\{1,2\}", False),
    (r"\{1,2\}", r"\{2,1\}", True),
    # scientific notation
    ("1e3", "1000", True),
    ("1.0e+02", "100", True),
    ("0.00001", "1e-05", True),
    ("1e-05", "0.00001", True),
    ("2e3", "2000.5", False),
    # complex numbers: a free i is the imaginary unit
    ("i^2", "-1", True),
    (r"e^{i\pi}", "-1", True),
    (r"\sqrt{-1}", "i", True),
    ("(1+i)^8", "16", True),
    ("i", "-1", False),
    # Unicode that stands for ASCII math; invisible characters
    ("½", "1/2", True),
    ("\u200b5", "5", True),
    ("−3", "-3", True),
    # the empty set
    (r"\varnothing", r"\emptyset", True),
    # repeating decimals
    (r"0.\overline{9}", "1", True),
    (r"0.1\overline{6}", "1/6", True),
    (r"0.\overline{3}", "0.333", False),
    # a chained inequality in one variable is its interval
    ("1 < x < 2", "(1,2)", True),
    (r"-1 \le x < 3", "[-1,3)", True),
    ("1 < x < 2", "[1,2]", False),
    # presentation wrappers
    (r"\color{red}{5}", "5", True),
    (r"\textcolor{blue}{7}", "7", True),
    (r"\text{\text{\text{\text{\text{5}}}}}", "5", True),
    # equations: a lone variable on either side of the value
    ("5 = x", "5", True),
    ("x = 5", "5", True),
    ("y = 2x+1", "2x+1", True),
    ("5 = x", "6", False),
    # units: a unit word or \text{} unit after a number is dropped; a bare letter is a product
    ("18 dollars", "18", True),
    (r"12\,\mathrm{m}", "12", True),
    ("12m", "12", False),
]


@pytest.mark.parametrize("pred, gold, verdict", VERDICTS, ids=[f"{p!r}-vs-{g!r}"[:60] for p, g, _ in VERDICTS])
def test_verdict(pred, gold, verdict):
    assert compare_answers(pred, gold, timeout=30.0) is verdict


def test_keys_never_join_digits():
    assert normalize_answer("2 3") != normalize_answer("23")
    assert normalize_answer("1, 234") != normalize_answer("1234")
    assert normalize_answer("1e3") == normalize_answer("1000") == "1000"


def test_a_float_gold_keeps_its_text(tmp_path):
    from ttc_gym.problems import load_problems

    path = tmp_path / "p.jsonl"
    path.write_text('{"question": "q", "answer": 0.00001}\n')
    [problem] = load_problems(path)
    assert problem.answer == "0.00001"
    assert compare_answers("0.00001", problem.answer) is True


def test_a_gold_the_grader_cannot_compare_is_refused_at_load(tmp_path):
    from ttc_gym.problems import Problem, load_problems

    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "1" * (MAX_ANSWER_CHARS + 1)}) + "\n")
    with pytest.raises(ValueError, match=r"p.jsonl, line 1: Problem.answer is 1,001 characters long.*could never be solved"):
        load_problems(path)
    with pytest.raises(ValueError, match="at most 1,000 characters"):
        Problem(id="a", question="q", answer="7" * 5001, source="s")
