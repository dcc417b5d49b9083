"""The DP oracle of TTC-Sim-v0: exact, optimal, and showing the desiderata."""

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.agents.heuristics import (
    AnswerAfterK,
    AnswerWhenConfident,
    NeverVerify,
    OracleAnswerWhenConfident,
    RandomAgent,
)
from ttc_gym.agents.oracle import OracleAgent
from ttc_gym.actions import MetaAction
from ttc_gym.metrics import mean_and_stderr


def rollout_returns(env, agent, n, seed=0, options=None):
    """The return of each of n rollouts (problems seed, seed + 1, ...) and every action taken."""
    returns, actions = [], []
    for i in range(n):
        obs, info = env.reset(seed=seed + i, options=options)
        agent.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            a = agent.act(obs, info)
            actions.append(a)
            obs, r, term, trunc, info = env.step(a)
            total += r
            done = term or trunc
        returns.append(total)
    return np.array(returns), actions


@pytest.mark.parametrize("kwargs", [{}, {"prover_samples": 8, "alpha": 0.5}, {"heterogeneity": 0.2, "max_episodes": 6}])
def test_oracle_value_matches_monte_carlo(kwargs):
    env = gym.make("TTC-Sim-v0", **kwargs)
    oracle = OracleAgent.from_env(env)
    returns, _ = rollout_returns(env, oracle, 6000)
    mean, se = mean_and_stderr(returns)
    assert abs(mean - oracle.expected_return) < 3 * se, (mean, se, oracle.expected_return)


def test_oracle_value_matches_vector_env_monte_carlo():
    envs = gym.make_vec("TTC-Sim-v0", num_envs=512, vectorization_mode="vector_entry_point")
    oracle = OracleAgent.from_env(envs)
    obs, _ = envs.reset(seed=0)
    running, returns = np.zeros(512), []
    while len(returns) < 8000:
        actions = np.array([oracle.act(o) for o in obs])
        obs, r, term, trunc, _ = envs.step(actions)
        running += r
        done = term | trunc
        returns.extend(running[done].tolist())
        running[done] = 0.0
    mean, se = mean_and_stderr(returns)
    assert abs(mean - oracle.expected_return) < 3 * se, (mean, se, oracle.expected_return)


def test_no_heuristic_beats_the_oracle():
    env = gym.make("TTC-Sim-v0")
    oracle = OracleAgent.from_env(env)
    model = env.unwrapped.model
    # OracleAnswerWhenConfident reads the hidden J, so it could in principle beat the DP oracle (which
    # sees observations only); at these settings it does not.
    for agent in [AnswerAfterK(1), AnswerAfterK(4), AnswerWhenConfident(0.6, model=model),
                  AnswerWhenConfident(0.95, model=model), OracleAnswerWhenConfident(0.6),
                  OracleAnswerWhenConfident(0.95), NeverVerify(1), NeverVerify(3), RandomAgent(env.action_space, seed=0)]:
        returns, _ = rollout_returns(env, agent, 3000, seed=100)
        mean, se = mean_and_stderr(returns)
        assert mean <= oracle.expected_return + 3 * se, (agent, mean, se)
    # ... and the oracle clearly beats the simple fixed-budget strategy.
    returns, _ = rollout_returns(env, AnswerAfterK(4), 3000, seed=100)
    assert oracle.expected_return > returns.mean() + 5 * mean_and_stderr(returns)[1]


def test_oracle_answers_easy_problems_faster_than_hard_ones():
    env = gym.make("TTC-Sim-v0")
    oracle = OracleAgent.from_env(env)
    episodes = [oracle.expected_episodes(level) for level in range(3)]
    assert episodes[0] < episodes[1] < episodes[2], episodes
    # The same seen in sampled rollouts over the difficulty knob.
    sampled = []
    for level in range(3):
        lengths = []
        for i in range(500):
            obs, info = env.reset(seed=i, options={"difficulty": level})
            done = False
            while not done:
                obs, _, term, trunc, info = env.step(oracle.act(obs))
                done = term or trunc
            lengths.append(info["episodes_used"])
        sampled.append(np.mean(lengths))
    assert sampled[0] < sampled[1] < sampled[2], sampled
    assert sampled[0] <= 3 < env.unwrapped.model.params.max_episodes


def test_oracle_explores_only_when_strategies_differ():
    switches = {}
    for h in (0.0, 1.0):
        env = gym.make("TTC-Sim-v0", heterogeneity=h, difficulty_probs=(0, 0, 1))
        _, actions = rollout_returns(env, OracleAgent.from_env(env), 300)
        switches[h] = actions.count(MetaAction.SWITCH)
    assert switches[0.0] == 0 and switches[1.0] > 50, switches


def test_oracle_j_curve_and_accuracy_agree():
    env = gym.make("TTC-Sim-v0")
    oracle = OracleAgent.from_env(env)
    curve = oracle.expected_j_curve()
    assert curve[0] == pytest.approx(env.unwrapped.model.params.guess_prob)
    assert curve[-1] == pytest.approx(oracle.expected_accuracy())
    assert np.all(np.diff(curve) >= -1e-12)  # the oracle never loses ground in expectation


def test_oracle_rejects_envs_without_a_model():
    with pytest.raises(TypeError, match="transition model"):
        OracleAgent.from_env(gym.make("CartPole-v1"))
