"""The reward of every ttc-gym env and the progress it is built on, computed here and nowhere else
(docs/formulation.md §3).

reward_j = outcome_j + alpha * progress_j - cost_j, with progress_j = J_j - J_{j-1}, where J_j is
the prover's estimate of the probability that a forced answer after j episodes is correct (J_0: no
episode yet) and outcome_j is the 0/1 correctness of the committed answer on the final step (0 on
every other step). Summed over a trajectory, progress telescopes to J_final - J_0.

`compose_reward` and `progress_between` take numbers or numpy arrays (the vectorized simulator
computes a whole batch with one call).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ttc_gym.validation import check_float

Value = TypeVar("Value", float, np.ndarray)


def check_alpha(alpha: object) -> float:
    """alpha weighs progress against outcome; MRT-online used 1.0. Must be a finite number >= 0."""
    return check_float("alpha", alpha, minimum=0.0)


def compose_reward(outcome: Value, progress: Value, alpha: float, cost: Value = 0.0) -> Value:
    """The reward `outcome + alpha * progress - cost` (docs/formulation.md §3).

    Numbers give a float; numpy arrays (one entry per sub-env) give the array of rewards, entry by
    entry the same float as the scalar call.
    """
    reward = outcome + alpha * progress - cost
    return reward if isinstance(reward, np.ndarray) else float(reward)


def progress_between(j_prev: Value, j_new: Value) -> Value:
    """The progress of one episode, J_j - J_{j-1} (docs/formulation.md §3); numbers or arrays."""
    progress = j_new - j_prev
    return progress if isinstance(progress, np.ndarray) else float(progress)


def j_curve_from_progress(j0: float, progress: Sequence[float] | np.ndarray) -> np.ndarray:
    """The J curve that a trajectory's progress telescopes to: J_0 = `j0` and J_j = J_0 + the progress
    of episodes 1..j (an array of len(progress) + 1 entries); `progress_between` of consecutive
    entries gives the progress back."""
    steps = np.asarray(progress, dtype=np.float64).reshape(-1)
    return np.concatenate([[float(j0)], float(j0) + np.cumsum(steps)])


@dataclass
class ProgressTracker:
    """Keeps the J curve of one trajectory and turns each new estimate into progress.

    `j_curve[i]` is J after i episodes; `j_curve[0]` is J_0, set by `start` at reset.
    """

    j_curve: list[float] = field(default_factory=list)

    def start(self, j0: float) -> None:
        self.j_curve = [float(j0)]

    def update(self, j: float) -> float:
        """Record J after one more episode and return the progress J_new - J_prev."""
        if not self.j_curve:
            raise RuntimeError("ProgressTracker.update called before start (reset).")
        prev = self.j_curve[-1]
        self.j_curve.append(float(j))
        return progress_between(prev, float(j))

    @property
    def j(self) -> float:
        return self.j_curve[-1]


def reward_info(
    *,
    j: float,
    progress: float,
    outcome: float,
    alpha: float,
    cost: float,
    episodes_used: int,
    tokens_used: int,
    answered: bool,
) -> dict:
    """The `info` entries every env reports on every step (reset reports them with zeros)."""
    return {
        "J": float(j),
        "progress": float(progress),
        "outcome": float(outcome),
        "alpha": float(alpha),
        "cost": float(cost),
        "reward": compose_reward(outcome, progress, alpha, cost),
        "episodes_used": int(episodes_used),
        "tokens_used": int(tokens_used),
        "answered": bool(answered),
    }
