"""Answer extraction: boxed, "the answer is", last-number fallback, GSM8K, adversarial input."""

from __future__ import annotations

import time

import pytest

from ttc_gym.answer_extraction import (
    SCAN_CHARS,
    extract_answer,
    extract_boxed,
    extract_last_number,
    gsm8k_answer,
)

BOXED_CASES = [
    (r"so the result is \boxed{5}.", "5"),
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\boxed{\frac{\sqrt{3}}{2}} done", r"\frac{\sqrt{3}}{2}"),
    (r"first \boxed{1} then \boxed{2}", "2"),
    (r"\fbox{7}", "7"),
    (r"$\boxed 5$", "5"),
    (r"\boxed {12}", "12"),
    (r"\boxed{\{1,2\}}", r"\{1,2\}"),  # escaped braces are content
    (r"\boxed{3} and then an unclosed \boxed{4", "3"),  # malformed last box: the previous one
    (r"\boxed{ }", None),
    (r"\boxed{", None),
    ("no box here", None),
    (r"\boxedx{5}", None),  # another command
    (r"\boxed{(1, 2)}", "(1, 2)"),
]


@pytest.mark.parametrize("text, expected", BOXED_CASES)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


ANSWER_CASES = [
    # (text, with fallback, without fallback)
    (r"We get 3 and 4, so \boxed{7}.", "7", "7"),
    ("Thus, the answer is $42$.", "42", "42"),
    ("The answer is: 17 because x = 3.", "17", "17"),
    ("The final answer is \\(\\frac{3}{4}\\).", r"\frac{3}{4}", r"\frac{3}{4}"),
    ("**Final Answer:** 12", "12", "12"),
    ("**Answer:**\n\n3.5\n", "3.5", "3.5"),
    ("Answer: -4", "-4", "-4"),
    ("the answer is 1 ... wait, no. The answer is 2.", "2", "2"),  # the last phrase wins
    ("so the answer is 3.14.", "3.14", "3.14"),
    ("Final answer: (1, 2)", "(1, 2)", "(1, 2)"),
    (r"The answer is 5, and \boxed{6}", "6", "6"),  # boxed beats phrases
    ("I got 3 apples and then 1,250 more", "1250", None),
    ("x = 10-5", "5", None),  # '-' after a digit is a minus sign, not a sign
    ("the ratio is 3/4.", "3/4", None),
    ("it is -2.5 degrees", "-2.5", None),
    ("about .5 of them", ".5", None),
    ("nothing numeric", None, None),
    ("", None, None),
]


@pytest.mark.parametrize("text, with_fallback, without_fallback", ANSWER_CASES)
def test_extract_answer(text, with_fallback, without_fallback):
    assert extract_answer(text) == with_fallback
    assert extract_answer(text, last_number_fallback=False) == without_fallback


@pytest.mark.parametrize(
    "solution, expected",
    [
        ("Natalia sold 48/2 = 24 clips.\n#### 72", "72"),
        ("She has 1,000 dollars.\n#### 1,000", "1000"),
        ("first #### 3 then\n#### 5\n", "5"),
        ("#### -7.5", "-7.5"),
        ("no marker 12", None),
        ("#### ", None),
    ],
)
def test_gsm8k_answer(solution, expected):
    assert gsm8k_answer(solution) == expected


def test_last_number_only_looks_at_the_tail():
    assert extract_last_number("7 " + "x" * (2 * SCAN_CHARS)) is None
    assert extract_last_number("x" * (2 * SCAN_CHARS) + " 8") == "8"


@pytest.mark.parametrize("func", [extract_boxed, extract_answer, gsm8k_answer, extract_last_number])
@pytest.mark.parametrize("bad", [None, 5, b"\\boxed{1}", ["5"]])
def test_non_str_raises_type_error(func, bad):
    with pytest.raises(TypeError, match="must be a str, got"):
        func(bad)


def test_fallback_flag_must_be_bool():
    with pytest.raises(TypeError, match="last_number_fallback must be a bool"):
        extract_answer("5", last_number_fallback="no")


ADVERSARIAL = {
    "100 kB of text": "lorem ipsum " * 9000,
    "100 kB of digits": "1" * 100_000,
    "10k nested braces": r"\boxed" + "{" * 10_000,
    "balanced deep nesting": r"\boxed" + "{" * 5_000 + "1" + "}" * 5_000,
    "unbalanced boxed with 50k chars": r"\boxed{" + "a" * 50_000,
    "many unclosed boxes": r"\boxed{" * 20_000,
    "many answer phrases": "the answer is " * 10_000,
    "whitespace then a phrase": " " * 100_000 + "answer",
    "many minus signs": "-" * 100_000,
    "comma runs": "1," * 50_000,
    "many dollar signs": "answer: " + "$" * 100_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_inputs_answer_quickly(name):
    text = ADVERSARIAL[name]
    start = time.monotonic()
    for func in (extract_boxed, extract_answer, gsm8k_answer, extract_last_number):
        result = func(text)
        assert result is None or isinstance(result, str)
    assert time.monotonic() - start < 5.0


def test_deep_nesting_is_treated_as_malformed():
    assert extract_boxed(r"\boxed" + "{" * 5_000 + "1" + "}" * 5_000) is None
    assert extract_boxed(r"\boxed" + "{" * 10 + "1" + "}" * 10) == "{" * 9 + "1" + "}" * 9
