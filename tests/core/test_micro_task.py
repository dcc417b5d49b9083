"""The micro-reasoner's problem family, traces and tokenizer (ttc_gym.micro; no model needed)."""

import numpy as np
import pytest

from ttc_gym.grading import compare_answers
from ttc_gym.micro.task import LEVEL_SPECS, MicroSource, apply_op, parse_question, run_chain, source_from_spec
from ttc_gym.micro.traces import TraceStyle, forced_example, generate_trace, trace_example
from ttc_gym.problems import make_source
from ttc_gym.prompts import STOP_THINKING, PromptTemplate


def _problems(n=300, seed=0, difficulty=None):
    return MicroSource(difficulty).problems(n, seed)


def test_same_seed_same_problems_and_levels_follow_the_spec():
    a, b = _problems(seed=3), _problems(seed=3)
    assert a == b and a != _problems(seed=4)
    for p in a:
        spec = LEVEL_SPECS[p.difficulty]
        start, ops = parse_question(p.question)
        assert len(ops) == spec.steps and start == p.get_meta("start")
        values = run_chain(start, ops)
        assert all(1 <= v <= spec.max_value for v in values), (p.question, values)
        assert str(values[-1]) == p.answer and compare_answers(p.answer, p.answer) is True
    assert {p.difficulty for p in a} == {1, 2, 3, 4, 5}


def test_source_specs():
    assert make_source("micro:2").difficulty == {2: 1.0}
    assert make_source("micro:1-3").difficulty == pytest.approx({1: 1 / 3, 2: 1 / 3, 3: 1 / 3})
    assert make_source("micro:1,5").difficulty == {1: 0.5, 5: 0.5}
    assert set(make_source("micro").difficulty) == {1, 2, 3, 4, 5}
    assert {p.difficulty for p in source_from_spec("4").problems(20, 0)} == {4}
    for bad in ("6", "3-1", "x", "1-"):
        with pytest.raises(ValueError, match="micro:"):
            make_source(f"micro:{bad}")
    with pytest.raises(ValueError, match="level"):
        MicroSource(7)
    with pytest.raises(ValueError, match="not a micro problem"):
        parse_question("What is 2 + 2?")


def test_apply_op_rejects_unknown_ops():
    assert apply_op(4, "mul", 3) == 12 and apply_op(4, "sub", 3) == 1
    with pytest.raises(ValueError, match="op must be one of"):
        apply_op(1, "div", 2)


def test_clean_traces_are_correct_and_their_forced_answers_are_the_gold():
    rng = np.random.default_rng(0)
    clean = TraceStyle(slip=(), check=0.0)
    for p in _problems(50):
        t = generate_trace(p, rng, clean)
        assert t.correct and t.kinds == ("step",) * len(parse_question(p.question)[1]) + ("commit",)
        assert all(t.forced_answer(j) == int(p.answer) for j in range(len(t.episodes) + 1))
        assert t.episodes[-1] == f"The final answer is $\\boxed{{{p.answer}}}$."


def test_slips_checks_fixes_and_restarts_happen_at_their_rates():
    rng = np.random.default_rng(1)
    style = TraceStyle(slip=(("add", 0.3), ("sub", 0.3), ("mul", 0.3)), check=0.5, miss=0.2, restart=0.3)
    kinds, wrong_after_slip, total = {}, 0, 0
    for p in _problems(400, seed=2):
        t = generate_trace(p, rng, style)
        for k in t.kinds:
            kinds[k] = kinds.get(k, 0) + 1
        total += 1
        wrong_after_slip += not t.correct
    steps = kinds["step"] + kinds["slip"]
    assert kinds["slip"] / steps == pytest.approx(0.3, abs=0.04)
    checks = kinds["check"] + kinds["miss"] + kinds["fix"] + kinds["found"]
    assert checks / steps == pytest.approx(0.5, abs=0.05)
    assert kinds["restart"] == kinds["found"] > 0
    assert kinds["miss"] / (kinds["miss"] + kinds["fix"] + kinds["found"]) == pytest.approx(0.2, abs=0.06)
    assert 0.2 < wrong_after_slip / total < 0.9


def test_forced_answer_falls_after_a_slip_and_rises_after_a_fix():
    rng = np.random.default_rng(5)
    style = TraceStyle(slip=(("add", 0.5), ("sub", 0.5), ("mul", 0.5)), check=1.0, miss=0.0, restart=0.0)
    seen = 0
    for p in _problems(50, seed=6):
        t = generate_trace(p, rng, style)
        gold = int(p.answer)
        for j, kind in enumerate(t.kinds, start=1):
            if kind == "slip":
                assert t.forced_answer(j) != gold or t.forced_answer(j - 1) != gold
            if kind == "fix":
                assert t.forced_answer(j) == gold
                seen += 1
        assert t.correct
    assert seen > 10


def test_training_texts_are_the_env_prompts():
    rng = np.random.default_rng(0)
    p = _problems(1)[0]
    t = generate_trace(p, rng)
    template = PromptTemplate()
    prompt, target = trace_example(t)
    assert prompt.endswith("<|im_start|>assistant\n") and p.question in prompt
    assert target.split("\n\n")[0] == t.episodes[0] and target.endswith("$.<|im_end|>")
    prompt, target = forced_example(t, 1)
    assert prompt.endswith(template.forced_answer_suffix) and STOP_THINKING in prompt
    assert t.episodes[0] in prompt and t.episodes[1] not in prompt
    assert target == f"{t.forced_answer(1)}}}$"
    with pytest.raises(ValueError, match="boxed"):
        forced_example(t, 0, PromptTemplate(forced_answer="close_think"))


def test_tokenizer_round_trips_and_splits_digits():
    from ttc_gym.micro.tokenizer import build_tokenizer

    rng = np.random.default_rng(0)
    texts = []
    for p in _problems(60):
        t = generate_trace(p, rng)
        texts += ["".join(trace_example(t)), "".join(forced_example(t, 0))]
    tok = build_tokenizer(texts, vocab_size=300)
    assert len(tok) <= 300 and tok.eos_token == "<|im_end|>" and tok.bos_token is None
    assert build_tokenizer(texts, vocab_size=300).get_vocab() == tok.get_vocab()
    for text in texts[:10]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    pieces = [tok.decode([i]) for i in tok("= 128.", add_special_tokens=False)["input_ids"]]
    assert pieces[-4:] == [" 1", "2", "8", "."]
    assert tok.convert_tokens_to_ids("<|im_start|>") != tok.unk_token_id
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer(texts, vocab_size=100)
