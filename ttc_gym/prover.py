"""The prover interface: given a problem and the episodes so far, how likely is a forced answer correct?

J(mu(.|x, z_{0:j})) is estimated by a prover mu that must stop thinking and answer. An exact prover
returns the probability itself (the simulator knows its hidden state); a sampling prover draws K
forced answers, grades them and returns the fraction correct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, Sequence, TypeVar, runtime_checkable

import numpy as np

from ttc_gym.validation import check_int, check_probability

Count = TypeVar("Count", float, np.ndarray)


@dataclass(frozen=True)
class ProverEstimate:
    """One estimate of J.

    Attributes:
        j: estimated probability that a forced answer is correct.
        answers: the forced answers sampled (empty for an exact prover).
        correct: whether each sampled answer was graded correct (K = len(correct)).
        answer_tokens: mean number of tokens the forced answers took (0 for an exact prover): MRT's
            token axis counts them (`metrics.mrt_normalized_token_regret`).
        incomplete: how many of the answers the grader could not decide (each counted wrong in j; a
            sampling prover never memoizes such an estimate).
    """

    j: float
    answers: tuple[str, ...] = ()
    correct: tuple[bool, ...] = ()
    answer_tokens: float = 0.0
    incomplete: int = 0


class PolicyAnswer(NamedTuple):
    """The reasoner's own forced answer at a prefix, graded: `answer` (normalized), `correct`, and
    `incomplete`, the ungraded answers its sampling added to those of the prover's estimate at the
    same prefix (0 when the prover is the policy: its first forced answer is the policy's)."""

    answer: str
    correct: bool
    incomplete: int = 0


@runtime_checkable
class Prover(Protocol):
    """Anything that estimates J for a problem and a prefix of episodes."""

    def estimate(self, problem: Any, episodes: Sequence[str]) -> ProverEstimate: ...


def monte_carlo_j(num_correct: Count, num_samples: int) -> Count:
    """MRT's Monte Carlo estimate of J: the fraction of K = `num_samples` forced answers graded
    correct, num_correct / K (docs/formulation.md §2). `num_correct` is a count or an array of counts
    (then an array of estimates)."""
    check_int("num_samples (K)", num_samples, minimum=1)
    j = num_correct / num_samples
    return j if isinstance(j, np.ndarray) else float(j)


def simulated_monte_carlo_j(p_correct: Count, num_samples: int, rng: np.random.Generator) -> Count:
    """`monte_carlo_j` of K simulated forced answers that are each correct with probability
    `p_correct`: the number correct is drawn from Binomial(K, p_correct) with `rng`. `p_correct` is
    a probability or an array of them (one draw each, in order)."""
    if isinstance(p_correct, np.ndarray):
        if p_correct.size and not (np.all(p_correct >= 0.0) and np.all(p_correct <= 1.0)):
            raise ValueError(f"p_correct must hold probabilities in [0, 1], got values in "
                             f"[{p_correct.min()}, {p_correct.max()}].")
    else:
        check_probability("p_correct", p_correct)
    check_int("num_samples (K)", num_samples, minimum=1)
    return monte_carlo_j(rng.binomial(num_samples, p_correct), num_samples)
