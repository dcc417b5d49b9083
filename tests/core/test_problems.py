"""Problem sources: the procedural generator (answers checked independently), file and HF loaders,
and the `make_source` registry."""

from __future__ import annotations

import json
import math
import pickle
import re
from fractions import Fraction

import numpy as np
import pytest
import sympy

from ttc_gym.problems import (
    FAMILIES,
    FAMILY_LEVELS,
    ListSource,
    Problem,
    ProblemSource,
    ProceduralSource,
    generate_problem,
    load_problems,
    make_source,
    problems_from_hf,
    register_source,
    source_names,
)
from ttc_gym.problems.word import WORD_TEMPLATES

# ----------------------------------------------------------------------------- Problem


def test_problem_is_frozen_hashable_picklable_and_meta_from_dict():
    p = Problem(id="a", question="q?", answer="1", source="s", meta={"b": [1, 2], "a": {"x": 1}})
    assert p.meta == (("a", (("x", 1),)), ("b", (1, 2)))
    assert p.meta_dict["b"] == (1, 2) and p.get_meta("missing", 7) == 7
    assert pickle.loads(pickle.dumps(p)) == p
    assert len({p, pickle.loads(pickle.dumps(p))}) == 1
    with pytest.raises(AttributeError):
        p.answer = "2"  # type: ignore[misc]


@pytest.mark.parametrize("field", ["id", "question", "answer", "source"])
def test_problem_rejects_empty_fields(field):
    kwargs = dict(id="a", question="q", answer="1", source="s")
    kwargs[field] = " "
    with pytest.raises(ValueError, match=f"Problem.{field} must be a non-empty string"):
        Problem(**kwargs)


# -------------------------------------------------------------------------- generator

N_PER_CELL = 60  # problems per (family, level): 18 cells -> ~1000 problems


def _cells():
    return [(f, lv) for f in FAMILIES for lv in FAMILY_LEVELS[f]]


@pytest.fixture(scope="module")
def generated():
    rng = np.random.default_rng(1234)
    return {
        cell: [generate_problem(rng, cell[1], cell[0]) for _ in range(N_PER_CELL)]
        for cell in _cells()
    }


def test_same_seed_same_problems_and_different_seed_differs():
    a = ProceduralSource.fixed(50, seed=7, difficulty=[1, 2, 3, 4, 5])
    b = ProceduralSource.fixed(50, seed=7, difficulty=[1, 2, 3, 4, 5])
    c = ProceduralSource.fixed(50, seed=8, difficulty=[1, 2, 3, 4, 5])
    assert a == b
    assert [p.id for p in a] != [p.id for p in c]
    src = ProceduralSource()
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    assert [src.sample(r1) for _ in range(20)] == [src.sample(r2) for _ in range(20)]


def test_ids_are_deterministic_and_content_based(generated):
    for (family, level), problems in generated.items():
        for p in problems:
            assert re.fullmatch(rf"gen-{family}-d{level}-[0-9a-f]{{10}}", p.id)
            assert p.source == "procedural" and p.difficulty == level
            assert p.get_meta("family") == family
    # same question -> same id; different question -> different id
    by_id = {}
    for problems in generated.values():
        for p in problems:
            assert by_id.setdefault(p.id, p.question) == p.question


def _sympy_value(expression: str) -> sympy.Rational:
    value = sympy.sympify(expression, rational=True)
    assert value.is_Rational, expression
    return value


def _as_rational(answer: str) -> sympy.Rational:
    assert re.fullmatch(r"-?\d+(/\d+)?", answer), answer
    return sympy.Rational(answer)


@pytest.mark.parametrize("family", ["arith", "word", "frac"])
def test_expression_answers_match_sympy(generated, family):
    for level in FAMILY_LEVELS[family]:
        for p in generated[(family, level)]:
            expected = _sympy_value(p.get_meta("expression"))
            assert _as_rational(p.answer) == expected, (p.question, p.answer)
            if family != "frac":
                assert expected.q == 1
            # every number of the expression is shown in the question
            for number in re.findall(r"\d+", p.get_meta("expression")):
                if family != "word":
                    assert re.search(rf"(?<!\d){number}(?!\d)", p.question), (number, p.question)


def test_fraction_answers_are_reduced_and_match_question(generated):
    for level in FAMILY_LEVELS["frac"]:
        for p in generated[("frac", level)]:
            num, _, den = p.answer.partition("/")
            if den:
                assert int(den) > 1 and math.gcd(int(num), int(den)) == 1, p.answer
            # recompute from the question text itself with Fraction (× ÷ and precedence)
            expr = p.question.split("What is ", 1)[1].split("?", 1)[0]
            expr = (
                re.sub(r"(\d+)/(\d+)", r"Fraction(\1, \2)", expr)
                .replace("×", "*")
                .replace("÷", "/")
            )
            assert Fraction(eval(expr, {"Fraction": Fraction})) == Fraction(p.answer), p.question


def _check_linear_solution(lhs: str, rhs: str, answer: str) -> None:
    """`answer` is the unique solution of lhs = rhs (a linear equation in x)."""
    x = sympy.Symbol("x")
    diff = sympy.expand(sympy.sympify(lhs) - sympy.sympify(rhs))
    assert sympy.degree(diff, x) == 1, (lhs, rhs)
    assert diff.subs(x, sympy.Integer(answer)) == 0, (lhs, rhs, answer)


def test_linear_answers_solve_the_equation_with_sympy(generated):
    x = sympy.Symbol("x")
    implicit = lambda s: re.sub(r"(\d)(x|\()", r"\1*\2", s)  # noqa: E731
    for level in FAMILY_LEVELS["linear"]:
        for i, p in enumerate(generated[("linear", level)]):
            _check_linear_solution(p.get_meta("lhs"), p.get_meta("rhs"), p.answer)
            # the displayed equation is the same equation
            lhs, rhs = p.question.removeprefix("Solve for x: ").removesuffix(".").split(" = ")
            _check_linear_solution(implicit(lhs), implicit(rhs), p.answer)
            if i < 3:  # and a full solve on a few
                eq = sympy.Eq(sympy.sympify(implicit(lhs)), sympy.sympify(implicit(rhs)))
                assert sympy.solve(eq, x) == [sympy.Integer(p.answer)], p.question


# Each word template's answer recomputed from its stored numbers, independently of the generator.
WORD_FORMULAS = {
    "gain": lambda n: n["a"] + n["b"],
    "combine": lambda n: n["a"] + n["b"],
    "lose": lambda n: n["a"] - n["b"],
    "unit_price": lambda n: n["n"] * n["p"],
    "change": lambda n: n["bill"] - n["n"] * n["p"],
    "age_future": lambda n: n["a"] + n["b"] + n["c"],
    "age_ratio": lambda n: Fraction(n["s"], n["k"] + 1),
    "two_speeds": lambda n: n["v"] * n["t1"] + n["w"] * n["t2"],
    "two_items": lambda n: n["n"] * n["p"] + n["m"] * n["q"],
    "two_items_change": lambda n: n["bill"] - n["n"] * n["p"] - n["m"] * n["q"],
    # k*L + n = m*(L + n)  ->  solve for L with sympy
    "age_future_ratio": lambda n: sympy.solve(
        sympy.Eq(n["k"] * sympy.Symbol("L") + n["n"], n["m"] * (sympy.Symbol("L") + n["n"])),
        sympy.Symbol("L"),
    )[0],
    "work_rate": lambda n: 1 / (Fraction(1, n["a"]) + Fraction(1, n["b"])),
    "discount": lambda n: Fraction(n["n"] * n["price"] * (100 - n["pct"]), 100),
}


def test_word_answers_recomputed_from_numbers(generated):
    seen = set()
    for level in FAMILY_LEVELS["word"]:
        for p in generated[("word", level)]:
            numbers = dict(p.get_meta("numbers"))
            template = p.get_meta("template")
            seen.add(template)
            expected = WORD_FORMULAS[template](numbers)
            assert Fraction(str(expected)) == Fraction(p.answer), (p.question, p.answer)
            assert int(p.answer) >= 0
            for value in numbers.values():
                assert re.search(rf"(?<!\d){value}(?!\d)", p.question), (value, p.question)
    assert seen == set(WORD_FORMULAS) == set(WORD_TEMPLATES)


def test_every_level_produces_problems_and_level_one_is_single_digit_addition():
    for level in range(1, 6):
        problems = ProceduralSource.fixed(30, seed=level, difficulty=level)
        assert {p.difficulty for p in problems} == {level}
        assert len({p.get_meta("family") for p in problems}) >= 2
    for p in ProceduralSource.fixed(100, seed=0, difficulty=1):
        a, b = map(int, re.fullmatch(r"\d+ \+ \d+", p.get_meta("expression")).group(0).split(" + "))
        assert 1 <= a <= 9 and 1 <= b <= 9 and int(p.answer) == a + b


def test_difficulty_mix_forms_and_errors():
    rng = np.random.default_rng(0)
    levels = [ProceduralSource({1: 3, 4: 1}).sample(rng).difficulty for _ in range(400)]
    assert set(levels) == {1, 4} and 0.65 < levels.count(1) / 400 < 0.85
    assert {ProceduralSource([2, 5]).sample(rng).difficulty for _ in range(50)} == {2, 5}
    assert {
        p.get_meta("family") for p in ProceduralSource.fixed(40, 0, difficulty=3, families=["frac"])
    } == {"frac"}
    with pytest.raises(ValueError, match="difficulty must be <= 5, got 6"):
        ProceduralSource(6)
    with pytest.raises(ValueError, match="must not be empty"):
        ProceduralSource([])
    with pytest.raises(ValueError, match="weight for level 2 must be a number >= 0"):
        ProceduralSource({1: 1.0, 2: -1})
    with pytest.raises(ValueError, match="No family in \\['frac'\\] has difficulty level 1"):
        ProceduralSource(1, families=["frac"])
    with pytest.raises(ValueError, match="Did you mean 'arith'"):
        ProceduralSource(families=["arithm"])
    with pytest.raises(
        ValueError, match="Family 'linear' has difficulty levels \\[2, 3, 4, 5\\], got 1"
    ):
        generate_problem(rng, 1, "linear")
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        ProceduralSource().sample(0)  # type: ignore[arg-type]


def test_unique_take_and_pickling():
    src = ProceduralSource(difficulty=[1, 2])
    problems = src.take(100, seed=1, unique=True)
    assert len({p.id for p in problems}) == 100
    with pytest.raises(ValueError, match="distinct problems"):
        ProceduralSource(1, families=["arith"]).take(200, seed=0, unique=True)  # only 81 exist
    clone = pickle.loads(pickle.dumps(src))
    assert clone.sample(np.random.default_rng(5)) == src.sample(np.random.default_rng(5))


# ---------------------------------------------------------------------------- loaders

GSM8K_SOLUTION = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72.\n#### 72"
)
MATH_SOLUTION = r"The probability is $\boxed{\frac{1}{2}}$."


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_gsm8k_and_math_rows(tmp_path):
    path = _write_jsonl(
        tmp_path / "mix.jsonl",
        [
            {"question": "How many clips?", "answer": GSM8K_SOLUTION},
            {
                "problem": "Flip a coin.",
                "solution": MATH_SOLUTION,
                "level": "Level 3",
                "type": "Prob",
            },
            {"id": "q-3", "prompt": "2+2?", "final_answer": 4, "difficulty": 2},
        ],
    )
    a, b, c = load_problems(path)
    assert (a.id, a.answer, a.solution, a.source, a.difficulty) == (
        "mix.jsonl:1",
        "72",
        GSM8K_SOLUTION,
        "mix.jsonl",
        None,
    )
    assert (b.id, b.answer, b.solution, b.difficulty) == (
        "mix.jsonl:2",
        r"\frac{1}{2}",
        MATH_SOLUTION,
        3,
    )
    assert b.get_meta("type") == "Prob" and b.get_meta("origin") == "mix.jsonl:2"
    assert (c.id, c.question, c.answer, c.solution, c.difficulty) == ("q-3", "2+2?", "4", None, 2)


def test_math500_style_row_keeps_answer_and_solution(tmp_path):
    row = {
        "problem": "P",
        "solution": MATH_SOLUTION,
        "answer": "\\frac{1}{2}",
        "level": 5,
        "unique_id": "test/x.json",
    }
    (p,) = load_problems(_write_jsonl(tmp_path / "m.jsonl", [row]))
    assert (p.id, p.answer, p.solution, p.difficulty) == (
        "test/x.json",
        "\\frac{1}{2}",
        MATH_SOLUTION,
        5,
    )


def test_json_list_and_data_object_with_line_numbers(tmp_path):
    rows = [{"question": "a?", "answer": "1"}, {"question": "b?", "answer": "2"}]
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(rows, indent=2))
    ps = load_problems(listed)
    assert [p.answer for p in ps] == ["1", "2"] and [p.id for p in ps] == [
        "list.json:2",
        "list.json:6",
    ]
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"meta": {"x": [1, 2]}, "data": rows}, indent=2))
    ps = load_problems(wrapped)
    assert [p.question for p in ps] == ["a?", "b?"]
    lines = wrapped.read_text().splitlines()
    assert [lines[int(p.id.split(":")[1]) - 1].strip() for p in ps] == ["{", "{"]
    assert '"a?"' in lines[int(ps[0].id.split(":")[1])]


def test_empty_files_give_no_problems_and_nested_data_keys_are_ignored(tmp_path):
    for name, content in [("e.jsonl", "\n\n"), ("e.json", "[]"), ("e.csv", ""), ("h.csv", "q,a\n")]:
        (tmp_path / name).write_text(content)
        assert load_problems(tmp_path / name) == []
    nested = tmp_path / "n.json"
    nested.write_text('{"x": {"data": [1]},\n "data": [\n\n {"question": "q", "answer": "1"}]}')
    (p,) = load_problems(nested)
    assert p.id == "n.json:4"


def test_csv_with_gsm8k_answers_multiline_cells_and_overrides(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        'Question,Answer,notes\n"How many?","step one\n#### 1,250",x\n"Q2",7,y\n',
        encoding="utf-8",
    )
    a, b = load_problems(path)
    assert (a.id, a.answer, a.get_meta("notes")) == ("p.csv:2", "1250", "x")
    assert (b.id, b.answer) == ("p.csv:4", "7")
    other = tmp_path / "o.csv"
    other.write_text("text,gold\nWhat is 1+1?,2\nWhat is 2+2?,4\nWhat is 3+3?,6\n")
    ps = load_problems(other, question_field="text", answer_field="gold", limit=2)
    assert [(p.question, p.answer) for p in ps] == [("What is 1+1?", "2"), ("What is 2+2?", "4")]


def test_limit_stops_before_later_bad_rows(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_text(
        '{"question": "a", "answer": "1"}\n{"question": "b", "answer": "2"}\nnot json\n'
    )
    assert [p.answer for p in load_problems(path, limit=2)] == ["1", "2"]
    for bad, err in [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)]:
        with pytest.raises(err, match="limit"):
            load_problems(path, limit=bad)


@pytest.mark.parametrize(
    "name, content, line, message",
    [
        (
            "bad.jsonl",
            '{"question": "a", "answer": "1"}\n\n{"question": "b", "answer": \n',
            3,
            "invalid JSON",
        ),
        ("bad.jsonl", '{"question": "a", "answer": "1"}\n[1, 2]\n', 2, "expected an object"),
        (
            "bad.jsonl",
            '{"question": "a", "answer": "1"}\n{"question": "b"}\n',
            2,
            "expected an answer field",
        ),
        (
            "bad.jsonl",
            '{"question": "  ", "answer": "1"}\n',
            1,
            "question field 'question' to be a non-empty",
        ),
        (
            "bad.jsonl",
            '{"question": "a", "answer": null}\n',
            1,
            "answer field 'answer' to be a non-empty",
        ),
        (
            "bad.jsonl",
            '{"question": "a", "answer": "work\\n####  "}\n',
            1,
            "final answer after '####'",
        ),
        (
            "bad.jsonl",
            '{"problem": "a", "solution": "x = \\\\boxed{1"}\n',
            1,
            "well-formed \\\\boxed",
        ),
        ("bad.jsonl", '{"problem": "a", "solution": "no marker here"}\n', 1, "has no final answer"),
        (
            "bad.json",
            '[\n  {"question": "a", "answer": "1"},\n  {"question": "b"}\n]',
            3,
            "answer field",
        ),
        (
            "bad.json",
            '[\n  {"question": "a", "answer": "1"},\n  {"question": "b",, }\n]',
            3,
            "invalid JSON",
        ),
        ("bad.json", '{"rows": []}', 1, "got an object with keys"),
        ("bad.csv", "question,answer\na,1\nb\n", 3, "expected 2 fields"),
        (
            "bad.csv",
            'question,answer\n"multi\nline",1\nc,\n',
            4,
            "answer field 'answer' to be a non-empty",
        ),
        ("bad.csv", "question,question\na,1\n", 1, "distinct"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, name, content, line, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_problems(path)
    text = str(info.value)
    assert f"{path}, line {line}:" in text, text
    assert re.search(message, text), text


def test_override_field_missing_suggests_close_name(tmp_path):
    path = _write_jsonl(tmp_path / "o.jsonl", [{"question": "a", "answers": "1"}])
    with pytest.raises(
        ValueError,
        match=r"o.jsonl, line 1: expected an answer field 'answer_' .*Did you mean 'answers'",
    ):
        load_problems(path, answer_field="answer_")


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_problems(tmp_path / "nope.jsonl")
    txt = tmp_path / "p.txt"
    txt.write_text("hi")
    with pytest.raises(ValueError, match=r"'\.txt'.*expected one of \.jsonl, \.json, \.csv"):
        load_problems(txt)
    with pytest.raises(IsADirectoryError):
        load_problems(tmp_path)


# -------------------------------------------------------------------------- HF datasets


def test_hf_loader_on_in_memory_dataset():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(
        [
            {"question": "How many clips?", "answer": GSM8K_SOLUTION},
            {"question": "Q2", "answer": "no marker\n#### 5"},
            {"question": "Q3", "answer": "#### 6"},
        ]
    )
    ps = problems_from_hf(ds, limit=2)
    assert [(p.id, p.answer, p.source) for p in ps] == [("hf:0", "72", "hf"), ("hf:1", "5", "hf")]
    dd = datasets.DatasetDict({"train": ds})
    assert problems_from_hf(dd, split="train")[2].answer == "6"
    with pytest.raises(ValueError, match="Unknown split 'tran'. Did you mean 'train'"):
        problems_from_hf(dd, split="tran")
    bad = datasets.Dataset.from_list(
        [{"question": "Q", "answer": "1"}, {"question": "Q", "answer": ""}]
    )
    with pytest.raises(ValueError, match="dataset 'hf', row 1: expected the answer field"):
        problems_from_hf(bad)


def test_hf_loader_by_hub_name_calls_load_dataset(monkeypatch):
    calls = []

    class FakeDatasets:
        @staticmethod
        def load_dataset(name, config, split):
            calls.append((name, config, split))
            return [{"question": "Q", "answer": "#### 3"}, {"question": "R", "answer": "#### 4"}]

    monkeypatch.setattr("ttc_gym.problems.loaders.require", lambda module, **kw: FakeDatasets)
    ps = problems_from_hf("openai/gsm8k", config="main", split="test")
    assert calls == [("openai/gsm8k", "main", "test")]
    assert [(p.id, p.answer, p.source) for p in ps] == [
        ("openai/gsm8k:test:0", "3", "hf:openai/gsm8k"),
        ("openai/gsm8k:test:1", "4", "hf:openai/gsm8k"),
    ]


def test_hf_loader_on_plain_rows_and_math_fields():
    rows = [{"problem": "P", "solution": MATH_SOLUTION, "level": "Level ?", "type": "Algebra"}]
    (p,) = problems_from_hf(rows)
    assert (p.answer, p.difficulty, p.get_meta("type")) == (r"\frac{1}{2}", None, "Algebra")
    with pytest.raises(TypeError, match="iterable of dicts"):
        problems_from_hf(42)


# ------------------------------------------------------------------------------ registry


def test_make_source_specs(tmp_path):
    rng = np.random.default_rng(0)
    assert isinstance(make_source(), ProceduralSource)
    assert isinstance(make_source("procedural"), ProblemSource)
    assert make_source("procedural:3").sample(rng).difficulty == 3
    assert make_source("procedural:1-2").levels == (1, 2)
    assert make_source("procedural:2,4").levels == (2, 4)
    path = _write_jsonl(
        tmp_path / "f.jsonl", [{"question": f"q{i}", "answer": str(i)} for i in range(5)]
    )
    for spec in (str(path), path):
        src = make_source(spec)
        assert isinstance(src, ListSource) and len(src) == 5
    problems = ProceduralSource.fixed(3, seed=0)
    src = make_source(problems)
    assert {src.sample(rng).id for _ in range(60)} == {p.id for p in problems}
    same = ProceduralSource()
    assert make_source(same) is same


def test_make_source_errors(tmp_path):
    with pytest.raises(
        ValueError, match="Unknown problem source 'procedual:3'. Did you mean 'procedural'"
    ):
        make_source("procedual:3")
    with pytest.raises(ValueError, match="Unknown problem source 'gsm8k'"):
        make_source("gsm8k")
    with pytest.raises(ValueError, match="expected a level 1..5"):
        make_source("procedural:7")
    with pytest.raises(ValueError, match="hf:<name>:<split>"):
        make_source("hf:")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        make_source(str(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match="is empty"):
        make_source([])
    with pytest.raises(TypeError, match="item 1 must be a Problem"):
        make_source([ProceduralSource.fixed(1, 0)[0], "x"])
    with pytest.raises(TypeError, match="Problem source spec must be"):
        make_source(3.5)


def test_register_source_and_hf_spec(monkeypatch):
    calls = []

    def fake(name, *, split, config):
        calls.append((name, split, config))
        return [Problem(id="x", question="q", answer="1", source="hf:" + name)]

    monkeypatch.setattr("ttc_gym.problems.registry.problems_from_hf", fake)
    make_source("hf:openai/gsm8k:main:test")
    make_source("hf:HuggingFaceH4/MATH-500")
    make_source("hf:x/y:train")
    assert calls == [
        ("openai/gsm8k", "test", "main"),
        ("HuggingFaceH4/MATH-500", "test", None),
        ("x/y", "train", None),
    ]

    register_source(
        "tiny-test-source", lambda arg: ListSource(ProceduralSource.fixed(2, int(arg or 0)))
    )
    try:
        assert "tiny-test-source" in source_names()
        assert len(make_source("tiny-test-source:4")) == 2
        with pytest.raises(ValueError, match="already registered"):
            register_source("tiny-test-source", lambda arg: None)
        with pytest.raises(ValueError, match="no ':'"):
            register_source("a:b", lambda arg: None)
    finally:
        from ttc_gym.problems import registry

        registry._SOURCES.pop("tiny-test-source", None)


# -- refused at load: non-finite gold, lone surrogates, foreign encodings, open CSV quotes, same ids --


@pytest.mark.parametrize("answer_json", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", '"nan"', '" NaN "'])
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_non_finite_gold_answers_are_refused_with_file_and_line(tmp_path, answer_json, suffix):
    good = '{"question": "q1", "answer": 1}'
    bad = '{"question": "q2", "answer": %s}' % answer_json
    path = tmp_path / f"g{suffix}"
    path.write_text(f"{good}\n{bad}\n" if suffix == ".jsonl" else f"[{good},\n{bad}]\n")
    with pytest.raises(ValueError, match=rf"g{suffix}, line 2: .*answer"):
        load_problems(path)


def test_finite_numbers_and_infinity_as_text_still_load(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text('{"question": "q", "answer": 1e300}\n{"question": "lim?", "answer": "\\\\infty"}\n')
    assert [p.answer for p in load_problems(path)] == [str(int(1e300)), "\\infty"]


def test_lone_surrogates_are_refused_in_every_text_field_fuzzed(tmp_path):
    rng = np.random.default_rng(0)
    for trial in range(40):
        surrogate = "\\ud%03x" % rng.integers(0x800, 0xfff)
        field = ["question", "answer", "solution", "id"][trial % 4]
        row = {"question": "What is 1+1?", "answer": "2", "solution": "1+1 = 2 #### 2", "id": f"p{trial}"}
        text = json.dumps(row).replace(json.dumps(row[field]), json.dumps(row[field])[:-1] + surrogate + '"', 1)
        path = tmp_path / f"s{trial}.jsonl"
        path.write_text('{"question": "fine", "answer": "1"}\n' + text + "\n")
        with pytest.raises(ValueError, match=rf"line 2: the {field} field .*lone surrogate"):
            load_problems(path)
    with pytest.raises(ValueError, match="lone surrogate"):
        Problem(id="x", question="a\ud800b", answer="1", source="s")


def test_encodings(tmp_path):
    rows = [{"question": "Wie viel kostet ein Brötchen?", "answer": "1"}]
    utf16 = tmp_path / "u16.jsonl"
    utf16.write_bytes(json.dumps(rows[0], ensure_ascii=False).encode("utf-16"))
    assert load_problems(utf16)[0].question == rows[0]["question"]
    for suffix in (".jsonl", ".json", ".csv"):
        latin = tmp_path / f"latin{suffix}"
        text = {".jsonl": json.dumps(rows[0], ensure_ascii=False), ".json": json.dumps(rows, ensure_ascii=False),
                ".csv": "question,answer\nBrötchen?,1\n"}[suffix]
        latin.write_bytes(text.encode("latin-1"))
        with pytest.raises(ValueError, match=rf"latin{suffix}: expected UTF-8 text .* re-save the file as UTF-8"):
            load_problems(latin)


@pytest.mark.parametrize("content, line", [
    ('question,answer\n"What is 1+1?,2\nQ2,3\nQ3,4\n', 2),
    ('question,answer\nQ1,1\nQ2,"3\nQ3,4\n', 3),
    ('question,answer\nQ1,1\n"multi\nline",2\nQ3,"4\n', 5),
])
def test_an_open_csv_quote_is_an_error_on_the_line_it_opens(tmp_path, content, line):
    path = tmp_path / "q.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=rf"q.csv, line {line}: expected valid CSV.*never closed"):
        load_problems(path)


def test_ids_are_unique_within_a_file(tmp_path):
    one_line = tmp_path / "one.json"
    one_line.write_text(json.dumps([{"question": f"q{i}", "answer": str(i)} for i in range(3)]))
    assert [p.id for p in load_problems(one_line)] == ["one.json:1", "one.json:1#2", "one.json:1#3"]
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"id": "a", "question": "q", "answer": "1"}\n{"id": "a", "question": "r", "answer": "2"}\n')
    with pytest.raises(ValueError, match=r"twice.jsonl, line 2: problem id 'a' was already used at .*line 1"):
        load_problems(twice)
