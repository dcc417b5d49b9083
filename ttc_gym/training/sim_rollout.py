"""Batched rollouts on TTC-Sim-v0 through the ordinary Gymnasium API, the policy acting on a whole
batch at once.

* `rollout` — grouped rollouts on a list of single envs run in lockstep (GRPO / MRT). The G rollouts
  of one problem reset their envs with the SAME seed, which draws the same problem (difficulty level
  and which strategies work). The same seed would also replay the same env noise (progress coin
  flips, slips, the graded answer) for equal actions, so each env's `np_random` is then replaced by a
  generator of its own (the public `Env.np_random` setter): the G rollouts share the problem and
  differ through the policy's sampling *and* the env's noise, as G samples of an LLM on one prompt do.
* `rollout_vector` — one problem per sub-env of a vector env (`gym.make_vec`, numpy-vectorized, ~20x
  faster per env step at 128 sub-envs): for ungrouped rollouts (trace collection for SFT, evaluation).
* `rollout_difficulty_groups` — the fast alternative for GRPO / MRT: the G rollouts of a group share
  the difficulty level only (vector envs reset with `options={"difficulty": d}`), not the hidden
  problem (which strategies work); the group baseline is then a per-level baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ttc_gym.training.algorithms import Trajectory
from ttc_gym.evaluation import RolloutRecord


@dataclass
class SimTrace:
    """One rollout: what the policy saw and did, and the reward parts of each step."""

    seed: int
    group: int
    obs: np.ndarray  # (n, d) observation before each action
    actions: np.ndarray  # (n,)
    progress: np.ndarray  # (n,)
    cost: np.ndarray  # (n,)
    outcome: float
    total_reward: float
    j_curve: list[float]  # J after 0, 1, ... episodes
    token_curve: list[int]  # cumulative tokens at each point of j_curve
    difficulty: int
    extra: dict = field(default_factory=dict)
    branch: str | None = None  # None: from the start; "continue" / "terminate": a branch of a prefix (mrt)
    prefix_episodes: int = 0  # the episodes of the prefix a branch starts after (not part of this trace)

    @property
    def episodes_used(self) -> int:
        return len(self.j_curve) - 1

    def to_record(self) -> RolloutRecord:
        """As `ttc_gym.evaluation.RolloutRecord`, for `ttc_gym.evaluation.summarize`."""
        return RolloutRecord(
            seed=self.seed, total_reward=self.total_reward, outcome=self.outcome,
            episodes_used=self.episodes_used, tokens_used=self.token_curve[-1],
            j_curve=list(self.j_curve), token_curve=list(self.token_curve),
            actions=self.actions.tolist(), extra={"difficulty": self.difficulty, **self.extra},
        )


class PolicyActor:
    """Acts for a batch of envs by sampling a `SimPolicy` with `generator` (or greedily)."""

    needs_info = False

    def __init__(self, policy, generator: torch.Generator | None = None, greedy: bool | None = None):
        self.policy, self.generator, self.greedy = policy, generator, greedy

    def __call__(self, obs: np.ndarray, infos, rows: np.ndarray) -> np.ndarray:
        return self.policy.sample(obs, generator=self.generator, greedy=self.greedy)


class AgentsActor:
    """Acts for a batch of envs with one `act(obs, info)` agent per env (e.g. a mixture of heuristics)."""

    needs_info = True

    def __init__(self, agents: Sequence[Any]):
        self.agents = list(agents)

    def __call__(self, obs: np.ndarray, infos: list, rows: np.ndarray) -> np.ndarray:
        return np.array([int(self.agents[r].act(o, i)) for o, i, r in zip(obs, infos, rows)], dtype=np.int64)


def make_envs(n: int, env_id: str = "TTC-Sim-v0", **env_kwargs: Any) -> list[gym.Env]:
    """n single envs, for grouped rollouts."""
    return [gym.make(env_id, disable_env_checker=True, **env_kwargs) for _ in range(n)]


def make_vector_env(n: int, env_id: str = "TTC-Sim-v0", **env_kwargs: Any) -> gym.vector.VectorEnv:
    """A vector env of n sub-envs (numpy-vectorized for TTC-Sim-v0), for ungrouped rollouts."""
    return gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **env_kwargs)


@dataclass
class _TraceLog:
    """What `rollout` records of one env as it steps: becomes its SimTrace at the end."""

    seed: int
    group: int
    difficulty: int
    j_curve: list[float]
    token_curve: list[int]
    episodes0: int = 0  # episodes already used at the start (a branch from a prefix)
    steps: list[tuple] = field(default_factory=list)  # (obs, action, progress, cost) per step
    total: float = 0.0
    outcome: float = 0.0

    @classmethod
    def start(cls, seed: int, group: int, info: dict) -> _TraceLog:
        return cls(seed=int(seed), group=int(group), difficulty=int(info["difficulty"]),
                   j_curve=[float(info["J"])], token_curve=[int(info["tokens_used"])],
                   episodes0=int(info["episodes_used"]))

    def record(self, obs: np.ndarray, action: int, reward: float, info: dict, ended: bool) -> None:
        self.steps.append((obs, action, info["progress"], info["cost"]))
        self.total += reward
        if info["episodes_used"] > self.episodes0 + len(self.j_curve) - 1:  # the step spent an episode
            self.j_curve.append(float(info["J"]))
            self.token_curve.append(int(info["tokens_used"]))
        if ended:
            self.outcome = float(info["outcome"])

    def trace(self) -> SimTrace:
        obs, actions, progress, cost = zip(*self.steps)
        return SimTrace(
            seed=self.seed, group=self.group, obs=np.stack(obs), actions=np.array(actions, dtype=np.int64),
            progress=np.array(progress, dtype=np.float64), cost=np.array(cost, dtype=np.float64),
            outcome=self.outcome, total_reward=float(self.total), j_curve=self.j_curve,
            token_curve=self.token_curve, difficulty=self.difficulty,
        )


def rollout(
    envs: Sequence[gym.Env],
    actor: Any,
    seeds: Sequence[int],
    *,
    groups: Sequence[int] | None = None,
    noise_seeds: Sequence[int] | None = None,
    options: dict | Sequence[dict | None] | None = None,
    max_steps: int = 100_000,
) -> list[SimTrace]:
    """Run one problem in each of the first len(seeds) envs, in lockstep, until every one has ended.

    `seeds[i]` seeds env i's reset (it draws the problem); with `noise_seeds`, env i's `np_random` is
    then replaced by `np.random.default_rng(noise_seeds[i])` for the rest of the problem. `options`:
    the reset options of every env, or a list of one per env (e.g. `{"snapshot": s}`: start there).
    `actor(obs (k, d), infos, rows) -> (k,) actions` acts for the k envs still running.
    """
    n = len(seeds)
    if len(envs) < n:
        raise ValueError(f"rollout needs at least {n} envs, got {len(envs)}.")
    groups = list(range(n)) if groups is None else list(groups)
    obs_now, infos, logs = [], [], []
    per_env = options if isinstance(options, (list, tuple)) else [options] * n
    for i in range(n):
        o, info = envs[i].reset(seed=int(seeds[i]), options=per_env[i])
        if noise_seeds is not None:
            envs[i].np_random = np.random.default_rng(int(noise_seeds[i]))
        obs_now.append(o)
        infos.append(info)
        logs.append(_TraceLog.start(seeds[i], groups[i], info))
    active = list(range(n))
    for _ in range(max_steps):
        if not active:
            break
        obs = np.stack([obs_now[i] for i in active])
        actions = actor(obs, [infos[i] for i in active] if actor.needs_info else None, np.array(active))
        still = []
        for k, i in enumerate(active):
            obs_now[i], reward, term, trunc, infos[i] = envs[i].step(int(actions[k]))
            logs[i].record(obs[k], int(actions[k]), reward, infos[i], ended=term or trunc)
            if not (term or trunc):
                still.append(i)
        active = still
    if active:
        raise RuntimeError(f"rollout did not end within {max_steps} steps; is the env's budget set?")
    return [log.trace() for log in logs]


def rollout_vector(
    venv: gym.vector.VectorEnv, actor: Any, seed: int, *, options: dict | None = None, max_steps: int = 100_000
) -> list[SimTrace]:
    """One problem per sub-env of `venv` (reset with `seed`), until each has ended once.

    Needs next-step autoreset: a sub-env that ended is restarted by the following `step`, whose data
    is ignored here. Trace i has seed `seed` and group i.
    """
    mode = venv.metadata.get("autoreset_mode")
    if mode is not None and getattr(mode, "value", mode) != "NextStep":
        raise ValueError(f"rollout_vector needs a next-step autoreset vector env, got {mode!r}.")
    n = venv.num_envs
    obs, info = venv.reset(seed=seed, options=options)
    j0, tok0, difficulty = np.array(info["J"], float), np.array(info["tokens_used"]), np.array(info["difficulty"])
    running = np.ones(n, dtype=bool)
    outcome, total = np.zeros(n), np.zeros(n)
    log = []  # per step: (running mask, obs, actions, progress, cost, J, tokens, spent an episode)
    episodes = np.zeros(n, dtype=np.int64)
    for _ in range(max_steps):
        if not running.any():
            break
        rows = np.flatnonzero(running)
        actions = np.zeros(n, dtype=np.int64)
        infos = None
        if actor.needs_info:
            infos = [{k: v[i] for k, v in info.items() if not k.startswith("_")} for i in rows]
        actions[rows] = actor(obs[rows], infos, rows)
        next_obs, reward, term, trunc, info = venv.step(actions)
        used = np.asarray(info["episodes_used"])
        spent = running & (used > episodes)
        episodes = np.where(running, used, episodes)
        log.append((running.copy(), obs, actions, np.asarray(info["progress"], float), np.asarray(info["cost"], float),
                    np.asarray(info["J"], float), np.asarray(info["tokens_used"]), spent))
        total += np.where(running, reward, 0.0)
        ended = running & (term | trunc)
        outcome[ended] = np.asarray(info["outcome"], float)[ended]
        running &= ~ended
        obs = next_obs
    if running.any():
        raise RuntimeError(f"rollout_vector did not end within {max_steps} steps; is the env's budget set?")
    return _vector_traces(log, seed, j0, tok0, difficulty, outcome, total)


def _vector_traces(log: list[tuple], seed: int, j0, tok0, difficulty, outcome, total) -> list[SimTrace]:
    """The SimTraces of `rollout_vector`'s step log (per step: running mask, obs, actions, progress,
    cost, J, tokens, whether the step spent an episode; each over the n sub-envs)."""
    mask, o, a, p, c, j, t, s = (np.stack(x) for x in zip(*log))  # each (T, n, ...)
    traces = []
    for i in range(mask.shape[1]):
        m = mask[:, i]
        traces.append(
            SimTrace(
                seed=int(seed), group=i, obs=o[m, i], actions=a[m, i], progress=p[m, i], cost=c[m, i],
                outcome=float(outcome[i]), total_reward=float(total[i]),
                j_curve=[float(j0[i])] + j[s[:, i], i].tolist(), token_curve=[int(tok0[i])] + t[s[:, i], i].astype(int).tolist(),
                difficulty=int(difficulty[i]),
            )
        )
    return traces


def rollout_difficulty_groups(
    venv_for: Any, actor: Any, levels: Sequence[int], group_size: int, seed: int
) -> list[SimTrace]:
    """Group p (G = `group_size` rollouts) runs problems of difficulty `levels[p]`: for each level, one
    vector env from `venv_for(num_envs)` holds all its groups and is reset with that difficulty and
    seed `seed + level`. Returns traces ordered by group, with `group` = p."""
    levels = np.asarray(levels, dtype=np.int64)
    traces: list = [None] * (levels.size * group_size)
    for level in np.unique(levels):
        groups = np.flatnonzero(levels == level)
        venv = venv_for(groups.size * group_size)
        for k, t in enumerate(rollout_vector(venv, actor, int(seed) + int(level), options={"difficulty": int(level)})):
            t.group = int(groups[k // group_size])
            traces[t.group * group_size + k % group_size] = t
    return traces


def trained_lengths(traces: Sequence[SimTrace]) -> list[int]:
    """How many of each trace's actions are trained: all of them, except a terminating branch's one
    action (answer), which was forced, not sampled (its outcome is the baseline of its prefix's
    continuing branches). A branch's prefix is never part of its trace."""
    return [0 if t.branch == "terminate" else len(t.actions) for t in traces]


def trained_steps(traces: Sequence[SimTrace]) -> tuple[np.ndarray, np.ndarray]:
    """(observations (N, d), actions (N,)) of the trained actions of `traces` (`trained_lengths`), in
    order: the rows the policy-gradient loss (and its entropy bonus) covers."""
    lengths = trained_lengths(traces)
    d = traces[0].obs.shape[1] if traces else 0
    obs = np.concatenate([t.obs[:n] for t, n in zip(traces, lengths)]) if traces else np.zeros((0, d), np.int64)
    actions = np.concatenate([t.actions[:n] for t, n in zip(traces, lengths)]) if traces else np.zeros(0, np.int64)
    return obs, actions


def to_trajectories(traces: Sequence[SimTrace], policy=None, ref_policy=None) -> list[Trajectory]:
    """Trajectories for `ttc_gym.training.algorithms`, with log-probs under `policy` (one batched
    forward pass, with gradient) and under `ref_policy` (no gradient) when given."""
    lengths = trained_lengths(traces)
    lp = ref = None
    if policy is not None or ref_policy is not None:
        obs, actions = trained_steps(traces)
        if policy is not None:
            lp = torch.split(policy.log_prob(obs, actions), lengths)
        if ref_policy is not None:
            with torch.no_grad():
                ref = torch.split(ref_policy.log_prob(obs, actions), lengths)
    return [
        Trajectory(
            group=t.group, outcome=t.outcome, progress=t.progress[:n], cost=t.cost[:n],
            logprobs=None if lp is None else lp[i], ref_logprobs=None if ref is None else ref[i], j0=t.j_curve[0],
            branch=t.branch,
        )
        for i, (t, n) in enumerate(zip(traces, lengths))
    ]


def batch_stats(traces: Sequence[SimTrace]) -> dict[str, float]:
    """Mean return, accuracy, episodes used and total progress of a batch."""
    return {
        "return": float(np.mean([t.total_reward for t in traces])),
        "accuracy": float(np.mean([t.outcome for t in traces])),
        "episodes": float(np.mean([t.episodes_used for t in traces])),
        "progress": float(np.mean([t.progress.sum() for t in traces])),
    }
