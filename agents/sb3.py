"""stable-baselines3 models as ttc-gym agents (`ttc_gym.agent.Agent`)."""

from __future__ import annotations

from typing import Any

from ttc_gym.agent import problem_seed
from ttc_gym.validation import check_int


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
