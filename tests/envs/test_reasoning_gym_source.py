"""reasoning-gym tasks as a problem source of the math envs (`source="reasoning-gym:<dataset>[?params]"`),
through gym.make with a scripted engine: the real reasoning-gym generators and scorers decide the
outcome and J, on a number answer (basic_arithmetic), a word (spell_backward) and a list
(number_sorting); the bench runs on one."""

from __future__ import annotations

import json
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("reasoning_gym")  # in the `test` extra: CI runs this file

import ttc_gym  # noqa: F401
from ttc_gym.engines.base import Completion
from ttc_gym.engines.testing import ScriptedChatEngine
from ttc_gym.problems import make_source
from ttc_gym.problems.graders import grade_answer

K = 4
NUMBER = "reasoning-gym:basic_arithmetic?max_terms=3&size=50"
WORD = "reasoning-gym:spell_backward?size=50"
LIST = "reasoning-gym:number_sorting?max_numbers=4&size=50"


class GoldLookupEngine(ScriptedChatEngine):
    """A test engine that knows the source's gold answers (looked up by the question in the prompt):
    of the K forced answers the first `correct` state `stated(gold)`, the rest a wrong answer; episodes
    are fixed text."""

    def __init__(self, spec: str, correct: int = 3, stated=lambda gold: gold):
        source = make_source(spec)
        self.gold = {p.question: p.answer for p in map(source.problem, range(len(source)))}
        self.correct, self.stated = correct, stated

    def gold_in(self, prompt: str) -> str:
        return next(gold for question, gold in self.gold.items() if question in prompt)

    def generate(self, prompts, sampling, *, seed):
        out = []
        for prompt in prompts:
            if prompt.endswith("\\boxed{"):  # a forced answer
                right = self.stated(self.gold_in(prompt))
                texts = [f"{right}}}$"] * self.correct + ["no idea}$"] * (sampling.n - self.correct)
                out.append([Completion(t, 2, "stop", "}$") for t in texts[: sampling.n]])
            else:
                out.append([Completion("[ep] Let me work it out.", 5, "stop", "\n\n")] * sampling.n)
        return out


def make_env(spec: str, engine=None, **kwargs):
    engine = engine or GoldLookupEngine(spec)
    return gym.make("TTC-Math-v0", engine=engine, source=spec, num_prover_samples=K, max_episodes=3, **kwargs)


@pytest.mark.parametrize("spec", [NUMBER, WORD, LIST])
def test_reasoning_gym_scorer_decides_j_and_the_outcome(spec):
    engine = GoldLookupEngine(spec)
    env = make_env(spec, engine)
    obs, info = env.reset(seed=0)
    gold = engine.gold[obs["problem"]]
    assert info["problem_id"].startswith("rg-") and "gold_answer" not in info
    assert info["J"] == 3 / K and info["prover_correct"] == (True, True, True, False)
    _, reward, terminated, _, info = env.step("[ep] Let me work it out.")
    assert not terminated and info["J"] == 3 / K and info["progress"] == 0.0
    _, reward, terminated, _, info = env.step(f"So the answer is \\boxed{{{gold}}}.")
    assert terminated and info["outcome"] == 1.0 and info["committed_answer"] == gold and info["gold_answer"] == gold
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("So the answer is \\boxed{no idea}.")
    assert terminated and info["outcome"] == 0.0


def test_list_answers_are_graded_as_stated_not_normalized():
    """number_sorting's scorer compares lists of numbers; ttc-gym's normalizer (which drops spaces and
    lower-cases words) is not applied first, and a wrong order is wrong."""
    problem = make_source(LIST).sample(np.random.default_rng(0))
    items = json.loads(problem.answer.replace("'", '"'))
    assert grade_answer(problem.answer, problem) is True
    assert grade_answer(str(items[::-1]), problem) is False


def test_numeric_golds_also_accept_math_equivalence_unless_turned_off():
    env = make_env(NUMBER, GoldLookupEngine(NUMBER, correct=2, stated=lambda gold: f"{gold}.0"))
    _, info = env.reset(seed=0)
    assert info["J"] == 2 / K  # "-14.0" for "-14": reasoning-gym's exact text rejects it, math equality accepts it
    spec = NUMBER + "&math_equivalence=false"
    env = make_env(spec, GoldLookupEngine(spec, correct=2, stated=lambda gold: f"{gold}.0"))
    _, info = env.reset(seed=0)
    assert info["J"] == 0.0
    words = make_source("reasoning-gym:word_sorting?max_words=4").sample(np.random.default_rng(0))
    assert grade_answer(words.answer, words) is True
    assert grade_answer(words.answer.lower(), words) is False  # ASCII order: case matters to its scorer


def test_same_seed_same_problems_and_the_env_seed_picks_them():
    ids = [make_env(NUMBER).reset(seed=s)[1]["problem_id"] for s in (1, 1, 2, 3, 4)]
    assert ids[0] == ids[1] and len(set(ids[1:])) > 1
    src = make_source(NUMBER)
    assert src.sample(np.random.default_rng(7)) == src.sample(np.random.default_rng(7))
    # The problem set is reasoning-gym's own dataset for the config (seed 0 by default).
    import reasoning_gym

    first = reasoning_gym.create_dataset("basic_arithmetic", max_terms=3, size=50, seed=0)[0]
    assert src.problem(0).question == first["question"] and src.problem(0).answer == first["answer"]


def test_check_env_passes_with_a_reasoning_gym_source():
    check_env(make_env(WORD).unwrapped, skip_render_check=True)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("reasoning-gym:basic_arithmetc", "Did you mean 'basic_arithmetic'"),
        ("reasoning-gym:basic_arithmetic?max_term=2", "Did you mean 'max_terms'"),
        ("reasoning-gym:basic_arithmetic?min_terms=5&max_terms=2", "reasoning-gym rejected the config"),
        ("reasoning-gym:", "expected 'reasoning-gym:<dataset>'"),
        ("reasoning-gym:basic_arithmetic?math_equivalence=maybe", "true or false"),
        ("reasoning-gym:basic_arithmetic?size", "key=value"),
        ("reasoning-gm:basic_arithmetic", "Did you mean 'reasoning-gym'"),
    ],
)
def test_bad_specs_say_what_was_expected(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("?", r"\?")):
        make_source(spec)


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    monkeypatch.setitem(sys.modules, "reasoning_gym.factory", None)
    with pytest.raises(ImportError, match=r"pip install 'ttc-gym\[reasoning-gym\]'"):
        make_source(WORD)


def test_bench_runs_on_a_reasoning_gym_source(tmp_path):
    import io

    from rich.console import Console

    from ttc_gym.bench.runner import BenchConfig, run_bench

    config = BenchConfig(env_id="TTC-MathMeta-v0", agents=("answer-after:1",), budgets=(2,), num_problems=3,
                         env_kwargs={"engine": GoldLookupEngine(WORD), "source": WORD, "num_prover_samples": K},
                         out_dir=str(tmp_path / "bench"))
    result = run_bench(config, progress=False, plots=False, console=Console(file=io.StringIO()), notify=lambda m: None)
    records = [json.loads(line) for line in (tmp_path / "bench" / "results.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["extra"]["problem_id"].startswith("rg-spell_backward-") for r in records)
    assert len({r["extra"]["problem_id"] for r in records}) > 1
    # answer-after:1 commits the reasoner's own forced answer after one episode: its first sample, the gold.
    assert [r["outcome"] for r in records] == [1.0] * 3 and all(r["j_curve"] == [0.75, 0.75] for r in records)
    assert result.computed == 3
