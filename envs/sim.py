"""TTC-Sim-v0: a simulated reasoner whose test-time compute an agent learns to spend."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ttc_gym.envs.sim_model import (
    ACTION_NAMES,
    ANSWER,
    CONTINUE,
    FRESH_CANDIDATE,
    KNOWN_CORRECT,
    NO_CANDIDATE,
    SWITCH,
    VERIFY,
    SimModel,
    SimParams,
    check_snapshot,
)
from ttc_gym.actions import check_meta_action
from ttc_gym.prover import simulated_monte_carlo_j
from ttc_gym.rewards import compose_reward, progress_between, reward_info
from ttc_gym.validation import check_render_mode


class TTCSimEnv(gym.Env):
    """
    ## Description

    A simulated reasoner solving one problem per episode of the RL loop, with each `step` one
    *reasoning episode* (an attempt, a check, a new approach), as in MRT's formulation of test-time
    compute as meta-RL. A problem has a difficulty level (easy / medium / hard by default). The
    reasoner works through strategies; each one is secretly working or a dead end. Continuing a
    working strategy makes progress quickly, a dead end rarely; after enough steps the reasoner holds a
    candidate answer, which may carry a hidden slip that verification can catch. The agent decides how
    to spend the budget: continue, switch strategy (explore), verify, or answer now.

    After every episode an *exact prover* reports J, the probability that an answer forced at that
    point is correct (docs/formulation.md §2), and the progress J_j - J_{j-1}. With `prover_samples=K`, J is
    instead a Monte Carlo estimate from K forced answers, to study the noise of a sampled prover.
    The full belief-MDP over observations is public (`env.unwrapped.model`), which is how the DP
    oracle in `ttc_gym.agents.oracle` computes the optimal policy and J*.

    ## Action Space

    `Discrete(4)`: 0 continue the current strategy (past a candidate answer: a no-op, or with
    `overthink` > 0 a chance to rewrite the candidate), 1 switch to the next untried strategy
    (progress and candidate are dropped, or with `switch_keep` > 0 part of the steps is kept; a no-op
    once all strategies are tried), 2 verify the candidate answer (a no-op without an unverified
    candidate), 3 answer now (ends the episode, uses no budget).

    ## Observation Space

    `MultiDiscrete([H+1, L, S, M+1, H+1, H+3])` (L levels, S strategies, M the most steps any level
    needs; fields `ttc_gym.envs.sim_model.OBS_FIELDS`, also `env.unwrapped.obs_fields`): episodes used;
    difficulty level; index of the current strategy; steps done on it; episodes spent continuing it;
    candidate status (0 none, 1 a slip was found and fixed, 2+n a candidate that passed n verifications;
    with `overthink` > 0 the codes interleave, 2+2n a first candidate and 3+2n one rewritten by
    overthinking, each after n passed verifications, and the space's last size is 2H+4). With
    `switch_keep` > 0 a seventh field, `kept_steps` (size M), counts the steps a switch carried over to
    the current strategy. With `rule_out` > 0 a last field, `ruled_out` (size S), counts the dead-end
    strategies recognised so far (a switch away from a dead end recognises it). With `observe_episodes=False` the first field is always 0 (size 1): the policy
    does not see how much budget it has spent (budget-agnostic); the env still ends at H. These are a
    sufficient statistic of the agent's belief (with the episode count from `info["episodes_used"]` when
    it is hidden, which is how the DP oracle plans).

    **No gold, no hidden state** (docs/formulation.md §3). What each field is for a deployed reasoner:
    the episodes it spent; the problem's difficulty label, given with the problem (as MATH's levels;
    a deployed system without labels would have to estimate it); which approach it is on; how many
    steps of that approach it has established and how many episodes it spent trying, which it can
    count (it knows when it holds a candidate answer: after `steps_needed` steps); and what its own
    checks said (a check that found an error, or n checks that found none). Whether the current
    strategy is working, and whether the candidate carries a slip, are hidden: two problems that
    differ only there give the same observations until the dynamics tell them apart (a strategy that
    advances, a check that finds the slip). Modelling choices, not leaks: the difficulty label is
    exact, a found slip is fixed for sure, and a check never finds a slip that is not there. The
    reported J is computed from the hidden state, so it lives in `info` only; a policy that decides
    from it is an oracle (`ttc_gym.agents.heuristics.OracleAnswerWhenConfident`), while
    `env.unwrapped.model.expected_j(obs)` is the belief's E[J | observation], which is gold-free.

    ## Rewards

    Every step: `outcome + alpha * progress - cost`, computed by `ttc_gym.rewards.compose_reward`.
    `progress = J_new - J_prev`; `cost = episode_cost` for each episode spent (answering costs
    nothing); `outcome` is 1 when the committed answer is correct on the final step, else 0. The
    answer is correct with probability J (the exact one, also with a sampled prover), or with
    `answer_mismatch` = e > 0 with probability `(1 - e) * J + e * guess_prob`: the policy's own answer
    is then sometimes not the prover's (mu != pi), while progress stays the prover's. Over an episode
    progress telescopes to `J_final - J_0`.

    ## Starting State

    A difficulty level drawn from `difficulty_probs` (or `options={"difficulty": d}` in `reset`),
    the type of every strategy drawn from the level's `success_prob`, nothing done yet:
    J_0 = `guess_prob`.

    Or a point of an earlier problem: `env.unwrapped.snapshot()` returns the env's whole state after
    any step before the end (episodes used, strategy, steps, candidate, the hidden strategy types and
    slip, tokens, J, and the generator's state) as a dict, and `reset(options={"snapshot": s})` puts
    the env back there: the budget counts the episodes already used, `info["J"]` is J at that point,
    and the next step's progress is measured from it. Without a `seed` the generator continues from
    the snapshot's state, so stepping on gives the same rewards, J and budget as stepping there from
    the start; with a `seed` it is seeded afresh (a branch with its own noise: MRT's continuations
    from one prefix). A snapshot holds the hidden state: it is for the trainer that branches, and a
    policy that reads it is an oracle. A snapshot of an env with other arguments, or a malformed one,
    is refused with an error saying what was expected.

    ## Episode End

    Terminated when the agent answers. Truncated after `max_episodes` (H) reasoning episodes; with
    `answer_on_truncation=True` (default) the reasoner is then forced to answer, that outcome is
    rewarded, and the step is *both* terminated and truncated: the budget ran out, and the problem is
    over, so RL libraries must not bootstrap a value past it (stable-baselines3 bootstraps only when
    truncated and not terminated). With `answer_on_truncation=False` the step is truncated only.

    ## Arguments

    `gym.make("TTC-Sim-v0", **kwargs)`, all optional (see `ttc_gym.envs.sim_model.SimParams`):
    `levels` (tuple of `DifficultyLevel`), `difficulty_probs`, `num_strategies` (3),
    `heterogeneity` (0.8; 0 = all strategies alike, 1 = dead ends never progress, mean rate fixed),
    `max_episodes` (H = 10), `alpha` (1.0), `episode_cost` (0.02), `verify_detect` (0.8),
    `guess_prob` (0.1), `partial_credit` (0.5), `tokens_per_episode` (256, for token metrics),
    `prover_samples` (None = exact, or K), `answer_on_truncation` (True; False: no forced answer at
    the budget's end, unanswered = wrong), `switch_keep` (0.0: a switch keeps this fraction of the
    steps done), `overthink` (0.0: probability that an episode continuing past a candidate rewrites
    it) and `overthink_slip` (0.5: probability that a rewritten answer is wrong), `tokens_per_action`
    (None, or mean lengths (continue, switch, verify); each episode's length drawn uniformly in
    [m/2, 3m/2] from `np_random`; `info["tokens_used"]` sums them), `observe_episodes` (True; False
    hides the episode count), `answer_mismatch` (0.0: probability that the policy's own answer is a
    guess instead of the prover's forced answer), `rule_out` (0.0: informative exploration, the share
    of the forced guess's wrong answers each recognised dead end rules out, so a switch away from a
    dead end raises J), `render_mode` (None or "ansi"). Every knob's
    default is the first release's behaviour. Unknown or invalid arguments raise an error naming
    what was expected. `ttc_gym.envs.sim_model.SimParams` documents each knob; its dynamics live in
    `sim_model` only (the env, the vector env and the DP oracle read them there).

    `info` on every step: J, progress, outcome, alpha, cost, reward, episodes_used, tokens_used,
    answered, plus J_exact (the hidden true J) and difficulty. Gold-derived (computed from the hidden
    working / slip state or the graded answer; for rewards and analysis, not for a deployable
    policy): J, J_exact, progress, outcome, reward. Gold-free: alpha, cost, episodes_used,
    tokens_used, answered, difficulty (also in the observation).

    ## Version History

    * v0: initial version (its observation was already gold-free; its documentation now says so).
    * v0, knobs added (defaults unchanged, so runs without them are identical): `switch_keep`,
      `overthink`, `overthink_slip`, `tokens_per_action`, `observe_episodes`, `answer_mismatch`;
      `answer_on_truncation=False` documented as "unanswered = wrong". `info["tokens_used"]` is the
      sum of the episodes' lengths (H x `tokens_per_episode` at the defaults, as before).
    * v0, knob added (default unchanged): `rule_out` (informative exploration; the observation gains
      the last field `ruled_out` only when it is > 0).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.params = SimParams.from_kwargs(kwargs)
        self.model = SimModel(self.params)
        P = self.params
        self.observation_space = spaces.MultiDiscrete(P.obs_nvec)
        self.action_space = spaces.Discrete(len(ACTION_NAMES))
        # Plain Python copies of per-level numbers: the step is a hot loop.
        self._steps_needed = P.steps_needed.tolist()
        self._success = P.success_prob.tolist()
        self._slip = P.slip_prob.tolist()
        self._rate_working = P.rate_working.tolist()
        self._rate_dead_end = P.rate_dead_end.tolist()
        self._level_cdf = np.cumsum(P.difficulty_probs).tolist()
        self._state: list[int] | None = None  # t, level, strategy, steps, attempts, candidate
        self._trace: list[str] = []

    @property
    def obs_fields(self) -> tuple[str, ...]:
        """The observation's field names, in order (agents that aggregate state name fields by them)."""
        return self.params.obs_fields

    # -- the prover ------------------------------------------------------------------------------
    def _true_j(self) -> float:
        _, level, _, steps, _, cand = self._state[:6]
        ruled = self._state[-1] if self.params.has_ruled_out_field else 0
        return self.params.exact_j(level, steps, cand, self._slipped, ruled)

    def _estimate_j(self, j_true: float) -> float:
        k = self.params.prover_samples
        return j_true if k is None else simulated_monte_carlo_j(j_true, k, self.np_random)

    # -- the gymnasium API -----------------------------------------------------------------------
    def snapshot(self) -> dict:
        """The env's state at this point of the problem, for `reset(options={"snapshot": ...})` (see
        Starting State); plain Python values and the generator's state, safe to keep and reuse."""
        if self._state is None:
            raise RuntimeError("snapshot() needs a problem in progress: call reset() first (a finished problem "
                               "has no point to return to).")
        return {
            "obs_nvec": [int(n) for n in self.params.obs_nvec], "state": list(self._state),
            "working": list(self._working), "slipped": bool(self._slipped), "tokens": int(self._tokens),
            "J_exact": float(self._j_true), "J": float(self._j),
            "rng": copy.deepcopy(self.np_random.bit_generator.state),
        }

    def _restore(self, snapshot: Any, seed: int | None):
        """`reset` to a snapshot (checked before anything is touched)."""
        snap = check_snapshot(snapshot, self.params)
        super().reset(seed=seed)
        if seed is None:
            self.np_random.bit_generator.state = copy.deepcopy(snap["rng"])
        self._state = [int(v) for v in snap["state"]]
        self._working = [bool(w) for w in snap["working"]]
        self._slipped, self._tokens = bool(snap["slipped"]), int(snap["tokens"])
        self._j_true, self._j = float(snap["J_exact"]), float(snap["J"])
        self._trace = [f"restored: level={self.params.levels[self._state[1]].name} episodes={self._state[0]} "
                       f"J={self._j:.2f}"]
        info = reward_info(
            j=self._j, progress=0.0, outcome=0.0, alpha=self.params.alpha, cost=0.0,
            episodes_used=self._state[0], tokens_used=self._tokens, answered=False,
        )
        info.update(J_exact=self._j_true, difficulty=self._state[1])
        return self._observation(), info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if options and "snapshot" in options:
            if set(options) != {"snapshot"}:
                raise ValueError(f"options['snapshot'] restores a whole state: give it alone, got {sorted(options)}.")
            return self._restore(options["snapshot"], seed)
        super().reset(seed=seed)
        rng = self.np_random
        level = self._level_from_options(options)
        if level is None:
            u = rng.random()
            level = next((i for i, c in enumerate(self._level_cdf) if u < c), len(self._level_cdf) - 1)
        self._working = (rng.random(self.params.num_strategies) < self._success[level]).tolist()
        self._slipped = False
        self._state = [0] * len(self.params.obs_fields)  # t, level, strategy, steps, attempts, candidate[, kept][, ruled]
        self._state[1] = level
        self._tokens = 0
        self._j_true = self._true_j()
        self._j = self._estimate_j(self._j_true)
        self._trace = [f"level={self.params.levels[level].name} J={self._j:.2f}"]
        info = reward_info(
            j=self._j, progress=0.0, outcome=0.0, alpha=self.params.alpha, cost=0.0,
            episodes_used=0, tokens_used=0, answered=False,
        )
        info.update(J_exact=self._j_true, difficulty=level)
        return self._observation(), info

    def _observation(self) -> np.ndarray:
        obs = np.array(self._state, dtype=np.int64)
        if not self.params.observe_episodes:
            obs[0] = 0  # budget-agnostic: the episode count is hidden
        return obs

    def _level_from_options(self, options: dict | None) -> int | None:
        if not options:
            return None
        unknown = set(options) - {"difficulty"}
        if unknown:
            raise ValueError(f"reset options accept only 'difficulty' or 'snapshot', got {sorted(unknown)}.")
        level = options["difficulty"]
        n = len(self.params.levels)
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level < n:
            raise ValueError(f"options['difficulty'] must be a level index in [0, {n}), got {level!r}.")
        return int(level)

    def step(self, action):
        if self._state is None:
            raise RuntimeError("TTCSimEnv.step called before reset() or after the episode ended; call env.reset() first.")
        action = check_meta_action(self.action_space, action)
        P = self.params
        s = self._state
        t, level, strat, steps, attempts, cand = s[:6]
        rng = self.np_random
        if action == ANSWER:
            outcome = float(rng.random() < P.answer_j(self._j_true))
            return self._finish(0.0, outcome, cost=0.0, terminated=True, truncated=False, action=action)

        if action == CONTINUE and cand == NO_CANDIDATE:
            rate = self._rate_working[level] if self._working[strat] else self._rate_dead_end[level]
            s[4] = attempts + 1
            if rng.random() < rate:
                s[3] = steps + 1
                if steps + 1 == self._steps_needed[level]:
                    s[5] = FRESH_CANDIDATE
                    self._slipped = bool(rng.random() < self._slip[level])
        elif action == CONTINUE and P.overthink > 0.0:  # overthinking past a candidate may rewrite it
            if rng.random() < P.overthink:
                s[5] = P.revised_code
                self._slipped = bool(rng.random() < P.overthink_slip)
        elif action == SWITCH and strat + 1 < P.num_strategies:
            kept = 0
            if P.has_kept_field:
                branches = P.kept_after_switch(steps, level)
                kept = branches[0][1] if len(branches) == 1 or rng.random() < branches[0][0] else branches[1][1]
                s[6] = kept
            if P.has_ruled_out_field and not self._working[strat]:
                s[-1] += 1  # a dead end abandoned is recognised: its wrong answers are ruled out
            s[2], s[3], s[4], s[5] = strat + 1, kept, 0, NO_CANDIDATE
            self._slipped = False
        elif action == VERIFY and cand >= FRESH_CANDIDATE:
            if self._slipped and rng.random() < P.verify_detect:
                s[5], self._slipped = KNOWN_CORRECT, False
            else:
                s[5] = P.verified_code(cand)
        s[0] = t + 1
        if P.tokens_per_action is None:
            self._tokens += P.tokens_per_episode
        else:
            lo, hi = P.token_range(action)
            self._tokens += int(rng.integers(lo, hi + 1))
        self._j_true = self._true_j()
        j_new = self._estimate_j(self._j_true)
        progress = progress_between(self._j, j_new)
        self._j = j_new
        truncated = s[0] >= P.max_episodes
        outcome = 0.0
        # A forced answer at the end of the budget is a committed answer: terminated (no value left
        # to bootstrap) as well as truncated (the budget ran out).
        forced = truncated and P.answer_on_truncation
        if forced:
            outcome = float(rng.random() < P.answer_j(self._j_true))
        return self._finish(progress, outcome, P.episode_cost, forced, truncated, action)

    def _finish(self, progress, outcome, cost, terminated, truncated, action):
        P = self.params
        s = self._state
        answered = terminated
        reward = compose_reward(outcome, progress, P.alpha, cost)
        info = reward_info(
            j=self._j, progress=progress, outcome=outcome, alpha=P.alpha, cost=cost,
            episodes_used=s[0], tokens_used=self._tokens, answered=answered,
        )
        info["J_exact"] = self._j_true
        info["difficulty"] = s[1]
        if self.render_mode == "ansi":
            self._trace.append(
                f"{ACTION_NAMES[action]:>8}: J={self._j:.2f} progress={progress:+.2f}"
                + (f" outcome={outcome:.0f}" if answered else "")
            )
        obs = self._observation()
        if terminated or truncated:
            self._state = None  # a finished episode needs reset() before the next step
        return obs, reward, terminated, truncated, info

    def render(self):
        if self.render_mode == "ansi":
            return "\n".join(self._trace) + "\n"
        return None
