"""The formulation pinned on TTC-Sim-v0: telescoping progress, reward composition, budgets."""

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401  (registers the envs)
from ttc_gym.budget import Budget
from ttc_gym.rewards import ProgressTracker, compose_reward


def rollout(env, seed, policy_rng):
    obs, info = env.reset(seed=seed)
    infos, rewards = [info], []
    done = False
    while not done:
        obs, r, term, trunc, info = env.step(int(policy_rng.integers(4)))
        infos.append(info)
        rewards.append(r)
        done = term or trunc
    return infos, rewards, term, trunc


@pytest.mark.parametrize("prover_samples", [None, 4])
@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.5])
def test_progress_telescopes_and_reward_composes(prover_samples, alpha):
    env = gym.make("TTC-Sim-v0", alpha=alpha, prover_samples=prover_samples)
    rng = np.random.default_rng(0)
    for seed in range(200):
        infos, rewards, _, _ = rollout(env, seed, rng)
        progress = sum(i["progress"] for i in infos[1:])
        j0, j_final = infos[0]["J"], infos[-1]["J"]
        # Exactly for the exact prover; for the sampled one, on its own estimates.
        assert progress == pytest.approx(j_final - j0, abs=1e-12)
        outcome = sum(i["outcome"] for i in infos[1:])
        cost = sum(i["cost"] for i in infos[1:])
        assert sum(rewards) == pytest.approx(outcome + alpha * progress - cost, abs=1e-12)
        for info, r in zip(infos[1:], rewards):
            assert r == pytest.approx(compose_reward(info["outcome"], info["progress"], alpha, info["cost"]))
        assert all(i["outcome"] == 0.0 for i in infos[1:-1])


def test_truncation_at_H_with_forced_answer():
    H = 4
    env = gym.make("TTC-Sim-v0", max_episodes=H)
    env.reset(seed=0)
    for t in range(1, H + 1):
        _, _, term, trunc, info = env.step(2)  # verify without candidate: a wasted episode
        assert trunc == (t == H)
        assert term == (t == H)  # the forced answer ends the problem: terminated too
        assert info["episodes_used"] == t
        assert info["tokens_used"] == t * 256
    assert info["answered"]  # answer_on_truncation=True forces the answer


def test_truncation_without_forced_answer_gives_no_outcome():
    env = gym.make("TTC-Sim-v0", max_episodes=2, answer_on_truncation=False, guess_prob=1.0)
    env.reset(seed=0)
    env.step(0)
    _, _, term, trunc, info = env.step(0)
    assert trunc and not term and info["outcome"] == 0.0 and not info["answered"]


def test_answer_outcome_follows_exact_j():
    # guess_prob=1: every forced answer is correct; guess_prob=0 and no work: never.
    for g, expected in [(1.0, 1.0), (0.0, 0.0)]:
        env = gym.make("TTC-Sim-v0", guess_prob=g)
        for seed in range(20):
            env.reset(seed=seed)
            _, r, term, _, info = env.step(3)
            assert term and info["outcome"] == expected and r == expected


def test_progress_tracker_and_budget():
    tr = ProgressTracker()
    tr.start(0.25)
    assert tr.update(0.5) == 0.25 and tr.update(0.375) == -0.125
    assert tr.j_curve == [0.25, 0.5, 0.375] and tr.j == 0.375
    with pytest.raises(RuntimeError):
        ProgressTracker().update(0.1)
    b = Budget(max_episodes=3, max_tokens=100)
    assert not b.exhausted(2, 99) and b.exhausted(3, 0) and b.exhausted(0, 100)
    assert b.tokens_left(40) == 60 and Budget(max_episodes=2).tokens_left(5) is None
    with pytest.raises(ValueError, match="max_episodes"):
        Budget(max_episodes=-1)
    with pytest.raises(ValueError, match="both were None"):
        Budget(max_episodes=None, max_tokens=None)
