"""TTC-Sim-v0 vectorized with numpy over the batch: `gym.make_vec("TTC-Sim-v0", num_envs=1024,
vectorization_mode="vector_entry_point")`. Same dynamics, rewards and spaces as `ttc_gym.envs.sim.TTCSimEnv`
(its docstring is the spec), every knob of `ttc_gym.envs.sim_model.SimParams` included; sub-envs that finish are reset on the next `step` (Gymnasium's
next-step autoreset), which returns their first observation with reward 0. Observations are gold-free
as the single env's; of `INFO_KEYS`, J, J_exact, progress and outcome are derived from the hidden state
(for rewards and analysis, not for a deployable policy), as documented there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ttc_gym.envs.sim_model import ACTION_NAMES, ANSWER, CONTINUE, FRESH_CANDIDATE, KNOWN_CORRECT, SWITCH, VERIFY, SimParams, SimModel, check_snapshot
from ttc_gym.prover import simulated_monte_carlo_j
from ttc_gym.rewards import compose_reward, progress_between
from ttc_gym.validation import check_int, check_render_mode

T, LEVEL, STRAT, STEPS, ATTEMPTS, CAND, KEPT = range(7)
INFO_KEYS = ("J", "J_exact", "progress", "outcome", "cost", "episodes_used", "tokens_used", "answered", "difficulty")


class TTCSimVectorEnv(VectorEnv):
    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any):
        self.num_envs = check_int("num_envs", num_envs, minimum=1)
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.params = P = SimParams.from_kwargs(kwargs)
        self.model = SimModel(P)
        self.single_observation_space = spaces.MultiDiscrete(P.obs_nvec)
        self.single_action_space = spaces.Discrete(len(ACTION_NAMES))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._steps_needed = P.steps_needed
        self._cdf = np.cumsum(P.difficulty_probs)
        self._rows = np.arange(self.num_envs)
        self._all = np.ones(self.num_envs, dtype=bool)
        self._state: np.ndarray | None = None

    # -- helpers ----------------------------------------------------------------------------------
    def _reset_rows(self, rows: np.ndarray, level: int | None = None) -> None:
        """Draw fresh problems for the sub-envs selected by the boolean mask `rows`."""
        n = int(rows.sum())
        if n == 0:
            return
        rng = self.np_random
        if level is None:
            lv = np.minimum(np.searchsorted(self._cdf, rng.random(n), side="right"), len(self._cdf) - 1)
        else:
            lv = np.full(n, level)
        self._state[rows] = 0
        self._tokens[rows] = 0
        self._state[rows, LEVEL] = lv
        self._working[rows] = rng.random((n, self.params.num_strategies)) < self.params.success_prob[lv][:, None]
        self._slipped[rows] = False
        self._j_true[rows] = self.params.partial_j(lv, np.zeros(n, dtype=np.int64))
        self._j[rows] = self._estimate(self._j_true[rows])

    def _true_j(self) -> np.ndarray:
        s = self._state
        ruled = s[:, -1] if self.params.has_ruled_out_field else 0
        return self.params.exact_j(s[:, LEVEL], s[:, STEPS], s[:, CAND], self._slipped, ruled)

    def _estimate(self, j_true: np.ndarray) -> np.ndarray:
        k = self.params.prover_samples
        return j_true.copy() if k is None else simulated_monte_carlo_j(j_true, k, self.np_random)

    def _info(self, progress, outcome, cost, answered) -> dict:
        s = self._state
        info = {
            "J": self._j.copy(), "J_exact": self._j_true.copy(), "progress": progress,
            "outcome": outcome, "cost": cost, "episodes_used": s[:, T].copy(),
            "tokens_used": self._tokens.copy(), "answered": answered,
            "difficulty": s[:, LEVEL].copy(),
        }
        info.update({"_" + k: self._all for k in INFO_KEYS})
        return info

    # -- the vector API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset every sub-env: each draws a problem (of `options["difficulty"]` when given), or, with
        `options={"snapshots": [s_0, ...]}` (one entry per sub-env, None: draw a problem), sub-env i is
        put back at the point of `TTCSimEnv.snapshot()` s_i (its budget, J and hidden state; the noise
        of the steps that follow comes from this vector env's generator, not the snapshot's)."""
        snapshots = None
        if options and "snapshots" in options:
            snapshots = self._check_snapshots(options)
        super().reset(seed=seed)
        level = None
        if options and snapshots is None:
            if set(options) - {"difficulty"}:
                raise ValueError(f"reset options accept only 'difficulty' or 'snapshots', got {sorted(options)}.")
            level = check_int("options['difficulty']", options["difficulty"], minimum=0, maximum=len(self._cdf) - 1)
        n, S = self.num_envs, self.params.num_strategies
        self._state = np.zeros((n, len(self.params.obs_fields)), dtype=np.int64)
        self._tokens = np.zeros(n, dtype=np.int64)
        self._working = np.zeros((n, S), dtype=bool)
        self._slipped = np.zeros(n, dtype=bool)
        self._j_true = np.zeros(n)
        self._j = np.zeros(n)
        self._done = np.zeros(n, dtype=bool)
        self._reset_rows(self._all, level)
        for i, snap in enumerate(snapshots or ()):
            if snap is not None:
                self._state[i], self._working[i] = snap["state"], snap["working"]
                self._slipped[i], self._tokens[i] = snap["slipped"], snap["tokens"]
                self._j_true[i], self._j[i] = snap["J_exact"], snap["J"]
        zeros = np.zeros(n)
        return self._observation(), self._info(zeros, zeros, zeros, np.zeros(n, dtype=bool))

    def _check_snapshots(self, options: dict) -> list:
        if set(options) != {"snapshots"}:
            raise ValueError(f"options['snapshots'] gives every sub-env its state: give it alone, got {sorted(options)}.")
        snapshots = options["snapshots"]
        if not isinstance(snapshots, (list, tuple)) or len(snapshots) != self.num_envs:
            raise ValueError(f"options['snapshots'] must be a list of {self.num_envs} snapshots (or None), one per "
                             f"sub-env, got {type(snapshots).__name__} of length {len(snapshots) if hasattr(snapshots, '__len__') else '?'}.")
        return [None if s is None else check_snapshot(s, self.params) for s in snapshots]

    def _observation(self) -> np.ndarray:
        obs = self._state.copy()
        if not self.params.observe_episodes:
            obs[:, T] = 0  # budget-agnostic: the episode count is hidden
        return obs

    def step(self, actions):
        if self._state is None:
            raise RuntimeError("TTCSimVectorEnv.step called before reset(); call reset() first.")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() > ANSWER:
            raise ValueError(
                f"actions must be an integer array of shape ({self.num_envs},) with values in [0, {ANSWER}], "
                f"got {a.dtype} array of shape {a.shape}" + (f" with values in [{a.min()}, {a.max()}]." if a.size else ".")
            )
        P, s, rng = self.params, self._state, self.np_random
        restart = self._done
        active = ~restart
        lv, cand = s[:, LEVEL], s[:, CAND]
        u = rng.random((3, self.num_envs))

        answer = active & (a == ANSWER)
        cont = active & (a == CONTINUE) & (cand == 0)
        working = self._working[self._rows, s[:, STRAT]]
        rate = np.where(working, P.rate_working[lv], P.rate_dead_end[lv])
        advance = cont & (u[0] < rate)
        s[:, ATTEMPTS] += cont
        s[:, STEPS] += advance
        new_cand = advance & (s[:, STEPS] == self._steps_needed[lv])
        s[new_cand, CAND] = FRESH_CANDIDATE
        self._slipped[new_cand] = u[1][new_cand] < P.slip_prob[lv][new_cand]

        if P.overthink > 0.0:  # continuing past a candidate may rewrite it (SimParams.overthink)
            rewrite = active & (a == CONTINUE) & ~cont & (u[0] < P.overthink)  # ~cont: held a candidate before this step
            s[rewrite, CAND] = P.revised_code
            self._slipped[rewrite] = u[1][rewrite] < P.overthink_slip

        switch = active & (a == SWITCH) & (s[:, STRAT] + 1 < P.num_strategies)
        kept = np.zeros(self.num_envs, dtype=np.int64)
        if P.has_kept_field:  # a switch keeps part of the work (SimParams.kept_after_switch, vectorized)
            raw = P.switch_keep * s[:, STEPS]
            lo = np.floor(raw + 1e-12).astype(np.int64)
            frac = np.where(raw - lo > 1e-12, raw - lo, 0.0)
            kept = np.minimum(lo + (u[1] < frac), self._steps_needed[lv] - 1)
        s[switch, STRAT] += 1
        s[switch, STEPS] = kept[switch]
        s[switch, ATTEMPTS] = 0
        s[switch, CAND] = 0
        if P.has_kept_field:
            s[switch, KEPT] = kept[switch]
        if P.has_ruled_out_field:  # a dead end abandoned is recognised (SimParams.rule_out)
            s[switch & ~working, -1] += 1
        self._slipped[switch] = False

        verify = active & (a == VERIFY) & (cand >= FRESH_CANDIDATE)
        detect = verify & self._slipped & (u[0] < P.verify_detect)
        s[verify, CAND] = P.verified_code(s[verify, CAND])
        s[detect, CAND] = KNOWN_CORRECT
        self._slipped &= ~detect

        episode = active & ~answer
        s[:, T] += episode
        if P.tokens_per_action is None:
            self._tokens += episode * P.tokens_per_episode
        else:
            ranges = np.array([P.token_range(k) for k in range(ANSWER)] + [(0, 0)])  # rows: actions
            lo_t, hi_t = ranges[a, 0], ranges[a, 1]
            self._tokens += episode * rng.integers(lo_t, hi_t + 1)
        self._j_true = self._true_j()
        j_new = np.where(episode, self._estimate(self._j_true), self._j)
        progress = progress_between(self._j, j_new)
        self._j = j_new
        truncated = episode & (s[:, T] >= P.max_episodes)
        answered = answer | (truncated & P.answer_on_truncation)
        outcome = (answered & (u[2] < P.answer_j(self._j_true))).astype(np.float64)
        cost = episode * P.episode_cost
        reward = compose_reward(outcome, progress, P.alpha, cost)
        terminated = answered  # a forced answer at the budget's end also terminates (see TTCSimEnv)

        # Next-step autoreset: sub-envs that ended on the previous call start a new problem now.
        if restart.any():
            self._reset_rows(restart)
            reward[restart] = 0.0
            progress[restart] = 0.0
            cost[restart] = 0.0
        self._done = terminated | truncated
        return self._observation(), reward, terminated, truncated, self._info(progress, outcome, cost, answered)
