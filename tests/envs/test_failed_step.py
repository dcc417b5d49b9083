"""A step that raises changes nothing (issue 33 item 2), on every registered env and the math vector
env: after the failed step, the rollout goes on exactly as if it had never been tried."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym
from ttc_gym.problems import Problem
from tests.conftest import make_fast_env
from tests.envs.test_math_envs import PROBLEM, ScriptedEngine


OTHER = Problem(id="p2", question="What is 6 + 7?", answer="13", source="test", difficulty=1)


class FlakyEngine(ScriptedEngine):
    """The scripted engine, whose prover call (the forced answers) raises once when armed: an
    engine failure after the env has started its step (for TTC-MathMeta-v0, after it wrote the
    episode with a draw from its generator)."""

    def __init__(self):
        super().__init__()
        self.armed = False

    def generate(self, prompts, sampling, *, seed):
        if self.armed and any(p.endswith("\\boxed{") for p in prompts):
            self.armed = False
            raise RuntimeError("engine down (injected by the test)")
        return super().generate(prompts, sampling, seed=seed)


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def _bad_step(env_id: str, env, action):
    """Make the next step of `env` raise; return the exception type expected."""
    if env_id in ("TTC-Sim-v0", "TTC-Replay-v0"):
        with pytest.raises(ValueError):
            env.step(99)  # outside the action space: refused before anything changes
        return
    env.unwrapped.engine.armed = True
    with pytest.raises(RuntimeError, match="engine down"):
        env.step(action)


def _make(env_id: str):
    if env_id in ("TTC-Math-v0", "TTC-MathMeta-v0", "TTC-Micro-v0"):
        return gym.make(env_id, engine=FlakyEngine(), source=[PROBLEM], num_prover_samples=8, max_episodes=4)
    return make_fast_env(env_id)


def _actions(env_id: str):
    if env_id in ("TTC-Math-v0", "TTC-Micro-v0"):
        return ["[ep] first", "[ep] second", "[ep] third", "[ep] fourth"]
    if env_id == "TTC-MathMeta-v0":
        return [0, 1, 0, 0]  # continue, explore: never answer
    return [0, 0, 0, 0]


@pytest.mark.parametrize("env_id", ttc_gym.env_ids())
def test_a_step_that_raises_changes_nothing(env_id):
    actions = _actions(env_id)

    def rollout(fail_at: int | None):
        env = _make(env_id)
        out = [env.reset(seed=3)]
        for k, action in enumerate(actions):
            if k == fail_at:
                _bad_step(env_id, env, action)
            out.append(env.step(action))
            if out[-1][2] or out[-1][3]:
                break
        return out

    clean = rollout(None)
    for fail_at in range(min(3, len(clean) - 1)):
        assert _same(rollout(fail_at), clean), f"{env_id}: a failed step at {fail_at} changed the rollout"


def test_a_failed_step_changes_nothing_in_the_math_vector_env():
    def make():
        return gym.make_vec("TTC-Math-v0", num_envs=2, vectorization_mode="vector_entry_point", engine=FlakyEngine(),
                            source=[PROBLEM, OTHER], num_prover_samples=8, max_episodes=3)

    def rollout(fail: bool):
        envs = make()
        out, failures = [envs.reset(seed=5)], 0
        for k in range(6):  # past the problems' ends: autoreset draws new problems too
            # sub-env 0 answers at once, so its restart (a draw from its generator) shares a step
            # with sub-env 1's prover call
            actions = [f"[ep] a{k}" + ("\\boxed{12}" if k == 0 else ""), f"[ep] b{k}"]
            envs.unwrapped.engine.armed = fail  # raises at this step's prover call, if it makes one
            try:
                result = envs.step(actions)
            except RuntimeError:
                failures += 1
                result = envs.step(actions)
            envs.unwrapped.engine.armed = False
            out.append(result)
        assert failures >= (2 if fail else 0)
        return out

    assert _same(rollout(True), rollout(False))


def test_an_episode_over_the_micro_models_context_leaves_the_trace_as_it_was():
    """The probe's reproduction: on TTC-Math-v0 with the micro engine, an episode that makes the
    prover's prompt overflow the model's context raises, and the env goes on as before."""
    env = gym.make("TTC-Math-v0", engine="micro", num_prover_samples=2, max_episodes=3)
    env.reset(seed=0)
    trace = env.unwrapped.trace
    with pytest.raises(ValueError, match="context"):
        env.step("1 + " * 600)
    assert trace.episodes == [] and trace.tokens_used == 0 and len(trace.tracker.j_curve) == 1
    _, _, terminated, truncated, info = env.step("let me think")
    assert info["episodes_used"] == 1 and not (terminated or truncated)


# -- observations stay inside the observation space (issue 33 item 3) -------------------------------


def test_a_question_longer_than_the_observation_space_is_refused_at_load_and_reset(tmp_path):
    import json

    from ttc_gym.problems import load_problems
    from ttc_gym.problems.core import MAX_QUESTION_CHARS

    longest = "x" * MAX_QUESTION_CHARS
    env = gym.make("TTC-Math-v0", engine=FlakyEngine(), source=[PROBLEM], num_prover_samples=2)
    obs, _ = env.reset(seed=0, options={"problem": {"question": longest, "answer": "1"}})
    assert env.observation_space.contains(obs)  # the longest allowed question fits the space
    with pytest.raises(ValueError, match=r"Problem.question is 20,001 characters long; at most 20,000"):
        env.reset(seed=0, options={"problem": {"question": longest + "x", "answer": "1"}})
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"question": longest + "x", "answer": "1"}) + "\n")
    with pytest.raises(ValueError, match=r"long.jsonl, line 1: Problem.question is 20,001"):
        load_problems(path)


def test_a_failed_answer_action_leaves_the_meta_env_running():
    """TTC-MathMeta-v0's ANSWER with a policy other than the prover samples the policy's forced
    answer; when that engine call raises, the problem has not ended and the same action works."""
    from ttc_gym.actions import MetaAction

    def make():
        return gym.make("TTC-MathMeta-v0", engine=FlakyEngine(), prover_engine=ScriptedEngine(), source=[PROBLEM],
                        num_prover_samples=8, max_episodes=4)

    clean = make()
    clean.reset(seed=1)
    clean.step(MetaAction.CONTINUE)
    expected = clean.step(MetaAction.ANSWER)
    env = make()
    env.reset(seed=1)
    env.step(MetaAction.CONTINUE)
    env.unwrapped.engine.armed = True
    with pytest.raises(RuntimeError, match="engine down"):
        env.step(MetaAction.ANSWER)
    assert not env.unwrapped._trace.done
    assert _same(env.step(MetaAction.ANSWER), expected)
