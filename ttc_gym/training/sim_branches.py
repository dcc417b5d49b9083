"""MRT's RL recipe on TTC-Sim-v0 (`--algo mrt`): branch from a prefix, continue or terminate.

Per problem of an iteration (MRT §6, Figure 6; docs/formulation.md §4):
1. a behaviour actor (the trainer's `prefix_source`: a frozen, stale copy of the policy, the policy
   itself, or the heterogeneous expert) writes a prefix of k reasoning episodes from the problem's
   start, k drawn uniformly from 0..H-1; the prefix stops earlier where the behaviour answers (it is
   what was written before that answer);
2. the env's state there is kept (`TTCSimEnv.snapshot`) and J at the prefix read from `info`;
3. `continues` envs reset to that snapshot, each with its own noise seed, roll the current policy out
   to the end (branch "continue"); `terminations` envs reset to it answer at once (branch
   "terminate": the forced answer is graded, and, not having been sampled, is not trained).
Every branch's `SimTrace.group` is its problem's index, so `algorithms.mrt_advantages` normalizes a
prefix's branches together, and `j_curve[0]` is J at the prefix. The prefix's own actions are never
part of a trace: no gradient reaches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ttc_gym.envs.sim_model import ANSWER
from ttc_gym.training.sim_rollout import SimTrace, rollout


class AnswerActor:
    """Answers at once in every env (a terminating branch)."""

    needs_info = False

    def __call__(self, obs: np.ndarray, infos, rows: np.ndarray) -> np.ndarray:
        return np.full(len(rows), ANSWER, dtype=np.int64)


def write_prefixes(envs: Sequence[Any], actor: Any, seeds: Sequence[int], lengths: Sequence[int]) -> list[dict]:
    """Env i (reset with `seeds[i]`) runs `actor` for up to `lengths[i]` episodes, stopping before an
    answer; returns each env's `snapshot()` there and the episodes written (keys "snapshot",
    "prefix_episodes"). J at the prefix is in the snapshot (and in each branch's `j_curve[0]`)."""
    n = len(seeds)
    obs, infos = zip(*(envs[i].reset(seed=int(seeds[i])) for i in range(n)))
    obs, infos = list(obs), list(infos)
    written = np.zeros(n, dtype=np.int64)
    active = [i for i in range(n) if lengths[i] > 0]
    while active:
        actions = actor(np.stack([obs[i] for i in active]), [infos[i] for i in active] if actor.needs_info else None,
                        np.array(active))
        still = []
        for k, i in enumerate(active):
            if int(actions[k]) == ANSWER:  # the behaviour would answer here: the prefix ends before it
                continue
            obs[i], _, _, _, infos[i] = envs[i].step(int(actions[k]))
            written[i] += 1
            if written[i] < lengths[i]:
                still.append(i)
        active = still
    return [{"snapshot": envs[i].unwrapped.snapshot(), "prefix_episodes": int(written[i])} for i in range(n)]


def collect_branches(
    envs: Sequence[Any], prefix_actor: Any, policy_actor: Any, rng: np.random.Generator, *,
    problems: int, continues: int, terminations: int, max_episodes: int,
) -> list[SimTrace]:
    """The branch rollouts of one iteration: `problems` prefixes (steps 1-2 of the module docstring),
    then `continues` + `terminations` branches of each (step 3), in that order per problem. Needs
    len(envs) >= problems * (continues + terminations). Every draw comes from `rng`."""
    per = continues + terminations
    if len(envs) < problems * per:
        raise ValueError(f"collect_branches needs {problems * per} envs, got {len(envs)}.")
    seeds = rng.integers(0, 2**30, size=problems)
    lengths = rng.integers(0, max_episodes, size=problems)  # k uniform over 0..H-1
    prefixes = write_prefixes(envs, prefix_actor, seeds, lengths)
    branch_seeds = rng.integers(0, 2**62, size=problems * per)
    groups = np.repeat(np.arange(problems), per)
    options = [{"snapshot": prefixes[g]["snapshot"]} for g in groups]
    kinds = np.tile(["continue"] * continues + ["terminate"] * terminations, problems)
    cont = np.flatnonzero(kinds == "continue")
    stop = np.flatnonzero(kinds == "terminate")
    traces: list = [None] * (problems * per)
    for rows, actor in ((cont, policy_actor), (stop, AnswerActor())):
        if rows.size == 0:
            continue
        done = rollout([envs[r] for r in rows], actor, branch_seeds[rows], groups=groups[rows],
                       options=[options[r] for r in rows])
        for r, trace in zip(rows, done):
            trace.branch, trace.seed = str(kinds[r]), int(seeds[groups[r]])
            trace.prefix_episodes = prefixes[groups[r]]["prefix_episodes"]
            traces[r] = trace
    return traces
