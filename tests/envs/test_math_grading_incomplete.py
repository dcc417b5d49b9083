"""info["grading_incomplete"] of TTC-Math-v0 / TTC-MathMeta-v0: answers the grader could not decide
(its worker stalled or died twice) are counted, count as wrong, and are never memoized — neither
by the grader nor by the prover."""

from __future__ import annotations

import gymnasium as gym
import pytest

import ttc_gym  # noqa: F401
import ttc_gym.grading as grading
from ttc_gym.engines.base import Completion
from ttc_gym.problems import Problem
from ttc_gym.engines.testing import ScriptedChatEngine

# A symbolic gold answer: the forced answers below are decided by the grader's worker, not by a
# fast path, so a worker that is down makes their grading incomplete.
PROBLEM = Problem(id="sym", question="Expand (x+1)^2.", answer="x^2+2x+1", source="test", difficulty=1)
K = 4


class SymbolicEngine(ScriptedChatEngine):
    """A fake engine: of the K forced answers, the first `correct` are "(x+1)^2" (equal to the gold)
    and the rest "(x+1)^3"; episodes are fixed text. Counts its calls."""

    name = "symbolic"

    def __init__(self, correct: int = 3):
        self.correct = correct
        self.calls = 0

    def generate(self, prompts, sampling, *, seed):
        self.calls += 1
        out = []
        for prompt in prompts:
            if prompt.endswith("\\boxed{"):  # a forced answer
                texts = ["(x+1)^2}$"] * self.correct + ["(x+1)^3}$"] * (sampling.n - self.correct)
                out.append([Completion(t, 2, "stop", "}$") for t in texts[: sampling.n]])
            else:
                out.append([Completion("[ep] I expand.", 3, "stop", "\n\n")] * sampling.n)
        return out


@pytest.fixture
def worker_down(monkeypatch):
    """`state["down"] = True` makes every worker comparison end incomplete (as when the worker is
    killed on both tries); the verdict cache starts empty and is emptied again after the test."""
    state = {"down": False}
    real_equal = grading._WORKER.equal
    monkeypatch.setattr(
        grading._WORKER, "equal", lambda pred, gold, timeout: None if state["down"] else real_equal(pred, gold, timeout)
    )
    grading._equivalent_cached.cache_clear()
    yield state
    monkeypatch.undo()
    grading._equivalent_cached.cache_clear()


def make_env(env_id: str, engine: SymbolicEngine, **kwargs):
    return gym.make(env_id, engine=engine, source=[PROBLEM], num_prover_samples=K, max_episodes=3, **kwargs)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("env_id", ["TTC-Math-v0", "TTC-MathMeta-v0"])
def test_grading_incomplete_is_zero_normally_on_every_step(env_id, worker_down):
    env = make_env(env_id, SymbolicEngine(correct=3))
    _, info = env.reset(seed=0)
    infos = [info]
    done = False
    while not done:
        _, _, term, trunc, info = env.step(0 if env_id == "TTC-MathMeta-v0" else "[ep] I expand.")
        infos.append(info)
        done = term or trunc
    assert [i["grading_incomplete"] for i in infos] == [0] * len(infos)
    assert all(type(i["grading_incomplete"]) is int for i in infos)
    assert infos[0]["J"] == 3 / K and infos[0]["prover_correct"] == (True, True, True, False)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("env_id", ["TTC-Math-v0", "TTC-MathMeta-v0"])
def test_incomplete_prover_grades_are_counted_as_wrong_and_not_memoized(env_id, worker_down):
    engine = SymbolicEngine(correct=3)
    env = make_env(env_id, engine)
    worker_down["down"] = True
    _, info = env.reset(seed=0, options={"problem": PROBLEM})
    assert info["grading_incomplete"] == K  # every forced answer of J_0 went undecided ...
    assert info["J"] == 0.0 and info["prover_correct"] == (False,) * K  # ... and counts as wrong
    calls = engine.calls
    worker_down["down"] = False
    _, info = env.reset(seed=0, options={"problem": PROBLEM})
    # The same prefix is sampled and graded again: neither the prover nor the grader kept the unknowns.
    assert engine.calls == calls + 1
    assert info["grading_incomplete"] == 0 and info["J"] == 3 / K
    _, info = env.reset(seed=0, options={"problem": PROBLEM})
    assert engine.calls == calls + 1  # a complete estimate is memoized as before


@pytest.mark.timeout(300)
def test_an_undecided_committed_answer_is_counted_and_scores_zero(worker_down):
    env = make_env("TTC-Math-v0", SymbolicEngine(correct=K))
    worker_down["down"] = True
    env.reset(seed=0)
    _, reward, term, _, info = env.step("[ep] So it is \\boxed{x^2+1+2x}.")
    assert term and info["outcome"] == 0.0 and reward == info["progress"] == 0.0
    assert info["grading_incomplete"] == K + 1  # this step's K forced answers + the committed one
    worker_down["down"] = False
    env.reset(seed=0)
    _, _, term, _, info = env.step("[ep] So it is \\boxed{x^2+1+2x}.")
    assert term and info["outcome"] == 1.0 and info["grading_incomplete"] == 0  # not cached as wrong
