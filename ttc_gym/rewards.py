"""The reward of every ttc-gym env, computed here and nowhere else.

reward_j = outcome_j + alpha * progress_j - cost_j, with progress_j = J_j - J_{j-1}, where J_j is
the prover's estimate of the probability that a forced answer after j episodes is correct (J_0: no
episode yet) and outcome_j is the 0/1 correctness of the committed answer on the final step (0 on
every other step). Summed over a trajectory, progress telescopes to J_final - J_0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ttc_gym.validation import check_float


def check_alpha(alpha: object) -> float:
    """alpha weighs progress against outcome; MRT-online used 1.0. Must be a finite number >= 0."""
    return check_float("alpha", alpha, minimum=0.0)


def compose_reward(outcome: float, progress: float, alpha: float, cost: float = 0.0) -> float:
    """outcome + alpha * progress - cost."""
    return float(outcome) + float(alpha) * float(progress) - float(cost)


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
        return float(j) - prev

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
