"""The prover interface: given a problem and the episodes so far, how likely is a forced answer correct?

J(mu(.|x, z_{0:j})) is estimated by a prover mu that must stop thinking and answer. An exact prover
returns the probability itself (the simulator knows its hidden state); a sampling prover draws K
forced answers, grades them and returns the fraction correct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from ttc_gym.validation import check_int, check_probability


@dataclass(frozen=True)
class ProverEstimate:
    """One estimate of J.

    Attributes:
        j: estimated probability that a forced answer is correct.
        answers: the forced answers sampled (empty for an exact prover).
        correct: whether each sampled answer was graded correct.
        num_samples: K, or None for an exact prover.
    """

    j: float
    answers: tuple[str, ...] = ()
    correct: tuple[bool, ...] = ()
    num_samples: int | None = None


@runtime_checkable
class Prover(Protocol):
    """Anything that estimates J for a problem and a prefix of episodes."""

    def estimate(self, problem: Any, episodes: Sequence[str]) -> ProverEstimate: ...


def monte_carlo_j(p_correct: float, num_samples: int, rng: np.random.Generator) -> float:
    """Fraction correct among K forced answers that are each correct with probability p_correct."""
    check_probability("p_correct", p_correct)
    check_int("num_samples (K)", num_samples, minimum=1)
    return float(rng.binomial(num_samples, p_correct)) / num_samples
