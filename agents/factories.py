"""Agent factories for the benchmark runner (`ttc-gym bench`), one per registered agent name.

A factory is `factory(env, *args, **kwargs) -> agent`: it gets the env the agent will be evaluated on
(already built at the run's budget, so its spaces, `env.spec` and, on TTC-Sim-v0, the public
`env.unwrapped.model` are at hand) and the arguments of the agent spec (`"answer-after:3"` ->
`answer_after(env, 3)`). An agent is anything with `act(obs, info) -> action` and optionally `reset()`
(between problems) and `seed(seed)` (called with each problem's seed, so a stochastic agent is
reproducible problem by problem and a resumed run equals an uninterrupted one).

A factory may carry a `check(*args, **kwargs)` attribute: the runner calls it before any compute to
validate the arguments (bad thresholds, missing checkpoint files), so that an error in the last agent
of a list is not found after the first one has trained. Training happens inside the factory, on the
spot, with fixed seeds: the same spec and env give the same agent.

`ttc_gym` refers to this module only by strings (`"ttc_gym.agents.factories:ppo"`), resolved when a run starts.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from ttc_gym.agents.heuristics import AnswerAfterK, AnswerWhenConfident, NeverVerify
from ttc_gym.validation import check_int

# ----------------------------------------------------------------------------------------------------
# Fixed test-time strategies (cheap: built in microseconds)


def answer_after(env, k: int = 3) -> AnswerAfterK:
    """Think (continue) for exactly k episodes, then answer."""
    return AnswerAfterK(k)


answer_after.check = lambda k=3: AnswerAfterK(k)


def answer_when_confident(env, threshold: float = 0.9, patience: int = 2) -> AnswerWhenConfident:
    """Continue until the prover's J reaches `threshold`; switch approach after `patience` stalls."""
    return AnswerWhenConfident(threshold, patience)


answer_when_confident.check = lambda threshold=0.9, patience=2: AnswerWhenConfident(threshold, patience)


def never_verify(env, patience: int = 2) -> NeverVerify:
    """TTC-Sim-v0 hand policy: answer as soon as a candidate exists, never verify."""
    return NeverVerify(patience)


never_verify.check = lambda patience=2: NeverVerify(patience)


class SeededRandomAgent:
    """Uniformly random actions, re-seeded from each problem's seed (reproducible per problem)."""

    def __init__(self, action_space: gym.Space, seed: int = 0):
        self.action_space = action_space
        self.base_seed = seed
        self._rng = np.random.default_rng(seed)

    def seed(self, seed: int) -> None:
        self._rng = np.random.default_rng([self.base_seed, int(seed)])

    def reset(self) -> None:
        pass

    def act(self, obs, info: dict) -> int:
        return int(self._rng.integers(self.action_space.n))


def random_agent(env, seed: int = 0) -> SeededRandomAgent:
    """Uniformly random meta-actions."""
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise TypeError(f"the random agent needs a Discrete action space, got {env.action_space}.")
    return SeededRandomAgent(env.action_space, seed)


random_agent.check = lambda seed=0: check_int("seed", seed, minimum=0)


# ----------------------------------------------------------------------------------------------------
# The exact oracle (TTC-Sim-v0)


def oracle(env):
    """The exact optimal policy by dynamic programming over the simulator's public belief-MDP."""
    from ttc_gym.agents.oracle import OracleAgent

    return OracleAgent.from_env(env)


oracle.check = lambda: None


def sim_j_star(env) -> float:
    """J* on TTC-Sim-v0: the oracle's expected final accuracy at this env's budget."""
    from ttc_gym.agents.oracle import OracleAgent

    return float(OracleAgent.from_env(env).expected_accuracy())


def sim_budget_tokens(env) -> int:
    """C0 on TTC-Sim-v0: H episodes of `tokens_per_episode` tokens each."""
    params = env.unwrapped.model.params
    return int(params.max_episodes * params.tokens_per_episode)


# ----------------------------------------------------------------------------------------------------
# Learners, trained on the spot (fixed seeds) or loaded from a checkpoint


def _env_id_and_kwargs(env) -> tuple[str, dict]:
    spec = env.spec
    if spec is None:
        raise TypeError("learning agents need an env made by gym.make (with a spec) to build training envs.")
    return spec.id, dict(spec.kwargs)


def _check_q(steps=500_000, seed=0, num_envs=256) -> None:
    check_int("steps", steps, minimum=1)
    check_int("seed", seed, minimum=0)
    check_int("num_envs", num_envs, minimum=1)


def q_learning(env, steps: int = 500_000, seed: int = 0, num_envs: int = 256):
    """Tabular Q-learning trained for `steps` transitions on the env's vectorized twin."""
    from ttc_gym.agents.tabular import QLearningAgent, QLearningConfig

    _check_q(steps, seed, num_envs)
    env_id, kwargs = _env_id_and_kwargs(env)
    try:
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    except Exception:  # no numpy-vectorized twin: a synchronous vector env of copies
        envs = gym.make_vec(env_id, num_envs=min(num_envs, 16), vectorization_mode="sync", **kwargs)
    agent = QLearningAgent(envs.single_observation_space, envs.single_action_space)
    agent.train(envs, QLearningConfig(total_steps=steps, seed=seed))
    envs.close()
    return agent


q_learning.check = _check_q


class MemoizedPolicyAgent:
    """A deterministic policy with its action cached per observation (exact, and fast to evaluate:
    an SB3 `predict` costs ~1 ms, a dict lookup ~1 µs; TTC-Sim-v0 visits a few hundred states)."""

    def __init__(self, model: Any):
        self.model = model
        self._cache: dict[tuple, int] = {}

    def reset(self) -> None:
        pass

    def act(self, obs, info: dict | None = None) -> int:
        key = tuple(np.asarray(obs).ravel().tolist())
        action = self._cache.get(key)
        if action is None:
            action = self._cache[key] = int(self.model.predict(obs, deterministic=True)[0])
        return action


# The settings of tests/test_learning.py (which reach ~98% of the oracle at 200k steps).
PPO_SETTINGS = dict(learning_rate=1e-3, n_steps=64, batch_size=512, n_epochs=4, ent_coef=0.01, gamma=1.0)


def _check_ppo(path=None, steps=40_000, seed=0, n_envs=16) -> None:
    if path is not None:
        if not isinstance(path, str) or not os.path.isfile(path):
            raise FileNotFoundError(f"ppo checkpoint {path!r} is not a file (expected a .zip saved by PPO.save).")
    check_int("steps", steps, minimum=1)
    check_int("seed", seed, minimum=0)
    check_int("n_envs", n_envs, minimum=1)


def _fits(checkpoint_space, env_space) -> bool:
    if checkpoint_space == env_space:
        return True
    # A MultiDiscrete checkpoint trained with a larger budget H sees every observation of a smaller one.
    return (
        isinstance(checkpoint_space, gym.spaces.MultiDiscrete)
        and isinstance(env_space, gym.spaces.MultiDiscrete)
        and checkpoint_space.nvec.shape == env_space.nvec.shape
        and bool(np.all(env_space.nvec <= checkpoint_space.nvec))
    )


class _NoInfo(gym.Wrapper):
    """Drops `info` during training: SB3's DummyVecEnv deep-copies every info dict on every step, which
    costs more than the env itself; PPO needs none of it."""

    def reset(self, **kwargs):
        obs, _ = self.env.reset(**kwargs)
        return obs, {}

    def step(self, action):
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return obs, reward, terminated, truncated, {}


def ppo(env, path: str | None = None, steps: int = 40_000, seed: int = 0, n_envs: int = 16):
    """stable-baselines3 PPO: loaded from `path` (a .zip checkpoint), else trained for `steps`
    timesteps on `n_envs` copies of the env (settings: `PPO_SETTINGS`)."""
    _check_ppo(path, steps, seed, n_envs)
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)  # small networks: threads cost more than they bring
    if path is not None:
        model = PPO.load(path, device="cpu")
        if not _fits(model.observation_space, env.observation_space):
            raise ValueError(
                f"ppo checkpoint {path!r} was trained on observations {model.observation_space}, "
                f"the env has {env.observation_space}."
            )
        return MemoizedPolicyAgent(model)
    env_id, kwargs = _env_id_and_kwargs(env)
    with warnings.catch_warnings():  # make_vec_env asks for render_mode="rgb_array" first
        warnings.simplefilter("ignore")
        envs = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=kwargs, wrapper_class=_NoInfo)
        model = PPO("MlpPolicy", envs, seed=seed, verbose=0, device="cpu", **PPO_SETTINGS)
        model.learn(steps)
    envs.close()
    return MemoizedPolicyAgent(model)


ppo.check = _check_ppo


# ----------------------------------------------------------------------------------------------------
# LLM agents and test-time strategies (TTC-Math-v0): they share the env's engine, so one model is loaded


def _check_llm(max_episode_tokens=64, temperature=0.2, seed=0) -> None:
    check_int("max_episode_tokens", max_episode_tokens, minimum=1)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}.")
    check_int("seed", seed, minimum=0)


def _llm(env, max_episode_tokens=64, temperature=0.2, seed=0):
    from ttc_gym.agents.llm import LLMAgent

    _check_llm(max_episode_tokens, temperature, seed)
    engine = getattr(env.unwrapped, "engine", None)
    if engine is None:
        raise TypeError(f"LLM agents need an env with an engine (TTC-Math-v0), got {env.unwrapped!r}.")
    return LLMAgent(engine, max_episode_tokens=max_episode_tokens, temperature=temperature,
                    template=env.unwrapped.template, seed=seed)


def llm(env, max_episode_tokens=64, temperature=0.2, seed=0):
    """The env's model writes each episode (one paragraph, at most max_episode_tokens)."""
    return _llm(env, max_episode_tokens, temperature, seed)


llm.check = _check_llm


def think_until_budget(env, max_episode_tokens=64):
    """Never commit: think until the budget runs out, then the env forces the answer."""
    from ttc_gym.agents.strategies import ThinkUntilBudget

    return ThinkUntilBudget(_llm(env, max_episode_tokens))


think_until_budget.check = lambda max_episode_tokens=64: _check_llm(max_episode_tokens)


def budget_forcing(env, min_episodes=3, max_episode_tokens=64):
    """s1-style budget forcing: replace early commits by 'Wait,' until min_episodes."""
    from ttc_gym.agents.strategies import BudgetForcing

    return BudgetForcing(_llm(env, max_episode_tokens), min_episodes)


budget_forcing.check = lambda min_episodes=3, max_episode_tokens=64: (
    check_int("min_episodes", min_episodes, minimum=1), _check_llm(max_episode_tokens))


def stop_when_confident(env, threshold=0.75, max_episode_tokens=64):
    """Commit the prover's majority answer once its J (from info) reaches threshold."""
    from ttc_gym.agents.strategies import StopWhenConfident

    return StopWhenConfident(_llm(env, max_episode_tokens), threshold)


def _check_threshold(threshold=0.75, max_episode_tokens=64):
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}.")
    _check_llm(max_episode_tokens)


stop_when_confident.check = _check_threshold


def majority_vote(env, k=2, max_episode_tokens=64):
    """Think k episodes, then commit the majority of all the prover's forced answers so far."""
    from ttc_gym.agents.strategies import MajorityVote

    return MajorityVote(_llm(env, max_episode_tokens), k)


majority_vote.check = lambda k=2, max_episode_tokens=64: (check_int("k", k, minimum=1), _check_llm(max_episode_tokens))


# ----------------------------------------------------------------------------------------------------
# A trained LLM checkpoint (ttc_gym.agents.training.llm_train) writes the episodes; the env's prover keeps its engine


def _check_llm_checkpoint(path=None, max_episode_tokens=64, temperature=0.2, seed=0, device="cpu") -> None:
    if not isinstance(path, str) or not path:
        raise ValueError("llm-checkpoint needs a checkpoint folder: llm-checkpoint:runs/mrt_cpu/checkpoint-2")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(
            f"llm-checkpoint: {path!r} is not a model folder (no config.json); give a checkpoint-N folder "
            f"written by `ttc-gym train --env TTC-Math-v0`."
        )
    _check_llm(max_episode_tokens, temperature, seed)


_CHECKPOINT_ENGINES: dict = {}


def llm_checkpoint(env, path=None, max_episode_tokens=64, temperature=0.2, seed=0, device="cpu"):
    """A trained checkpoint (a HF model folder, e.g. runs/mrt/checkpoint-N) writes each episode."""
    from ttc_gym.agents.llm import LLMAgent

    _check_llm_checkpoint(path, max_episode_tokens, temperature, seed, device)
    key = (os.path.abspath(path), str(device))
    if key not in _CHECKPOINT_ENGINES:  # loaded once per process, reused across budgets
        from ttc_gym.engines.transformers_engine import TransformersEngine

        _CHECKPOINT_ENGINES[key] = TransformersEngine(path, device=device, name=f"checkpoint:{path}")
    template = getattr(env.unwrapped, "template", None)
    return LLMAgent(_CHECKPOINT_ENGINES[key], max_episode_tokens=max_episode_tokens, temperature=temperature,
                    template=template, seed=seed)


llm_checkpoint.check = _check_llm_checkpoint
