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


# -- the math envs: reset options and episode text are checked before any state changes ------------

MATH_ENVS = ["TTC-Math-v0", "TTC-MathMeta-v0", "TTC-Micro-v0"]
TEXT_ENVS = ("TTC-Math-v0", "TTC-Micro-v0")  # the action is an episode's text


@pytest.fixture(scope="module")
def math_envs():
    from tests.conftest import make_fast_env

    return {env_id: make_fast_env(env_id, disable_env_checker=True).unwrapped for env_id in MATH_ENVS}


def _action(env_id):
    return "Let me think." if env_id in TEXT_ENVS else 0


@pytest.mark.parametrize("env_id", MATH_ENVS)
@pytest.mark.parametrize("bad, error, pattern", [
    ("What is 2+2?", TypeError, r"must be a ttc_gym.problems.Problem or a dict with 'question' and 'answer'.*got str"),
    (42, TypeError, r"got int 42"),
    ({"question": "What is 2+2?"}, ValueError, r"expected an answer field"),
    ({"question": "What is 2+2?", "answer": float("nan")}, ValueError, r"finite number"),
    ({"question": "a\ud800", "answer": "1"}, ValueError, r"lone surrogate"),
])
def test_a_bad_problem_option_is_refused_and_leaves_the_env_as_it_was(math_envs, env_id, bad, error, pattern):
    env = math_envs[env_id]
    env.reset(seed=3)
    before = env.trace.problem
    with pytest.raises(error, match=pattern):
        env.reset(options={"problem": bad})
    assert env.trace.problem == before
    env.step(_action(env_id))  # the untouched rollout goes on


@pytest.mark.parametrize("env_id", MATH_ENVS)
def test_a_dict_problem_option_is_accepted(math_envs, env_id):
    env = math_envs[env_id]
    env.reset(options={"problem": {"question": "What is 2+2?", "answer": 4}})
    assert (env.trace.problem.question, env.trace.problem.answer) == ("What is 2+2?", "4")


@pytest.mark.parametrize("env_id", MATH_ENVS)
def test_a_reset_that_fails_midway_leaves_no_trace_to_step(math_envs, env_id, monkeypatch):
    env = math_envs[env_id]
    env.reset(seed=0)
    monkeypatch.setattr(env.prover, "estimate_many", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("prover down")))
    with pytest.raises(RuntimeError, match="prover down"):
        env.reset(seed=1)
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(_action(env_id))


@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "ok " * 3 + "\ud83d"])
def test_an_episode_with_a_lone_surrogate_is_refused(math_envs, text):
    env = math_envs["TTC-Math-v0"]
    env.reset(seed=0)
    with pytest.raises(ValueError, match="lone surrogate"):
        env.step(text)
    env.step("Fine text.")
