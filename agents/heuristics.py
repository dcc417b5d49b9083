"""Fixed test-time strategies over the meta-actions (continue / switch / verify / answer), usable on
any env whose actions are `ttc_gym.actions.MetaAction` and whose `info` carries J and episodes_used,
and the uniformly random agent.

Each agent follows `ttc_gym.agent.Agent` (`reset(seed=None)` before each problem, `act(obs, info)`).
Each is a frozen dataclass of its settings: their defaults are written once, here, and the bench
factories (`ttc_gym.agents.factories`) take theirs from these classes. Per-problem state, where a
strategy keeps any, is private and cleared by `reset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from gymnasium import spaces

from ttc_gym.actions import MetaAction
from ttc_gym.agent import problem_seed
from ttc_gym.validation import check_float, check_int


@dataclass(frozen=True)
class AnswerAfterK:
    """Think for exactly k episodes (continue), then answer."""

    k: int = 3

    def __post_init__(self) -> None:
        check_int("k", self.k, minimum=0)

    def reset(self, seed: int | None = None) -> None:
        """Deterministic and stateless: nothing to reset."""

    def act(self, obs, info: dict) -> int:
        return int(MetaAction.ANSWER if info["episodes_used"] >= self.k else MetaAction.CONTINUE)


@dataclass(frozen=True)
class AnswerWhenConfident:
    """Continue until the prover's J (from `info`) reaches `threshold`, then answer.

    If J has not moved for `patience` episodes, switch approach (explore) instead of continuing.
    """

    threshold: float = 0.9
    patience: int = 2
    _stalled: list = field(default_factory=lambda: [0], init=False, repr=False, compare=False)  # [count]

    def __post_init__(self) -> None:
        check_float("threshold", self.threshold, minimum=0.0, maximum=1.0)
        check_int("patience", self.patience, minimum=1)

    def reset(self, seed: int | None = None) -> None:
        """Deterministic; clears the count of episodes without progress."""
        self._stalled[0] = 0

    def act(self, obs, info: dict) -> int:
        if info["J"] >= self.threshold:
            return int(MetaAction.ANSWER)
        self._stalled[0] = self._stalled[0] + 1 if info.get("progress", 0.0) <= 0 else 0
        if info["episodes_used"] > 0 and self._stalled[0] > self.patience:
            self._stalled[0] = 0
            return int(MetaAction.SWITCH)
        return int(MetaAction.CONTINUE)


@dataclass(frozen=True)
class NeverVerify:
    """TTC-Sim-v0 hand policy: continue; switch after `patience` episodes without progress on the
    current strategy; answer as soon as a candidate answer exists. It never verifies."""

    patience: int = 2

    def __post_init__(self) -> None:
        check_int("patience", self.patience, minimum=1)

    def reset(self, seed: int | None = None) -> None:
        """Deterministic and stateless (it reads everything from the observation)."""

    def act(self, obs, info: dict) -> int:
        _, _, _, steps, attempts, candidate = (int(x) for x in obs)
        if candidate > 0:
            return int(MetaAction.ANSWER)
        if attempts - steps >= self.patience:
            return int(MetaAction.SWITCH)
        return int(MetaAction.CONTINUE)


@dataclass(frozen=True)
class RandomAgent:
    """Uniformly random actions of a Discrete action space.

    `seed` is the base seed: `reset(seed=s)` re-derives the generator from it and s
    (`ttc_gym.agent.problem_seed`), so the actions on a problem depend on that problem's seed only;
    `reset()` (no seed) carries on with the current generator.
    """

    action_space: spaces.Discrete
    seed: int = 0
    _rng: list = field(default_factory=list, init=False, repr=False, compare=False)  # [the generator]

    def __post_init__(self) -> None:
        if not isinstance(self.action_space, spaces.Discrete):
            raise TypeError(f"RandomAgent needs a Discrete action space, got {self.action_space}.")
        check_int("seed", self.seed, minimum=0)
        self._rng.append(np.random.default_rng(self.seed))

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng[0] = np.random.default_rng(problem_seed(self.seed, seed))

    def act(self, obs, info: dict | None = None) -> int:
        return int(self.action_space.start + self._rng[0].integers(self.action_space.n))
