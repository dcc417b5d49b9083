"""The agent contract (`ttc_gym.agent.Agent`): every agent takes `reset(seed=...)` with one meaning of
seed, settings are frozen with their defaults in one place, and the bench factories agree with them."""

from __future__ import annotations

import dataclasses
import inspect
import re

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.agent import Agent, problem_seed, reset_agent
from ttc_gym.agents import factories
from ttc_gym.agents.factories import LLMSettings
from ttc_gym.agents.sb3 import MemoizedPolicyAgent, PPOSettings
from ttc_gym.agents.heuristics import (
    AnswerAfterK,
    AnswerWhenConfident,
    NeverVerify,
    OracleAnswerWhenConfident,
    RandomAgent,
    gold_free_confidence,
)
from ttc_gym.agents.llm import LLMAgent
from ttc_gym.agents.oracle import OracleAgent
from ttc_gym.agents.sb3 import SB3Agent
from ttc_gym.agents.strategies import (
    BudgetForcing,
    MajorityVote,
    OracleStopWhenConfident,
    StopWhenConfident,
    ThinkUntilBudget,
)
from ttc_gym.agents.tabular import QLearningAgent, QLearningConfig
from ttc_gym.bench import AGENTS, agent_arguments
from ttc_gym.evaluation import run_rollout

AGENT_CLASSES = (AnswerAfterK, AnswerWhenConfident, OracleAnswerWhenConfident, NeverVerify, RandomAgent,
                 ThinkUntilBudget, BudgetForcing, StopWhenConfident, OracleStopWhenConfident, MajorityVote, OracleAgent,
                 QLearningAgent, SB3Agent, MemoizedPolicyAgent, LLMAgent)


@pytest.mark.parametrize("cls", AGENT_CLASSES, ids=lambda c: c.__name__)
def test_every_agent_class_follows_the_protocol(cls):
    reset = inspect.signature(cls.reset).parameters
    assert "seed" in reset and reset["seed"].default is None, f"{cls.__name__}.reset must take seed=None"
    assert callable(getattr(cls, "act", None))


def test_random_agent_is_reproducible_problem_by_problem():
    env = gym.make("TTC-Sim-v0")
    agent = RandomAgent(env.action_space, seed=7)
    in_order = [run_rollout(env, agent, seed=s).actions for s in range(6)]
    backwards = {s: run_rollout(env, agent, seed=s).actions for s in reversed(range(6))}
    assert in_order == [backwards[s] for s in range(6)]  # problem i does not depend on what ran before
    assert len({tuple(a) for a in in_order}) > 1
    other_base = RandomAgent(env.action_space, seed=8)
    assert [run_rollout(env, other_base, seed=s).actions for s in range(6)] != in_order
    # reset() without a seed carries on with the current generator instead of restarting it.
    agent.reset(seed=0)
    first = [agent.act(None) for _ in range(20)]
    agent.reset()
    assert [agent.act(None) for _ in range(20)] != first


def test_problem_seed_mixes_both_seeds_and_rejects_bad_ones():
    seeds = {problem_seed(b, s) for b in range(5) for s in range(5)}
    assert len(seeds) == 25 and all(0 <= x < 2**32 for x in seeds)
    assert problem_seed(3, 4) == problem_seed(3, 4) != problem_seed(4, 3)
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        problem_seed(0, -1)


class _Recorder:
    def __init__(self):
        self.seeds = []

    def reset(self, seed=None):
        self.seeds.append(seed)

    def act(self, obs, info):
        return "text"


def test_llm_strategies_pass_the_problem_seed_to_their_llm():
    llm = _Recorder()
    vote = MajorityVote(llm, k=2)
    vote._pool.append("3")
    for strategy in (ThinkUntilBudget(llm), BudgetForcing(llm), StopWhenConfident(llm), OracleStopWhenConfident(llm), vote):
        strategy.reset(seed=11)
    assert llm.seeds == [11] * 5 and vote._pool == []


def test_llm_agent_reset_derives_the_problem_seed_from_its_base_seed():
    from tests.conftest import tiny_engine

    agent = LLMAgent(tiny_engine(), seed=5)
    assert agent.seed == agent.base_seed == 5
    agent.reset(seed=3)
    three = agent.seed
    assert three == problem_seed(5, 3) and agent.base_seed == 5
    agent.reset(seed=4)
    assert agent.seed != three
    agent.reset(seed=3)
    assert agent.seed == three  # re-derived from the base seed, not from the previous problem's
    agent.reset()
    assert agent.seed == three  # no seed: it stays


def test_run_rollout_accepts_act_only_and_seedless_reset_agents():
    env = gym.make("TTC-Sim-v0")

    class ActOnly:
        def act(self, obs, info):
            return 3

    class OldReset:
        resets = 0

        def reset(self):
            self.resets += 1

        def act(self, obs, info):
            return 3

    old = OldReset()
    assert run_rollout(env, ActOnly(), seed=0).actions == [3]
    assert run_rollout(env, old, seed=0).actions == [3] and old.resets == 1
    recorder = _Recorder()
    reset_agent(recorder, 9)
    assert recorder.seeds == [9] and isinstance(recorder, Agent)
    with pytest.raises(TypeError, match="reset must be a method"):
        reset_agent(type("Bad", (), {"reset": 3})(), 0)


# ---- settings: frozen, validated, one default each ---------------------------------------------------


@pytest.mark.parametrize("settings", [AnswerAfterK(), AnswerWhenConfident(), NeverVerify(), QLearningConfig(),
                                      PPOSettings(), LLMSettings()], ids=lambda s: type(s).__name__)
def test_settings_are_frozen(settings):
    name = dataclasses.fields(settings)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(settings, name, getattr(settings, name))


@pytest.mark.parametrize("make, message", [
    (lambda: AnswerWhenConfident(threshold=1.5), "threshold must be <= 1"),
    (lambda: BudgetForcing(None, min_episodes=0), "min_episodes must be >= 1"),
    (lambda: MajorityVote(None, k=0), "k must be >= 1"),
    (lambda: LLMSettings(temperature=-1.0), "temperature must be >= 0"),
    (lambda: PPOSettings(n_envs=0), "n_envs must be >= 1"),
    (lambda: QLearningConfig(seed=-2), "seed must be >= 0"),
    (lambda: RandomAgent(gym.spaces.Box(0, 1, (2,))), "Discrete action space"),
])
def test_settings_are_validated_when_built(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def _defaults(function) -> dict:
    params = list(inspect.signature(function).parameters.values())[1:]
    return {p.name: p.default for p in params}


def test_factory_defaults_are_the_classes_defaults():
    # The values the bench and README document (the factories' values before the settings were unified).
    assert _defaults(factories.budget_forcing) == {"min_episodes": 3, "max_episode_tokens": 64}
    assert _defaults(factories.majority_vote) == {"k": 2, "max_episode_tokens": 64}
    assert _defaults(factories.stop_when_confident) == {"threshold": 0.75, "max_episode_tokens": 64}
    assert _defaults(factories.answer_when_confident) == {"threshold": 0.9, "patience": 2}
    assert _defaults(factories.oracle_answer_when_confident) == {"threshold": 0.9, "patience": 2}
    assert _defaults(factories.oracle_stop_when_confident) == _defaults(factories.stop_when_confident)
    assert _defaults(factories.q_learning)["steps"] == 500_000 and _defaults(factories.ppo)["steps"] == 40_000
    # ... and they are the classes' own: a class built without arguments has them.
    assert BudgetForcing(None).min_episodes == 3 and MajorityVote(None).k == 2
    assert StopWhenConfident(None).threshold == OracleStopWhenConfident(None).threshold == 0.75
    assert AnswerAfterK().k == _defaults(factories.answer_after)["k"]
    assert QLearningConfig().total_steps == _defaults(factories.q_learning)["steps"]
    llm_defaults = {n: p.default for n, p in inspect.signature(LLMAgent).parameters.items()}
    assert dataclasses.asdict(LLMSettings()) == {k: llm_defaults[k] for k in ("max_episode_tokens", "temperature", "seed")}
    assert _defaults(factories.llm) == dataclasses.asdict(LLMSettings())


def test_factory_checks_bind_the_factory_defaults():
    factories.budget_forcing.check()
    factories.majority_vote.check(5, max_episode_tokens=8)
    with pytest.raises(ValueError, match="min_episodes must be >= 1"):
        factories.budget_forcing.check(0)
    with pytest.raises(ValueError, match="max_episode_tokens must be >= 1"):
        factories.stop_when_confident.check(0.5, max_episode_tokens=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        factories.answer_after.check(kk=2)


def test_agent_summaries_repeat_no_default_and_list_agents_shows_them():
    for entry in AGENTS.values():
        assert not re.search(r"\b\d", entry.summary), f"{entry.name}: defaults belong in the factory, not the summary"
    assert agent_arguments(AGENTS["budget-forcing"].entry_point) == "min_episodes=3, max_episode_tokens=64"
    assert agent_arguments(AGENTS["oracle"].entry_point) == ""


def test_list_agents_prints_the_defaults(capsys):
    from ttc_gym.cli import main

    assert main(["bench", "--list-agents"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^majority-vote .*\(k=2, max_episode_tokens=64\)", out, re.M)
    assert re.search(r"^answer-when-confident .*\(threshold=0\.9, patience=2\)", out, re.M)


def test_memoized_and_sb3_agents_reset_without_touching_a_deterministic_policy():
    class Model:
        calls = 0

        def predict(self, obs, deterministic=True):
            Model.calls += 1
            return np.array(int(obs[0]) % 4), None

        def set_random_seed(self, seed):
            raise AssertionError("a deterministic policy must not be reseeded")

    memo, sb3 = MemoizedPolicyAgent(Model()), SB3Agent(Model())
    for agent in (memo, sb3):
        agent.reset(seed=4)
    assert memo.act(np.array([5])) == 1 and memo.act(np.array([5])) == 1 and Model.calls == 1
    assert sb3.act(np.array([6])) == 2

    class Sampling(Model):
        seeds = []

        def set_random_seed(self, seed):
            self.seeds.append(seed)

    stochastic = SB3Agent(Sampling(), deterministic=False, seed=2)
    stochastic.reset(seed=5)
    stochastic.reset()
    assert Sampling.seeds == [problem_seed(2, 5)]


def test_never_verify_runs_on_the_sim_with_switch_keep():
    """With switch_keep > 0 TTC-Sim-v0 appends a seventh observation field (kept_steps)."""
    import gymnasium as gym

    from ttc_gym.agents.heuristics import NeverVerify

    env = gym.make("TTC-Sim-v0", switch_keep=0.5)
    obs, info = env.reset(seed=0)
    assert len(obs) == 7
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(NeverVerify(2).act(obs, info))
        done = terminated or truncated
    assert info["answered"] or truncated
