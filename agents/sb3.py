"""stable-baselines3 models as ttc-gym agents (act(obs, info) -> action)."""

from __future__ import annotations

from typing import Any


class SB3Agent:
    """Wraps a trained SB3 model (PPO, DQN, ...) so it can be evaluated like any other agent."""

    def __init__(self, model: Any, deterministic: bool = True):
        if not hasattr(model, "predict"):
            raise TypeError(f"SB3Agent needs a stable-baselines3 model with .predict, got {type(model).__name__}.")
        self.model = model
        self.deterministic = deterministic

    def reset(self) -> None:
        pass

    def act(self, obs, info: dict | None = None) -> int:
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return int(action)
