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


def test_multidiscrete_observations_name_their_fields(env_id):
    # `obs_fields` is the documented accessor agents use to aggregate state by field name.
    env = make_fast_env(env_id)
    if not isinstance(env.observation_space, gym.spaces.MultiDiscrete):
        pytest.skip(f"{env_id}'s observation is not MultiDiscrete.")
    fields = env.unwrapped.obs_fields
    assert len(fields) == len(env.observation_space.nvec) == len(set(fields)), fields


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


# ---- no gold in what a policy observes (docs/formulation.md §3) -------------------------------------
#
# For each env: two rollouts under the same seed and actions whose hidden truth differs (the gold answer,
# or the simulator's hidden slip). Their observations must be identical while their J differs: had an
# observation carried J or anything graded against the gold answer, it would differ too.


def _observed(env, seed, actions, options=None):
    """The observations and J's of a rollout (stopping where it ends)."""
    obs, info = env.reset(seed=seed, options=options)
    observations, js = [obs], [info["J"]]
    for action in actions:
        obs, _, terminated, truncated, info = env.step(action)
        observations.append(obs)
        js.append(info["J"])
        if terminated or truncated:
            break
    return observations, js


def _math_twins(env_id):
    """The same problem twice with different gold answers, one scripted engine: the forced answers
    (1, 3, 5 ... of 8 say "12", the others "13") and the episodes are the same, J is not."""
    from dataclasses import replace

    from tests.envs.test_math_envs import PROBLEM, ScriptedEngine

    actions = ([0, 2, 1] if env_id == "TTC-MathMeta-v0" else ["[ep] I add.", "[ep] I check.", "[ep] Again."])
    for gold in ("12", "13"):
        env = gym.make(env_id, engine=ScriptedEngine(), source=[PROBLEM], num_prover_samples=8, max_episodes=4)
        yield _observed(env, 0, actions, options={"problem": replace(PROBLEM, answer=gold)})


def _sim_twins(env_id):
    """Problems whose one strategy always reaches a candidate answer at once, half of them with a hidden
    slip: all rollouts of "continue, continue" look the same, and J is 1 without the slip, 0 with it."""
    from ttc_gym.envs.sim_model import DifficultyLevel

    level = DifficultyLevel("coin", steps_needed=1, success_prob=1.0, slip_prob=0.5)
    env = gym.make(env_id, levels=(level,), num_strategies=1, max_episodes=3)
    rollouts = [_observed(env, seed, [0, 0]) for seed in range(16)]
    slipped = next(r for r in rollouts if r[1][-1] == 0.0)
    clean = next(r for r in rollouts if r[1][-1] == 1.0)
    return [slipped, clean]


def _replay_twins(env_id):
    from tests.envs.test_replay_env import gold_twins

    return gold_twins(env_id)


GOLD_TWINS = {"TTC-Sim-v0": _sim_twins, "TTC-Math-v0": _math_twins, "TTC-MathMeta-v0": _math_twins,
              "TTC-Micro-v0": _math_twins, "TTC-Replay-v0": _replay_twins}


def test_no_gold_derived_field_in_any_default_observation(env_id):
    assert env_id in GOLD_TWINS, f"{env_id}: add a pair of rollouts that differ only in the gold to GOLD_TWINS"
    (obs_a, j_a), (obs_b, j_b) = GOLD_TWINS[env_id](env_id)
    assert j_a != j_b, "the twins must differ in J (else the test shows nothing)"
    assert len(obs_a) == len(obs_b) > 1
    for a, b in zip(obs_a, obs_b):
        if isinstance(a, dict):
            assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
        else:
            assert np.array_equal(a, b), (a, b)
