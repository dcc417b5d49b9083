"""One test file over every registered env: checkers, determinism, pickling (Gymnasium's style)."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import ttc_gym
from tests.conftest import make_fast_env

SB3_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def test_every_env_is_listed():
    assert set(ttc_gym.env_ids()) <= set(gym.registry)
    assert "TTC-Sim-v0" in ttc_gym.env_ids()


def test_gymnasium_checker(env_id):
    env = make_fast_env(env_id, disable_env_checker=True)
    gym_check_env(env.unwrapped, skip_render_check=False)


def test_sb3_checker_where_spaces_allow(env_id):
    env = make_fast_env(env_id)
    if not isinstance(env.observation_space, SB3_SPACES) or not isinstance(env.action_space, SB3_SPACES):
        pytest.skip(f"{env_id} has spaces SB3 does not support ({env.observation_space}).")
    sb3_check_env(env.unwrapped, warn=True)


def _rollout(env, seed, actions):
    steps = []
    obs, info = env.reset(seed=seed)
    steps.append((obs, 0.0, False, False, info))
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        steps.append((obs, r, term, trunc, info))
        if term or trunc:
            obs, info = env.reset()
            steps.append((obs, 0.0, False, False, info))
    return steps


def _assert_same(a, b):
    for (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) in zip(a, b, strict=True):
        assert np.array_equal(np.asarray(o1), np.asarray(o2)) if not isinstance(o1, str) else o1 == o2
        assert r1 == r2 and te1 == te2 and tr1 == tr2
        assert i1.keys() == i2.keys()
        for key in i1:
            assert np.array_equal(np.asarray(i1[key]), np.asarray(i2[key])), key


def _actions(env, n, seed=0):
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(n)]


def test_same_seed_same_rollout(env_id):
    env1, env2 = make_fast_env(env_id), make_fast_env(env_id)
    actions = _actions(env1, 30)
    _assert_same(_rollout(env1, 123, actions), _rollout(env2, 123, actions))


def test_different_seeds_differ(env_id):
    env = make_fast_env(env_id)
    actions = _actions(env, 30)
    a, b = _rollout(env, 1, actions), _rollout(env, 2, actions)
    with pytest.raises(AssertionError):
        _assert_same(a, b)


def test_pickle_roundtrip_continues_identically(env_id):
    env = make_fast_env(env_id)
    first, later = _actions(env, 1, seed=5)[0], _actions(env, 10, seed=3)
    env.reset(seed=7)
    _, _, terminated, truncated, _ = env.step(first)
    if terminated or truncated:
        env.reset(seed=8)
    clone = pickle.loads(pickle.dumps(env))
    for a in later:
        out1, out2 = env.step(a), clone.step(a)
        _assert_same([out1], [out2])
        if out1[2] or out1[3]:
            break
