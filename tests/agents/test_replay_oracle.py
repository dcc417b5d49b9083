"""The DP oracle† of TTC-Replay-v0 (`ttc_gym.agents.oracle.ReplayOracle`): exact on a hand-computed
case, equal to Monte Carlo in the env, and no worse than any fixed policy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.actions import MetaAction
from ttc_gym.agents.heuristics import AnswerAfterK, RandomAgent
from ttc_gym.agents.oracle import ReplayOracle
from ttc_gym.evaluation import run_rollout
from ttc_gym.metrics import mean_and_stderr
from tests.envs.test_replay_env import fixture_rows, row

C, S, A = MetaAction.CONTINUE, MetaAction.SWITCH, MetaAction.ANSWER


def returns_of(env, agent, n, options=None):
    return np.array([run_rollout(env, agent, seed, options).total_reward for seed in range(n)])


def test_hand_computed_values_on_one_problem():
    # J: a = 0.25, 0.5, 1.0, 1.0 (tokens 10, 20, 30); b = 0.25, 0.0, 0.75 (tokens 5, 7).
    env = gym.make("TTC-Replay-v0", data=fixture_rows(), max_episodes=8)
    oracle = ReplayOracle.from_env(env)
    # From a's start: continue twice (progress 0.75) and answer (1.0).
    assert oracle.q_values("p1", 0, 0)[C] == pytest.approx(1.75)
    assert oracle.q_values("p1", 0, 0)[A] == pytest.approx(0.25)
    # From b's start: switch to a (J 0.5: progress 0.25), continue to J 1 (0.5), answer: 1.75 as well;
    # continuing b reaches 0.75 (+0.5 progress, 0.75 outcome) = 1.25, then nothing better.
    assert oracle.q_values("p1", 1, 0)[S] == pytest.approx(1.75)
    assert oracle.q_values("p1", 1, 0)[C] == pytest.approx(1.75)  # b 1 (J 0), switch to a 1 (0.5), a 2 (1.0)
    assert oracle.expected_return("p1") == pytest.approx(1.75)
    # A budget of 1 episode: from a, continue to a 1 (progress 0.25, forced answer 0.5); from b, switch to
    # a 1 (the same); continuing b drops to J 0 (-0.25 + 0).
    small = ReplayOracle.from_env(gym.make("TTC-Replay-v0", data=fixture_rows(), max_episodes=1))
    assert small.q_values("p1", 0, 0)[C] == pytest.approx(0.75)
    assert small.q_values("p1", 1, 0)[S] == pytest.approx(0.75)
    assert small.q_values("p1", 1, 0)[C] == pytest.approx(-0.25)
    assert small.expected_return("p1") == pytest.approx(0.75)


@pytest.mark.parametrize("kwargs", [{}, {"max_episodes": 2, "episode_cost": 0.1},
                                    {"max_tokens": 25, "alpha": 0.3}, {"answer_on_truncation": False,
                                                                       "max_episodes": 3}])
def test_oracle_value_matches_monte_carlo_and_beats_fixed_policies(kwargs):
    env = gym.make("TTC-Replay-v0", data=fixture_rows(), **kwargs)
    oracle = ReplayOracle.from_env(env)
    for pid in ("p1", "p2", "p3"):
        options = {"problem_id": pid}
        mean, se = mean_and_stderr(returns_of(env, oracle, 1500, options))
        assert abs(mean - oracle.expected_return(pid)) < 4 * se + 1e-9, (pid, mean, se)
        for agent in (AnswerAfterK(0), AnswerAfterK(1), AnswerAfterK(8), RandomAgent(env.action_space, 0)):
            other, se_other = mean_and_stderr(returns_of(env, agent, 600, options))
            assert other <= oracle.expected_return(pid) + 4 * se_other + 1e-9, (pid, agent, other)


def test_switching_pays_when_another_trace_is_better():
    rows = [row("q", "bad", "1", [5, 5], [["2", "2"], ["2", "2"], ["2", "2"]]),
            row("q", "good", "1", [5, 5], [["2", "2"], ["1", "1"], ["1", "1"]])]
    env = gym.make("TTC-Replay-v0", data=rows, max_episodes=1)  # no time to continue first
    oracle = ReplayOracle.from_env(env)
    _, info = env.reset(seed=0, options={"problem_id": "q", "trace_id": "bad"})
    assert oracle.act(None, info) == S
    assert oracle.expected_return("q") == pytest.approx(2.0)  # progress 1 + outcome 1 from either start
    with pytest.raises(KeyError, match="not among the oracle's 1 problems"):
        oracle.expected_return("p1")
    with pytest.raises(TypeError, match="needs TTC-Replay-v0"):
        ReplayOracle.from_env(gym.make("TTC-Sim-v0"))
