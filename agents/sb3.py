"""stable-baselines3 models as ttc-gym agents (`ttc_gym.agent.Agent`), and PPO trained or loaded for
an env (the bench's `ppo` agent, `agents/factories.py`)."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ttc_gym.agent import problem_seed
from ttc_gym.validation import check_float, check_int


class SB3Agent:
    """Wraps a trained SB3 model (PPO, DQN, ...) so it can be evaluated like any other agent.

    With `deterministic=True` (default) it takes the policy's most likely action. With False it
    samples, and SB3 samples from the global torch / numpy generators: `reset(seed=s)` then reseeds
    them through `model.set_random_seed` with a seed derived from `seed` (the base seed) and s.
    """

    def __init__(self, model: Any, deterministic: bool = True, seed: int = 0):
        if not hasattr(model, "predict"):
            raise TypeError(f"SB3Agent needs a stable-baselines3 model with .predict, got {type(model).__name__}.")
        self.model = model
        self.deterministic = bool(deterministic)
        self.seed = check_int("seed", seed, minimum=0)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None and not self.deterministic:
            self.model.set_random_seed(problem_seed(self.seed, seed))

    def act(self, obs, info: dict | None = None) -> int:
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return int(action)


class MemoizedPolicyAgent:
    """A deterministic policy with its action cached per observation (exact, and fast to evaluate:
    an SB3 `predict` costs ~1 ms, a dict lookup ~1 µs; TTC-Sim-v0 visits a few hundred states)."""

    def __init__(self, model: Any):
        self.model = model
        self._cache: dict[tuple, int] = {}

    def reset(self, seed: int | None = None) -> None:
        """Deterministic: nothing to reset (the cache holds for every problem)."""

    def act(self, obs, info: dict | None = None) -> int:
        key = tuple(np.asarray(obs).ravel().tolist())
        action = self._cache.get(key)
        if action is None:
            action = self._cache[key] = int(self.model.predict(obs, deterministic=True)[0])
        return action


@dataclass(frozen=True)
class PPOSettings:
    """The bench's `ppo` agent: how long and on how many env copies stable-baselines3 PPO trains,
    and its hyperparameters for TTC-Sim-v0 (close to tests/agents/test_learning.py's, which reach ~98% of
    the oracle's return at 200k steps)."""

    steps: int = 40_000
    seed: int = 0
    n_envs: int = 16
    learning_rate: float = 1e-3
    n_steps: int = 64
    batch_size: int = 512
    n_epochs: int = 4
    ent_coef: float = 0.01
    gamma: float = 1.0

    def __post_init__(self) -> None:
        check_int("steps", self.steps, minimum=1)
        check_int("seed", self.seed, minimum=0)
        check_int("n_envs", self.n_envs, minimum=1)
        check_float("learning_rate", self.learning_rate, minimum=0.0)
        check_int("n_steps", self.n_steps, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("n_epochs", self.n_epochs, minimum=1)
        check_float("ent_coef", self.ent_coef, minimum=0.0)
        check_float("gamma", self.gamma, minimum=0.0, maximum=1.0)

    def ppo_kwargs(self) -> dict:
        """The keyword arguments of `PPO(...)` among these settings."""
        kwargs = asdict(self)
        for key in ("steps", "n_envs"):
            kwargs.pop(key)
        return kwargs


def checkpoint_fits(checkpoint_space, env_space) -> bool:
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


def load_ppo(path: str, observation_space: gym.Space) -> Any:
    """A PPO model saved by `PPO.save` at `path` (on the CPU), refused with a clear error when it was
    trained on other observations than `observation_space` (`checkpoint_fits`)."""
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)  # small networks: threads cost more than they bring
    model = PPO.load(path, device="cpu")
    if not checkpoint_fits(model.observation_space, observation_space):
        raise ValueError(f"ppo checkpoint {path!r} was trained on observations {model.observation_space}, "
                         f"the env has {observation_space}.")
    return model


def train_ppo(env_id: str, env_kwargs: dict, settings: PPOSettings) -> Any:
    """PPO trained on `settings.n_envs` copies of `gym.make(env_id, **env_kwargs)` for `settings.steps`
    timesteps, silently (no log folder)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger

    torch.set_num_threads(1)  # small networks: threads cost more than they bring
    with warnings.catch_warnings():  # make_vec_env asks for render_mode="rgb_array" first
        warnings.simplefilter("ignore")
        envs = make_vec_env(env_id, n_envs=settings.n_envs, seed=settings.seed, env_kwargs=env_kwargs,
                            wrapper_class=_NoInfo)
        model = PPO("MlpPolicy", envs, verbose=0, device="cpu", **settings.ppo_kwargs())
        model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes a /tmp/SB3-<time> folder per run
        model.learn(settings.steps)
    envs.close()
    return model
