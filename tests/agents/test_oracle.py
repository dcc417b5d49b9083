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


# ---- J*_j and the accuracy-optimal oracle (docs/formulation.md §5) -------------------------------

import itertools

from ttc_gym.agents.oracle import AccuracyOracleAgent, j_star_curve


def _brute_force_best_accuracy(model, j):
    """Max over every deterministic policy (a map from reachable observation to action) of the expected
    accuracy with at most j episodes, by enumerating the policies on the reachable observations."""
    best = 0.0
    for p0, start in model.initial_distribution():
        # observations reachable within j-1 episodes under any actions
        reach, frontier = {start}, [start]
        for _ in range(j - 1 if j > 0 else 0):
            nxt = []
            for o in frontier:
                for a in MetaAction:
                    if a == MetaAction.ANSWER:
                        continue
                    for br in model.transitions(o, int(a)):
                        if br.obs is not None and br.obs not in reach:
                            reach.add(br.obs); nxt.append(br.obs)
            frontier = nxt
        states = sorted(reach)
        level_best = 0.0
        for choice in itertools.product(list(MetaAction), repeat=len(states)):
            policy = dict(zip(states, choice))

            def acc(o, r):
                a = policy[o] if r > 0 else MetaAction.ANSWER
                if a == MetaAction.ANSWER:
                    return model.expected_j(o)
                return sum(br.prob * (br.expected_j if (br.obs is None or r == 1) else acc(br.obs, r - 1))
                           for br in model.transitions(o, int(a)))

            level_best = max(level_best, acc(start, j))
        best += p0 * level_best
    return best


def test_j_star_curve_matches_brute_force_and_is_monotone():
    env = gym.make("TTC-Sim-v0", max_episodes=3, num_strategies=2)
    model = env.unwrapped.model
    curve = j_star_curve(model)
    assert curve.shape == (4,)
    assert np.all(np.diff(curve) >= -1e-12)
    assert curve[-1] > curve[0]
    for j in range(3):  # every deterministic policy: 4^(reachable observations) of them
        assert curve[j] == pytest.approx(_brute_force_best_accuracy(model, j), abs=1e-12), j


def test_j_star_curve_full_budget_equals_accuracy_oracle_and_matches_monte_carlo():
    env = gym.make("TTC-Sim-v0", max_episodes=6)
    agent = AccuracyOracleAgent.from_env(env)
    curve = j_star_curve(agent.model)
    assert curve[-1] == pytest.approx(agent.expected_accuracy(), abs=1e-12)
    outcomes = []
    for i in range(4000):
        obs, info = env.reset(seed=i)
        done = False
        while not done:
            obs, r, term, trunc, info = env.step(agent.act(obs, info))
            done = term or trunc
        outcomes.append(float(info["outcome"]))
    mean, se = mean_and_stderr(outcomes)
    assert abs(mean - curve[-1]) < 3 * se + 1e-9, (mean, se, curve[-1])


@pytest.mark.parametrize("kwargs", [{}, {"episode_cost": 0.05}, {"max_episodes": 6, "alpha": 0.5}])
def test_accuracy_oracle_vs_return_oracle(kwargs):
    env = gym.make("TTC-Sim-v0", **kwargs)
    ret, acc = OracleAgent.from_env(env), AccuracyOracleAgent.from_env(env)
    assert acc.expected_accuracy() >= ret.expected_accuracy() - 1e-12
    assert ret.expected_return >= acc.expected_return - 1e-12
    # the return-optimal oracle's return is its own policy's expected return
    assert ret._expected(lambda b, a: b.reward, None) == pytest.approx(ret.expected_return, abs=1e-9)
