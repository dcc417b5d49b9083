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

Optional dynamics (each off by default, which is TTC-Sim-v0 as first released; `SimParams` documents
each): `switch_keep` (a switch keeps part of the steps done), `overthink` / `overthink_slip`
(continuing past a candidate may rewrite it, and a rewritten answer is wrong more often),
`tokens_per_action` (episode lengths that differ by action and are sampled), `observe_episodes`
(False: the episode count is hidden from the observation), `answer_mismatch` (the policy's own final
answer is, with this probability, a guess instead of the prover's forced answer: mu != pi), `rule_out`
(abandoning a dead-end strategy rules out wrong answers, so the forced answer's guess improves:
exploration informs the prover). They live
here only: the env, the vector env and the DP oracle all read this module.

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
# 2 + n a candidate answer that passed n verifications. With `overthink` > 0 the codes interleave (so
# that they do not depend on H): 2 + 2n a first candidate, 3 + 2n a candidate rewritten by
# overthinking, each after n passed verifications (`SimParams.verified_code`, `SimParams.slip_prior`).
NO_CANDIDATE, KNOWN_CORRECT, FRESH_CANDIDATE = 0, 1, 2
# Appended to OBS_FIELDS when `switch_keep` > 0: steps inherited from abandoned strategies at the last switch.
KEPT_FIELD = "kept_steps"
# Appended last when `rule_out` > 0: dead-end strategies recognised (and their wrong answers ruled out) so far.
RULED_OUT_FIELD = "ruled_out"


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
    "switch_keep",
    "overthink",
    "overthink_slip",
    "tokens_per_action",
    "observe_episodes",
    "answer_mismatch",
    "rule_out",
)


@dataclass(frozen=True)
class SimParams:
    """Every knob of TTC-Sim-v0 (the env's kwargs), validated on construction.

    The knobs of phenomena the first release left out (all off by default):

    * `switch_keep` in [0, 1]: a switch keeps this fraction of the steps done on the abandoned
      strategy (`switch_keep * steps`, rounded down or up at random so that the mean is kept, at most
      steps_needed - 1): exploring no longer throws all work away, so J need not fall on a switch.
      The new strategy's type is still unknown (its own steps = steps_done - kept_steps; the kept
      count is the extra observation field `kept_steps`).
    * `overthink` in [0, 1]: an episode that continues past a candidate answer rewrites it with this
      probability (the reasoner talks itself into another answer); the rewritten answer carries a slip
      with probability `overthink_slip` (default 0.5) and its earlier checks no longer apply. J can
      then fall on a continue step; at 0 continuing past a candidate changes nothing, as before.
    * `tokens_per_action` (continue, switch, verify): the mean length of each kind of episode; each
      episode's length is drawn uniformly from [ceil(m / 2), floor(3 m / 2)] with the env's
      `np_random`. None: every episode has `tokens_per_episode` tokens.
    * `observe_episodes` (True): False hides the episode count (the observation's first field is
      always 0, its size 1): a budget-agnostic policy. The planning model (and the DP oracle, which
      reads the count from `info["episodes_used"]`) still knows it.
    * `answer_mismatch` in [0, 1]: the policy's own committed answer (its answer action or the forced
      answer at the budget's end) is, with this probability, a guess (correct with `guess_prob`)
      instead of the prover's forced answer: it is correct with probability
      `(1 - answer_mismatch) * J + answer_mismatch * guess_prob` while J (the progress reward) stays
      the prover's (mu != pi, docs/formulation.md §2).
    * `answer_on_truncation=False` (existing): no forced answer at the budget's end; unanswered = wrong.
    * `rule_out` in [0, 1]: *informative exploration*. A switch away from a dead-end strategy
      recognises it as one (the reasoner sees where that approach leads) and rules out the wrong
      answers it leads to: each recognised dead end removes the share `rule_out` of the wrong mass of
      the forced answer's guess, so with e dead ends recognised the guess is right with probability
      `guess_e = 1 - (1 - guess_prob) * (1 - rule_out)**e` (`SimParams.guess_j`), and J without a
      candidate is `guess_e + (1 - guess_e) * partial_credit * steps_done / steps_needed`. Abandoning
      a working strategy rules out nothing. The count e is observed (the extra observation field
      `ruled_out`, size num_strategies, last); whether an abandoned strategy was a dead end is not,
      except through that count. At 0 (default) a switch never raises the guess, as before: J then
      cannot value exploration, because a switch or a failed attempt never raises it. A candidate
      answer's J (1 - its slip posterior) is unchanged. Ours: a model of MRT's picture of exploration
      as information gain for the prover (Qu et al. 2025, Figure 4), not a quantity from the paper.
    """

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
    switch_keep: float = 0.0
    overthink: float = 0.0
    overthink_slip: float = 0.5
    tokens_per_action: tuple[int, int, int] | None = None  # (continue, switch, verify) mean tokens
    observe_episodes: bool = True
    answer_mismatch: float = 0.0
    rule_out: float = 0.0
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
        for name in ("answer_on_truncation", "observe_episodes"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}.")
        check_probability("switch_keep", self.switch_keep)
        check_probability("overthink", self.overthink)
        check_probability("overthink_slip", self.overthink_slip)
        check_probability("answer_mismatch", self.answer_mismatch)
        check_probability("rule_out", self.rule_out)
        if self.tokens_per_action is not None:
            tpa = self.tokens_per_action
            if isinstance(tpa, (str, bytes)) or not hasattr(tpa, "__len__") or len(tpa) != 3:
                raise ValueError(
                    f"tokens_per_action must be None or 3 mean lengths (continue, switch, verify), got {tpa!r}."
                )
            object.__setattr__(
                self, "tokens_per_action",
                tuple(check_int(f"tokens_per_action[{i}]", int(x) if isinstance(x, (np.integer,)) else x, minimum=1)
                      for i, x in enumerate(tpa)),
            )
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
    def has_kept_field(self) -> bool:
        """True when the observation carries `kept_steps` (switch_keep > 0)."""
        return self.switch_keep > 0.0

    @property
    def has_ruled_out_field(self) -> bool:
        """True when the observation carries `ruled_out` (rule_out > 0), as its last field."""
        return self.rule_out > 0.0

    @property
    def obs_fields(self) -> tuple[str, ...]:
        """Names of the observation's components: OBS_FIELDS, plus `kept_steps` when switch_keep > 0,
        plus `ruled_out` (last) when rule_out > 0."""
        return (OBS_FIELDS + ((KEPT_FIELD,) if self.has_kept_field else ())
                + ((RULED_OUT_FIELD,) if self.has_ruled_out_field else ()))

    def guess_j(self, ruled_out: Index) -> Index:
        """Probability that the forced answer's guess is right after `ruled_out` recognised dead ends:
        `1 - (1 - guess_prob) * (1 - rule_out)**ruled_out` (guess_prob when rule_out = 0)."""
        return 1.0 - (1.0 - self.guess_prob) * (1.0 - self.rule_out) ** ruled_out

    @property
    def revised_code(self) -> int:
        """Candidate code of a fresh rewritten (overthought) candidate: 3 (3 + 2n after n checks)."""
        return FRESH_CANDIDATE + 1

    def verified_code(self, candidate: Index) -> Index:
        """The code of `candidate` (>= FRESH_CANDIDATE) after one more passed verification."""
        return candidate + (2 if self.overthink > 0.0 else 1)

    @property
    def obs_nvec(self) -> np.ndarray:
        """Sizes of the MultiDiscrete observation, in `obs_fields` order."""
        H = self.max_episodes
        nvec = [
            H + 1 if self.observe_episodes else 1, len(self.levels), self.num_strategies, self.max_steps + 1, H + 1,
            2 * H + 4 if self.overthink > 0.0 else H + 3,
        ]
        if self.has_kept_field:
            nvec.append(self.max_steps)
        if self.has_ruled_out_field:
            nvec.append(self.num_strategies)
        return np.array(nvec, dtype=np.int64)

    def answer_j(self, j: Index) -> Index:
        """Probability that the policy's own committed answer is correct when the prover's J is `j`:
        `(1 - answer_mismatch) * j + answer_mismatch * guess_prob` (j itself by default: mu = pi)."""
        e = self.answer_mismatch
        return j if e == 0.0 else (1.0 - e) * j + e * self.guess_prob

    def token_range(self, action: int) -> tuple[int, int]:
        """Inclusive range of an episode's token count for `action` (continue, switch or verify)."""
        if self.tokens_per_action is None:
            return self.tokens_per_episode, self.tokens_per_episode
        m = self.tokens_per_action[action]
        return (m + 1) // 2, max((3 * m) // 2, (m + 1) // 2)

    def mean_tokens(self, action: int) -> float:
        lo, hi = self.token_range(action)
        return (lo + hi) / 2.0

    def kept_after_switch(self, steps: int, level: int) -> list[tuple[float, int]]:
        """The steps a switch keeps, as (probability, kept) branches: switch_keep * steps rounded down
        or up at random (mean preserved), at most steps_needed - 1."""
        raw = self.switch_keep * steps
        lo = int(np.floor(raw + 1e-12))
        frac = raw - lo if raw - lo > 1e-12 else 0.0
        cap = int(self.steps_needed[level]) - 1
        if frac == 0.0:
            return [(1.0, min(lo, cap))]
        return [(1.0 - frac, min(lo, cap)), (frac, min(lo + 1, cap))]

    def slip_prior(self, candidate: Index) -> tuple[Index, Index]:
        """(is the candidate a rewritten one, verifications it passed) for candidate codes >= FRESH."""
        if self.overthink == 0.0:
            return candidate < 0, candidate - FRESH_CANDIDATE  # (False, n)
        return (candidate - FRESH_CANDIDATE) % 2 == 1, (candidate - FRESH_CANDIDATE) // 2

    def partial_j(self, level: Index, steps_done: Index, ruled_out: Index = 0) -> Index:
        """J with `steps_done` < steps_needed steps done: a forced answer is a guess helped by partial
        work, `g + (1 - g) * partial_credit * steps_done / steps_needed` with g = `guess_j(ruled_out)`
        (guess_prob unless `rule_out` > 0). Indices or integer arrays (the vector env's batch)."""
        g = self.guess_j(ruled_out) if self.rule_out > 0.0 else self.guess_prob
        j = g + (1.0 - g) * self.partial_credit * steps_done / self.steps_needed[level]
        return j if isinstance(j, np.ndarray) else float(j)

    def exact_j(self, level: Index, steps_done: Index, candidate: Index, slipped: Index, ruled_out: Index = 0) -> Index:
        """The exact prover's J from the hidden state: `partial_j` without a candidate answer, else 1
        for a candidate without slip and 0 for a slipped one. Numbers (the env's step) or arrays
        (the vector env's batch)."""
        if isinstance(candidate, np.ndarray):
            partial = self.partial_j(level, steps_done, ruled_out)
            return np.where(candidate == NO_CANDIDATE, partial, np.where(slipped, 0.0, 1.0))
        if candidate == NO_CANDIDATE:
            return self.partial_j(level, steps_done, ruled_out)
        return 0.0 if slipped else 1.0


@dataclass(frozen=True)
class Outcome:
    """One branch of `SimModel.transitions`."""

    prob: float
    obs: tuple[int, ...] | None  # None: the episode ended
    reward: float  # expected reward of the branch (outcome in expectation + alpha * E[progress] - cost)
    expected_j: float  # E[J] after the step, under the belief
    answer_prob: float = 0.0  # probability that an answer committed on this branch is correct (0: none committed)


class SimModel:
    """Exact belief-MDP of TTC-Sim-v0 over observations (for planning and for tests).

    `expected_j(obs)` is E[J | obs]; `transitions(obs, action)` lists the successor observations with
    their probabilities and expected rewards. The env's sampled dynamics (with hidden strategy types
    and slips) induce exactly this process over observations.

    The model's observations always carry the episode count: with `observe_episodes=False` the env
    shows 0 in its place, and `planning_obs(obs, info)` puts the count from `info` back.
    """

    def __init__(self, params: SimParams):
        self.params = params

    def _make(self, t, level, strat, steps, attempts, cand, kept=0, ruled=0) -> tuple[int, ...]:
        P = self.params
        base = (int(t), int(level), int(strat), int(steps), int(attempts), int(cand))
        return base + ((int(kept),) if P.has_kept_field else ()) + ((int(ruled),) if P.has_ruled_out_field else ())

    def initial_distribution(self) -> list[tuple[float, tuple[int, ...]]]:
        return [(p, self._make(0, d, 0, 0, 0, NO_CANDIDATE)) for d, p in enumerate(self.params.difficulty_probs) if p > 0]

    def planning_obs(self, obs, info: dict | None = None) -> tuple[int, ...]:
        """The model's observation for an env observation: with `observe_episodes=False` the hidden
        episode count is read from `info["episodes_used"]` (gold-free); else `obs` as a tuple."""
        key = tuple(int(x) for x in np.asarray(obs).ravel())
        if self.params.observe_episodes:
            return key
        if not info or "episodes_used" not in info:
            raise ValueError("observe_episodes=False hides the episode count: pass the step's info (episodes_used).")
        return (int(info["episodes_used"]),) + key[1:]

    def p_working(self, level: int, steps_done: int, attempts: int) -> float:
        """Posterior that the current strategy works after `steps_done` advances (its own, without
        kept steps) in `attempts` tries."""
        P = self.params
        q, rw, rd = P.success_prob[level], P.rate_working[level], P.rate_dead_end[level]
        fails = attempts - steps_done
        lw = q * rw**steps_done * (1.0 - rw) ** fails
        ld = (1.0 - q) * rd**steps_done * (1.0 - rd) ** fails
        return float(lw / (lw + ld))

    def p_slip(self, level: int, candidate: int) -> float:
        """Posterior that the candidate answer carries a slip (prior `slip_prob`, or `overthink_slip`
        for a rewritten candidate, times (1 - verify_detect) per passed check, renormalized)."""
        if candidate < FRESH_CANDIDATE:
            return 0.0
        P = self.params
        revised, n = P.slip_prior(candidate)
        prior = P.overthink_slip if revised else P.slip_prob[level]
        s = prior * (1.0 - P.verify_detect) ** int(n)
        return float(s / (s + 1.0 - prior)) if s + 1.0 - prior > 0 else 1.0

    def ruled_out(self, obs: tuple[int, ...]) -> int:
        """Dead ends recognised so far (the observation's last field when rule_out > 0, else 0)."""
        return obs[-1] if self.params.has_ruled_out_field else 0

    def expected_j(self, obs: tuple[int, ...]) -> float:
        level, steps, cand = obs[1], obs[3], obs[5]
        if cand == NO_CANDIDATE:
            return self.params.partial_j(level, steps, self.ruled_out(obs))
        return 1.0 - self.p_slip(level, cand)

    def answer_j(self, obs: tuple[int, ...]) -> float:
        """Probability that the policy's own answer committed at `obs` is correct (`SimParams.answer_j`)."""
        return float(self.params.answer_j(self.expected_j(obs)))

    def transitions(self, obs: tuple[int, ...], action: int) -> list[Outcome]:
        P = self.params
        t, level, strat, steps, attempts, cand = obs[:6]
        kept = obs[6] if P.has_kept_field else 0
        ruled = self.ruled_out(obs)
        j_now = self.expected_j(obs)
        if action == ANSWER:  # the answer is correct with probability answer_j; no episode, no cost
            acc = self.answer_j(obs)
            return [Outcome(1.0, None, compose_reward(acc, 0.0, P.alpha), j_now, acc)]
        branches: list[tuple[float, tuple[int, ...]]] = []
        t1 = t + 1
        def make(*fields):  # the ruled-out count carries over unless a switch recognises a dead end
            return self._make(*fields, ruled=ruled)

        if action == CONTINUE and cand == NO_CANDIDATE:
            pw = self.p_working(level, steps - kept, attempts)
            p_adv = pw * P.rate_working[level] + (1.0 - pw) * P.rate_dead_end[level]
            adv_cand = FRESH_CANDIDATE if steps + 1 == P.steps_needed[level] else NO_CANDIDATE
            branches.append((p_adv, make(t1, level, strat, steps + 1, attempts + 1, adv_cand, kept)))
            branches.append((1.0 - p_adv, make(t1, level, strat, steps, attempts + 1, cand, kept)))
        elif action == CONTINUE and P.overthink > 0.0:  # past a candidate: overthinking may rewrite it
            branches.append((P.overthink, make(t1, level, strat, steps, attempts, P.revised_code, kept)))
            branches.append((1.0 - P.overthink, make(t1, level, strat, steps, attempts, cand, kept)))
        elif action == SWITCH and strat + 1 < P.num_strategies:
            # With rule_out > 0 the abandoned strategy, a dead end with probability 1 - p_working, is
            # recognised as one: one more wrong-answer share ruled out.
            pw = self.p_working(level, steps - kept, attempts) if P.has_ruled_out_field else 1.0
            for prob, k in P.kept_after_switch(steps, level):
                branches.append((prob * pw, self._make(t1, level, strat + 1, k, 0, NO_CANDIDATE, k, ruled)))
                if pw < 1.0:
                    branches.append((prob * (1.0 - pw), self._make(t1, level, strat + 1, k, 0, NO_CANDIDATE, k, ruled + 1)))
        elif action == VERIFY and cand >= FRESH_CANDIDATE:
            p_detect = self.p_slip(level, cand) * P.verify_detect
            branches.append((p_detect, make(t1, level, strat, steps, attempts, KNOWN_CORRECT, kept)))
            branches.append((1.0 - p_detect, make(t1, level, strat, steps, attempts, P.verified_code(cand), kept)))
        else:  # an episode that changes nothing (continue past a candidate, verify without one, ...)
            branches.append((1.0, make(t1, level, strat, steps, attempts, cand, kept)))
        truncated = t1 >= P.max_episodes
        out = []
        for prob, nxt in branches:
            if prob <= 0.0:
                continue
            j_next = self.expected_j(nxt)
            # A forced answer at the budget's end is correct with probability answer_j (in expectation).
            acc = self.answer_j(nxt) if truncated and P.answer_on_truncation else 0.0
            reward = compose_reward(acc, progress_between(j_now, j_next), P.alpha, P.episode_cost)
            out.append(Outcome(prob, None if truncated else nxt, reward, j_next, acc))
        return out


# -- snapshots: a point of a problem, to reset an env there (MRT's branching from a prefix) -------
SNAPSHOT_KEYS = ("obs_nvec", "state", "working", "slipped", "tokens", "J_exact", "J", "rng")


def check_snapshot(snapshot: object, params: SimParams) -> dict:
    """`snapshot` (from `TTCSimEnv.snapshot`) as a dict an env with `params` can restore, or a
    ValueError / TypeError saying what was expected: its keys (`SNAPSHOT_KEYS`), an env of the same
    observation space, a state inside it before the budget's end, one type per strategy, J in [0, 1]."""
    if not isinstance(snapshot, dict):
        raise TypeError(f"a snapshot must be the dict TTCSimEnv.snapshot() returns, got {type(snapshot).__name__}.")
    if set(snapshot) != set(SNAPSHOT_KEYS):
        raise ValueError(f"a snapshot has the keys {list(SNAPSHOT_KEYS)}, got {sorted(snapshot)}.")
    nvec = [int(n) for n in params.obs_nvec]
    if list(snapshot["obs_nvec"]) != nvec:
        raise ValueError(f"the snapshot is of an env whose observation space is {list(snapshot['obs_nvec'])}; this "
                         f"env's is {nvec} (make both with the same arguments).")
    state = np.asarray(snapshot["state"])
    # The state holds the true episode count even where the observation hides it (observe_episodes=False).
    bounds = [params.max_episodes + 1] + nvec[1:]
    if state.shape != (len(nvec),) or not np.issubdtype(state.dtype, np.integer) or (state < 0).any() or (state >= bounds).any():
        raise ValueError(f"snapshot['state'] must be {len(nvec)} integers inside {bounds}, got {snapshot['state']!r}.")
    if state[0] >= params.max_episodes:
        raise ValueError(f"snapshot['state'] has used {state[0]} of {params.max_episodes} episodes: the problem is "
                         f"over; snapshot a point before the budget's end.")
    working = np.asarray(snapshot["working"])
    if working.shape != (params.num_strategies,) or working.dtype != bool:
        raise ValueError(f"snapshot['working'] must be {params.num_strategies} booleans, got {snapshot['working']!r}.")
    for key in ("J_exact", "J"):
        value = snapshot[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"snapshot[{key!r}] must be a probability in [0, 1], got {value!r}.")
    if not isinstance(snapshot["slipped"], bool):
        raise TypeError(f"snapshot['slipped'] must be a bool, got {snapshot['slipped']!r}.")
    if isinstance(snapshot["tokens"], bool) or not isinstance(snapshot["tokens"], (int, np.integer)) or snapshot["tokens"] < 0:
        raise ValueError(f"snapshot['tokens'] must be a count >= 0, got {snapshot['tokens']!r}.")
    return snapshot
