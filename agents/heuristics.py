"""Fixed test-time strategies over the meta-actions (continue / switch / verify / answer), usable on
any env whose actions are `ttc_gym.actions.MetaAction` and whose `info` carries J and episodes_used.

Each agent is a plain policy: `act(obs, info) -> action`, `reset()` between problems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ttc_gym.actions import MetaAction
from ttc_gym.validation import check_float, check_int


@dataclass
class AnswerAfterK:
    """Think for exactly k episodes (continue), then answer."""

    k: int = 3

    def __post_init__(self) -> None:
        check_int("k", self.k, minimum=0)

    def reset(self) -> None:
        pass

    def act(self, obs, info: dict) -> int:
        return int(MetaAction.ANSWER if info["episodes_used"] >= self.k else MetaAction.CONTINUE)


@dataclass
class AnswerWhenConfident:
    """Continue until the prover's J (from `info`) reaches `threshold`, then answer.

    If J has not moved for `patience` episodes, switch approach (explore) instead of continuing.
    """

    threshold: float = 0.9
    patience: int = 2

    def __post_init__(self) -> None:
        check_float("threshold", self.threshold, minimum=0.0, maximum=1.0)
        check_int("patience", self.patience, minimum=1)

    def reset(self) -> None:
        self._stalled = 0

    def act(self, obs, info: dict) -> int:
        if info["J"] >= self.threshold:
            return int(MetaAction.ANSWER)
        self._stalled = getattr(self, "_stalled", 0) + 1 if info.get("progress", 0.0) <= 0 else 0
        if info["episodes_used"] > 0 and self._stalled > self.patience:
            self._stalled = 0
            return int(MetaAction.SWITCH)
        return int(MetaAction.CONTINUE)


@dataclass
class NeverVerify:
    """TTC-Sim-v0 hand policy: continue; switch after `patience` episodes without progress on the
    current strategy; answer as soon as a candidate answer exists. It never verifies."""

    patience: int = 2

    def __post_init__(self) -> None:
        check_int("patience", self.patience, minimum=1)

    def reset(self) -> None:
        pass

    def act(self, obs, info: dict) -> int:
        _, _, _, steps, attempts, candidate = (int(x) for x in obs)
        if candidate > 0:
            return int(MetaAction.ANSWER)
        if attempts - steps >= self.patience:
            return int(MetaAction.SWITCH)
        return int(MetaAction.CONTINUE)


class RandomAgent:
    """Uniformly random actions from an explicit seed."""

    def __init__(self, action_space, seed: int | None = None):
        self.action_space = action_space
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def act(self, obs, info: dict) -> int:
        return int(self._rng.integers(self.action_space.n))
