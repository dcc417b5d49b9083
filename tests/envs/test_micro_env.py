"""TTC-Micro-v0 (issue 30, point 1): TTC-Math-v0 on the shipped micro-reasoner with its defaults and its
length guard. The every-env tests (tests/envs/test_envs.py, test_prefix_reset.py, test_failed_step.py,
test_bad_input.py) run on it as on every registered env; here, what is its own."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.envs.micro import MICRO_DEFAULTS, MICRO_PROMPT_TOKENS, micro_episode_chars
from ttc_gym.micro.checkpoint import micro_context
from ttc_gym.micro.task import LEVELS, MicroSource
from ttc_gym.micro.traces import CHAT
from ttc_gym.prompts import PromptTemplate


@pytest.fixture(scope="module")
def env():
    return gym.make("TTC-Micro-v0")


def test_defaults_are_the_micro_study_setting(env):
    base = env.unwrapped
    settings = base._settings
    assert (settings.max_episodes, settings.num_prover_samples) == (MICRO_DEFAULTS["max_episodes"], 8) == (4, 8)
    assert base.engine.name == "micro" and base.prover.engine is base.engine
    assert settings.max_episode_chars == micro_episode_chars(4) == 204
    assert env.action_space.max_length == 204
    _, info = env.reset(seed=0)
    assert base.trace.problem.source == "micro" and base.trace.problem.difficulty in (1, 2)
    assert base.engine.model.config.max_position_embeddings == micro_context() == 1024


def test_the_prompt_bound_holds_on_every_level():
    engine = gym.make("TTC-Micro-v0").unwrapped.engine
    template = PromptTemplate()
    longest = max(engine.count_tokens(template.forced_answer_prompt(CHAT, p.question, []))
                  for level in LEVELS for p in MicroSource(level).problems(400, level))
    assert longest <= MICRO_PROMPT_TOKENS


def _one_token_per_char(engine, n: int) -> str:
    """n printable ASCII characters the micro tokenizer splits into n tokens (the worst case for ASCII)."""
    text, start = "", 0
    for k in range(n):  # each next printable character, skipping any that merges with the text before it
        start = next(i for i in range(start + 1, start + 95) if engine.count_tokens(text + chr(33 + i % 94)) == k + 1)
        text += chr(33 + start % 94)
    return text


def test_h_episodes_at_the_guard_fit_the_context_on_the_longest_problem():
    env = gym.make("TTC-Micro-v0", source="micro:5")
    base = env.unwrapped
    template = PromptTemplate()
    problem = max(MicroSource(5).problems(500, 9), key=lambda p: base.engine.count_tokens(
        template.forced_answer_prompt(CHAT, p.question, [])))
    episode = _one_token_per_char(base.engine, env.action_space.max_length)
    env.reset(seed=0, options={"problem": problem})
    for _ in range(4):
        _, _, terminated, truncated, info = env.step(episode)
    assert terminated and truncated and info["episodes_used"] == 4  # the forced answer after 4 fitted too
    with pytest.raises(ValueError, match="at most max_episode_chars=204"):
        env.reset(options={"problem": problem, "prefix": [episode + "x"]})


def test_the_guard_follows_the_budget_and_can_be_set():
    assert gym.make("TTC-Micro-v0", max_episodes=8).action_space.max_length == micro_episode_chars(8) == 101
    assert gym.make("TTC-Micro-v0", max_episode_chars=50).action_space.max_length == 50
    with pytest.raises(ValueError, match=r"max_episodes=900 episodes do not fit the micro-reasoner's context"):
        gym.make("TTC-Micro-v0", max_episodes=900)
    with pytest.raises(ValueError, match=r"max_episodes \(H\) must be >= 1"):
        gym.make("TTC-Micro-v0", max_episodes=0)


def test_the_vector_env_has_the_same_defaults_and_rollouts():
    single = gym.make("TTC-Micro-v0")
    vec = gym.make_vec("TTC-Micro-v0", num_envs=2, vectorization_mode="vector_entry_point")
    assert vec.single_action_space == single.action_space
    obs, infos = vec.reset(seed=4)
    for i in range(2):
        o, info = single.reset(seed=4 + i)
        assert o["problem"] == obs["problem"][i] and info["J"] == infos["J"][i]
    step = ["Step 1: 3 + 4 = 7.", "Step 1: 9 - 2 = 7."]
    _, rewards, *_ , infos = vec.step(step)
    for i in range(2):
        single.reset(seed=4 + i)
        assert single.step(step[i])[1] == rewards[i]
    assert np.all(infos["episodes_used"] == 1)
    vec.close()
