"""The simulated reasoner behind TTC-Sim-v0: its parameters, its hidden dynamics and its exact
transition model over observations (the public accessor the DP oracle plans with).

A problem has a difficulty level. The reasoner tries strategies one after another; each strategy is
secretly *working* (probability `success_prob` of the level) or a *dead end*. An episode that
continues a strategy advances it by one step with probability `rate_working` or `rate_dead_end`
(their spread is the heterogeneity knob). After `steps_needed` steps the reasoner holds a candidate
answer, which carries a hidden slip with probability `slip_prob`; a verification episode catches a
slip with probability `verify_detect` and fixes it.

The prover is exact: J = probability that an answer forced now is correct, computed from the hidden
state: `guess_prob + (1 - guess_prob) * partial_credit * m / steps_needed` while m < steps_needed
steps are done, 1 for a candidate without slip, 0 for a slipped one.

Everything the agent sees is a sufficient statistic of its belief over the hidden state, so the
process over observations is itself a Markov decision process: `SimModel.transitions` gives it
exactly (Bayes over the hidden strategy type and slip), and the oracle solves it by DP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ttc_gym.actions import META_ACTION_NAMES as ACTION_NAMES
from ttc_gym.actions import MetaAction
from ttc_gym.rewards import check_alpha, compose_reward, progress_between
from ttc_gym.validation import (
    check_distribution,
    check_float,
    check_int,
    check_probability,
    unknown_name_error,
)

CONTINUE, SWITCH, VERIFY, ANSWER = (int(a) for a in MetaAction)

# A number (the single env) or a numpy array of them (the vector env's batch).
Index = TypeVar("Index", int, float, np.ndarray)

# Observation components, in order: what the reasoner itself knows, never the hidden strategy types or
# slip (TTCSimEnv's docstring says what each is in deployment terms; docs/formulation.md §3).
OBS_FIELDS = ("episodes_used", "difficulty", "strategy", "steps_done", "attempts", "candidate")
# `candidate` codes: 0 no candidate; 1 a slip was found and fixed (known correct);
# 2 + n a candidate answer that passed n verifications.
NO_CANDIDATE, KNOWN_CORRECT, FRESH_CANDIDATE = 0, 1, 2


@dataclass(frozen=True)
class DifficultyLevel:
    """One difficulty level of simulated problems.

    Attributes:
        name: label used in tables.
        steps_needed: steps a strategy must take to reach a candidate answer.
        success_prob: prior probability that any one strategy works on this problem; also the mean
            per-episode progress rate over strategies, whatever the heterogeneity.
        slip_prob: probability that a freshly reached candidate answer contains an error.
    """

    name: str
    steps_needed: int
    success_prob: float
    slip_prob: float

    def __post_init__(self) -> None:
        check_int(f"level {self.name!r} steps_needed", self.steps_needed, minimum=1)
        check_float(f"level {self.name!r} success_prob", self.success_prob, minimum=0.01, maximum=1.0)
        check_probability(f"level {self.name!r} slip_prob", self.slip_prob)


DEFAULT_LEVELS = (
    DifficultyLevel("easy", steps_needed=1, success_prob=0.9, slip_prob=0.05),
    DifficultyLevel("medium", steps_needed=2, success_prob=0.6, slip_prob=0.15),
    DifficultyLevel("hard", steps_needed=3, success_prob=0.35, slip_prob=0.3),
)

PARAMETER_NAMES = (
    "levels",
    "difficulty_probs",
    "num_strategies",
    "heterogeneity",
    "max_episodes",
    "alpha",
    "episode_cost",
    "verify_detect",
    "guess_prob",
    "partial_credit",
    "tokens_per_episode",
    "prover_samples",
    "answer_on_truncation",
)


@dataclass(frozen=True)
class SimParams:
    """Every knob of TTC-Sim-v0 (the env's kwargs), validated on construction."""

    levels: tuple[DifficultyLevel, ...] = DEFAULT_LEVELS
    difficulty_probs: tuple[float, ...] | None = None  # None: uniform over levels
    num_strategies: int = 3
    heterogeneity: float = 0.8
    max_episodes: int = 10
    alpha: float = 1.0
    episode_cost: float = 0.02
    verify_detect: float = 0.8
    guess_prob: float = 0.1
    partial_credit: float = 0.5
    tokens_per_episode: int = 256
    prover_samples: int | None = None  # None: exact prover; K: Monte Carlo estimate of K answers
    answer_on_truncation: bool = True
    # Derived per-level arrays, filled in __post_init__.
    _arrays: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        levels = tuple(self.levels)
        if not levels or not all(isinstance(lv, DifficultyLevel) for lv in levels):
            raise TypeError(f"levels must be a non-empty sequence of DifficultyLevel, got {self.levels!r}.")
        object.__setattr__(self, "levels", levels)
        probs = self.difficulty_probs
        probs = (1.0 / len(levels),) * len(levels) if probs is None else probs
        object.__setattr__(
            self, "difficulty_probs", check_distribution("difficulty_probs", probs, len(levels))
        )
        check_int("num_strategies", self.num_strategies, minimum=1, maximum=32)
        check_probability("heterogeneity", self.heterogeneity)
        check_int("max_episodes (H)", self.max_episodes, minimum=1, maximum=1000)
        check_alpha(self.alpha)
        check_float("episode_cost", self.episode_cost, minimum=0.0)
        check_probability("verify_detect", self.verify_detect)
        check_probability("guess_prob", self.guess_prob)
        check_probability("partial_credit", self.partial_credit)
        check_int("tokens_per_episode", self.tokens_per_episode, minimum=1)
        if self.prover_samples is not None:
            check_int("prover_samples (K)", self.prover_samples, minimum=1)
        if not isinstance(self.answer_on_truncation, bool):
            raise TypeError(f"answer_on_truncation must be a bool, got {self.answer_on_truncation!r}.")
        q = np.array([lv.success_prob for lv in levels])
        h = self.heterogeneity
        self._arrays.update(
            steps_needed=np.array([lv.steps_needed for lv in levels], dtype=np.int64),
            success_prob=q,
            slip_prob=np.array([lv.slip_prob for lv in levels]),
            # Mean-preserving spread: q * rate_working + (1 - q) * rate_dead_end == q for every h.
            rate_working=q + h * (1.0 - q),
            rate_dead_end=q * (1.0 - h),
        )

    @classmethod
    def from_kwargs(cls, kwargs: dict) -> "SimParams":
        unknown = [k for k in kwargs if k not in PARAMETER_NAMES]
        if unknown:
            raise unknown_name_error("TTC-Sim-v0 argument", unknown[0], PARAMETER_NAMES)
        return cls(**kwargs)

    # Per-level arrays (read-only numpy views for the vector env and the oracle).
    @property
    def steps_needed(self) -> np.ndarray:
        return self._arrays["steps_needed"]

    @property
    def success_prob(self) -> np.ndarray:
        return self._arrays["success_prob"]

    @property
    def slip_prob(self) -> np.ndarray:
        return self._arrays["slip_prob"]

    @property
    def rate_working(self) -> np.ndarray:
        return self._arrays["rate_working"]

    @property
    def rate_dead_end(self) -> np.ndarray:
        return self._arrays["rate_dead_end"]

    @property
    def max_steps(self) -> int:
        return int(self.steps_needed.max())

    @property
    def obs_nvec(self) -> np.ndarray:
        """Sizes of the MultiDiscrete observation, in OBS_FIELDS order."""
        H = self.max_episodes
        return np.array(
            [H + 1, len(self.levels), self.num_strategies, self.max_steps + 1, H + 1, H + 3],
            dtype=np.int64,
        )

    def partial_j(self, level: Index, steps_done: Index) -> Index:
        """J with `steps_done` < steps_needed steps done: a forced answer is a guess helped by partial
        work, `guess_prob + (1 - guess_prob) * partial_credit * steps_done / steps_needed`. Indices or
        integer arrays (the vector env's batch)."""
        j = self.guess_prob + (1.0 - self.guess_prob) * self.partial_credit * steps_done / self.steps_needed[level]
        return j if isinstance(j, np.ndarray) else float(j)

    def exact_j(self, level: Index, steps_done: Index, candidate: Index, slipped: Index) -> Index:
        """The exact prover's J from the hidden state: `partial_j` without a candidate answer, else 1
        for a candidate without slip and 0 for a slipped one. Numbers (the env's step) or arrays
        (the vector env's batch)."""
        if isinstance(candidate, np.ndarray):
            return np.where(candidate == NO_CANDIDATE, self.partial_j(level, steps_done), np.where(slipped, 0.0, 1.0))
        if candidate == NO_CANDIDATE:
            return self.partial_j(level, steps_done)
        return 0.0 if slipped else 1.0


@dataclass(frozen=True)
class Outcome:
    """One branch of `SimModel.transitions`."""

    prob: float
    obs: tuple[int, ...] | None  # None: the episode ended
    reward: float  # expected reward of the branch (outcome in expectation + alpha * E[progress] - cost)
    expected_j: float  # E[J] after the step, under the belief


class SimModel:
    """Exact belief-MDP of TTC-Sim-v0 over observations (for planning and for tests).

    `expected_j(obs)` is E[J | obs]; `transitions(obs, action)` lists the successor observations with
    their probabilities and expected rewards. The env's sampled dynamics (with hidden strategy types
    and slips) induce exactly this process over observations.
    """

    def __init__(self, params: SimParams):
        self.params = params

    def initial_distribution(self) -> list[tuple[float, tuple[int, ...]]]:
        return [(p, (0, d, 0, 0, 0, NO_CANDIDATE)) for d, p in enumerate(self.params.difficulty_probs) if p > 0]

    def p_working(self, level: int, steps_done: int, attempts: int) -> float:
        """Posterior that the current strategy works after `steps_done` advances in `attempts` tries."""
        P = self.params
        q, rw, rd = P.success_prob[level], P.rate_working[level], P.rate_dead_end[level]
        fails = attempts - steps_done
        lw = q * rw**steps_done * (1.0 - rw) ** fails
        ld = (1.0 - q) * rd**steps_done * (1.0 - rd) ** fails
        return float(lw / (lw + ld))

    def p_slip(self, level: int, candidate: int) -> float:
        """Posterior that the candidate answer carries a slip."""
        if candidate < FRESH_CANDIDATE:
            return 0.0
        s = self.params.slip_prob[level] * (1.0 - self.params.verify_detect) ** (candidate - FRESH_CANDIDATE)
        return float(s / (s + 1.0 - self.params.slip_prob[level]))

    def expected_j(self, obs: tuple[int, ...]) -> float:
        _, level, _, steps, _, cand = obs
        if cand == NO_CANDIDATE:
            return self.params.partial_j(level, steps)
        return 1.0 - self.p_slip(level, cand)

    def transitions(self, obs: tuple[int, ...], action: int) -> list[Outcome]:
        P = self.params
        t, level, strat, steps, attempts, cand = obs
        j_now = self.expected_j(obs)
        if action == ANSWER:  # the answer is correct with probability J; no episode, no cost
            return [Outcome(1.0, None, compose_reward(j_now, 0.0, P.alpha), j_now)]
        branches: list[tuple[float, tuple[int, ...]]] = []
        t1 = t + 1
        if action == CONTINUE and cand == NO_CANDIDATE:
            pw = self.p_working(level, steps, attempts)
            p_adv = pw * P.rate_working[level] + (1.0 - pw) * P.rate_dead_end[level]
            adv_cand = FRESH_CANDIDATE if steps + 1 == P.steps_needed[level] else NO_CANDIDATE
            branches.append((p_adv, (t1, level, strat, steps + 1, attempts + 1, adv_cand)))
            branches.append((1.0 - p_adv, (t1, level, strat, steps, attempts + 1, cand)))
        elif action == SWITCH and strat + 1 < P.num_strategies:
            branches.append((1.0, (t1, level, strat + 1, 0, 0, NO_CANDIDATE)))
        elif action == VERIFY and cand >= FRESH_CANDIDATE:
            p_detect = self.p_slip(level, cand) * P.verify_detect
            branches.append((p_detect, (t1, level, strat, steps, attempts, KNOWN_CORRECT)))
            branches.append((1.0 - p_detect, (t1, level, strat, steps, attempts, cand + 1)))
        else:  # an episode that changes nothing (continue past a candidate, verify without one, ...)
            branches.append((1.0, (t1, level, strat, steps, attempts, cand)))
        truncated = t1 >= P.max_episodes
        out = []
        for prob, nxt in branches:
            if prob <= 0.0:
                continue
            j_next = self.expected_j(nxt)
            # A forced answer at the budget's end is correct with probability J (the outcome in expectation).
            outcome = j_next if truncated and P.answer_on_truncation else 0.0
            reward = compose_reward(outcome, progress_between(j_now, j_next), P.alpha, P.episode_cost)
            out.append(Outcome(prob, None if truncated else nxt, reward, j_next))
        return out
