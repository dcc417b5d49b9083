"""The bench's agents on TTC-Replay-v0: the gold-free ones act the same without the gold-derived `info`
keys (tests/agents/test_gold_free.py's check, on the replay env), and the learners run on it."""

from __future__ import annotations

import gymnasium as gym
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.bench import AGENTS
from ttc_gym.bench.agent_registry import build_agent, parse_agent_spec
from ttc_gym.evaluation import run_rollout
from tests.agents.test_gold_free import GOLD_KEYS, SPEC_ARGS, WithoutGold, _fits
from tests.envs.test_replay_env import fixture_rows

ENV_ID = "TTC-Replay-v0"
CASES = [name for name, entry in AGENTS.items() if _fits(entry, ENV_ID)]


def _env():
    return gym.make(ENV_ID, data=fixture_rows(), max_episodes=4)


def test_the_replay_info_names_its_gold_derived_keys():
    env = _env()
    env.reset(seed=0)
    _, _, _, _, info = env.step(3)
    assert {"J", "progress", "outcome", "reward", "prover_correct", "gold_answer"} <= set(info) & GOLD_KEYS


@pytest.mark.parametrize("name", CASES)
def test_only_oracle_agents_read_gold_derived_info_on_replay(name):
    env = _env()
    spec = parse_agent_spec(name + SPEC_ARGS.get(name, ""))
    seeds = range(8)
    if AGENTS[name].oracle:
        with pytest.raises(KeyError):
            for seed in seeds:
                run_rollout(env, WithoutGold(build_agent(spec, env)), seed=seed)
        return
    with_gold = [run_rollout(env, build_agent(spec, env), seed=s).actions for s in seeds]
    without = [run_rollout(env, WithoutGold(build_agent(spec, env)), seed=s).actions for s in seeds]
    assert without == with_gold
