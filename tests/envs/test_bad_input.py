"""Bad input raises an error that says what was expected and what came."""

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401


@pytest.mark.parametrize("action", [4, -1, 1.5, "continue", None, np.array([0, 1])])
def test_action_outside_the_space(action):
    env = gym.make("TTC-Sim-v0", disable_env_checker=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an int in \[0, 4\).*got"):
        env.step(action)


def test_step_before_reset():
    env = gym.make("TTC-Sim-v0", disable_env_checker=True).unwrapped
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(0)


def test_step_after_episode_end():
    env = gym.make("TTC-Sim-v0").unwrapped
    env.reset(seed=0)
    env.step(3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"max_episode": 5}, ValueError, "Unknown TTC-Sim-v0 argument 'max_episode'. Did you mean 'max_episodes'"),
        ({"max_episodes": -3}, ValueError, r"max_episodes \(H\) must be >= 1, got -3"),
        ({"max_episodes": 2.5}, TypeError, r"max_episodes \(H\) must be an integer, got 2.5"),
        ({"alpha": "one"}, TypeError, "alpha must be a number, got 'one'"),
        ({"alpha": float("nan")}, ValueError, "alpha must be finite"),
        ({"alpha": -1.0}, ValueError, "alpha must be >= 0"),
        ({"difficulty_probs": (0.5, 0.6, 0.1)}, ValueError, "difficulty_probs must sum to 1"),
        ({"difficulty_probs": (0.5, 0.5)}, ValueError, "difficulty_probs must have 3 entries"),
        ({"heterogeneity": 1.5}, ValueError, "heterogeneity must be <= 1"),
        ({"prover_samples": 0}, ValueError, r"prover_samples \(K\) must be >= 1"),
        ({"num_strategies": True}, TypeError, "num_strategies must be an integer"),
        ({"render_mode": "human"}, ValueError, "render_mode must be None or one of"),
    ],
)
def test_invalid_kwargs(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        gym.make("TTC-Sim-v0", **kwargs)
    if "render_mode" not in kwargs:
        with pytest.raises(error, match=pattern):
            gym.make_vec("TTC-Sim-v0", num_envs=2, vectorization_mode="vector_entry_point", **kwargs)


def test_invalid_reset_options():
    env = gym.make("TTC-Sim-v0")
    with pytest.raises(ValueError, match="difficulty"):
        env.reset(seed=0, options={"difficulty": 7})
    with pytest.raises(ValueError, match="accept only 'difficulty'"):
        env.reset(seed=0, options={"level": 1})


def test_vector_env_bad_actions():
    envs = gym.make_vec("TTC-Sim-v0", num_envs=3, vectorization_mode="vector_entry_point")
    with pytest.raises(RuntimeError, match="before reset"):
        envs.step(np.zeros(3, dtype=np.int64))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        envs.step(np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=r"values in \[0, 3\]"):
        envs.step(np.array([0, 1, 9]))
    with pytest.raises(ValueError, match="integer array"):
        envs.step(np.array([0.0, 1.0, 2.0]))


@pytest.mark.parametrize("env_id", ["TTC-Sim-v0"])
@pytest.mark.parametrize("action", [True, False, np.bool_(True)])
def test_a_bool_is_not_a_meta_action(env_id, action):
    env = gym.make(env_id, disable_env_checker=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an int in \[0, 4\).*got"):
        env.step(action)
