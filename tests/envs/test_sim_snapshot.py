"""TTC-Sim-v0 restarted from a point of a problem (`snapshot()` / `reset(options={"snapshot": s})`),
the single env and the vector env: what MRT's branching from a prefix needs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401

KNOBS = [{}, {"prover_samples": 4, "switch_keep": 0.5, "tokens_per_action": (100, 200, 50)}, {"overthink": 0.3},
         {"rule_out": 0.5, "heterogeneity": 0.95, "switch_keep": 0.5},
         {"observe_episodes": False, "overthink": 0.25}]  # the state keeps the episode count the observation hides


def _steps(env, actions):
    out = []
    for a in actions:
        obs, reward, term, trunc, info = env.step(a)
        out.append((obs.tolist(), reward, term, trunc, info["J"], info["episodes_used"], info["tokens_used"]))
        if term or trunc:
            break
    return out


@pytest.mark.parametrize("kwargs", KNOBS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resetting_to_a_snapshot_and_stepping_on_equals_stepping_there_from_the_start(kwargs, seed):
    actions = np.random.default_rng(seed).choice([0, 0, 1, 2], size=12).tolist() + [3]
    env = gym.make("TTC-Sim-v0", **kwargs).unwrapped
    for k in range(0, 6):
        env.reset(seed=seed)
        _steps(env, actions[:k])
        snap = env.snapshot()
        from_start = _steps(env, actions[k:])
        obs, info = env.reset(options={"snapshot": snap})
        shown = list(snap["state"])
        if not kwargs.get("observe_episodes", True):
            shown[0] = 0  # the observation hides the count the snapshot keeps
        assert info["episodes_used"] == k and info["J"] == snap["J"] and obs.tolist() == shown
        assert _steps(env, actions[k:]) == from_start


def test_a_seeded_restore_is_a_branch_with_its_own_noise():
    env = gym.make("TTC-Sim-v0").unwrapped
    env.reset(seed=0)
    env.step(0)
    snap = env.snapshot()
    runs = set()
    for seed in range(8):
        obs, info = env.reset(seed=seed, options={"snapshot": snap})
        assert info["episodes_used"] == 1 and info["J"] == snap["J"]
        runs.add(str(_steps(env, [0] * 9)))
    assert len(runs) > 1  # the same point, different futures
    env.reset(seed=3, options={"snapshot": snap})
    again = _steps(env, [0] * 9)
    env.reset(seed=3, options={"snapshot": snap})
    assert _steps(env, [0] * 9) == again  # same seed, same branch


def test_bad_snapshots_are_refused_before_anything_changes():
    env = gym.make("TTC-Sim-v0").unwrapped
    with pytest.raises(RuntimeError, match="call reset"):
        env.snapshot()
    env.reset(seed=0)
    snap = env.snapshot()
    other = gym.make("TTC-Sim-v0", max_episodes=4).unwrapped
    with pytest.raises(ValueError, match="same arguments"):
        other.reset(options={"snapshot": snap})
    with pytest.raises(TypeError, match="dict"):
        env.reset(options={"snapshot": [1, 2]})
    with pytest.raises(ValueError, match="keys"):
        env.reset(options={"snapshot": {**snap, "extra": 1}})
    with pytest.raises(ValueError, match="probability"):
        env.reset(options={"snapshot": {**snap, "J": 1.5}})
    with pytest.raises(ValueError, match="budget's end"):
        env.reset(options={"snapshot": {**snap, "state": [10] + snap["state"][1:]}})
    with pytest.raises(ValueError, match="alone"):
        env.reset(options={"snapshot": snap, "difficulty": 0})


def test_the_vector_env_takes_one_snapshot_per_sub_env():
    env = gym.make("TTC-Sim-v0").unwrapped
    env.reset(seed=5)
    for a in (0, 0, 1):
        env.step(a)
    snap = env.snapshot()
    venv = gym.make_vec("TTC-Sim-v0", num_envs=3, vectorization_mode="vector_entry_point")
    obs, info = venv.reset(seed=0, options={"snapshots": [None, snap, snap]})
    assert obs[1].tolist() == obs[2].tolist() == snap["state"]
    assert info["episodes_used"].tolist() == [0, 3, 3] and info["J"][1] == snap["J"]
    obs, reward, term, trunc, info = venv.step(np.array([0, 0, 0]))
    assert info["episodes_used"].tolist() == [1, 4, 4]
    with pytest.raises(ValueError, match="one per sub-env"):
        venv.reset(options={"snapshots": [snap]})
