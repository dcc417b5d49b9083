"""Evaluating a micro-reasoner policy on TTC-Math-v0 (shared by examples/studies/micro_calibrate.py and
examples/studies/micro_study.py, micro_study_v1.py).

`evaluate(engine, problems, ...)` rolls the policy out G times on each problem with the LLM
trainer's own rollout code (`ttc_gym.training.llm_rollouts.collect_batch`: the vectorized
TTC-Math-v0, an `LLMAgent` over the engine, the policy as its own prover, K forced answers per
prefix) and returns one `Record` per rollout: its J curve (J_0, J_1, ...; docs/formulation.md §2),
the cumulative tokens at each point, and the graded outcome at the budget.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ttc_gym import metrics
from ttc_gym.agents.llm import LLMAgent
from ttc_gym.training.llm_config import LLMTrainConfig
from ttc_gym.training.llm_rollouts import RolloutPlan, collect_batch, make_envs
from ttc_gym.micro.checkpoint import micro_checkpoint_dir


@dataclass
class Record:
    """One rollout: its problem's id and level, J after each episode (j_curve[0] = J_0), the
    cumulative episode tokens at each point, the outcome, and the episodes' texts."""

    problem_id: str
    level: int
    group: int
    j_curve: list[float]
    tokens: list[int]
    outcome: float
    episodes: list[str]

    @property
    def ever_falls(self) -> bool:
        return bool(np.any(np.diff(self.j_curve) < -1e-9))


def heldout_problems(source: str, n: int, seed: int) -> list:
    """n problems of `source` drawn with the generator seeded (seed, 424242): the micro studies' held-out set."""
    from ttc_gym.problems import make_source

    src = make_source(source)
    rng = np.random.default_rng([seed, 424242])
    return [src.sample(rng) for _ in range(n)]


def eval_config(H: int, temperature: float, K: int = 8, max_episode_tokens: int = 48, seed: int = 0) -> LLMTrainConfig:
    with tempfile.TemporaryDirectory() as out:
        return LLMTrainConfig(model=str(micro_checkpoint_dir()), source="micro", max_episodes=H,
                              num_prover_samples=K, temperature=temperature,
                              max_episode_tokens=max_episode_tokens, group_size=2, problems_per_iter=1,
                              seed=seed, out=out)


def evaluate(engine: Any, problems: Sequence[Any], *, H: int, G: int = 1, temperature: float = 1.0,
             K: int = 8, max_episode_tokens: int = 48, seed: int = 0, chunk: int = 64) -> list[Record]:
    """G rollouts of each problem under the policy `engine` (it is also the prover), budget H
    episodes; rollout (i, g) is seeded by (seed, i, g), so the same engine and seed give the same records."""
    config = eval_config(H, temperature, K, max_episode_tokens, seed)
    seeds = np.random.default_rng([seed, 7919]).integers(0, 2**31, size=(len(problems), G))
    plans = [RolloutPlan(group=i, problem=p, seed=int(seeds[i, g])) for i, p in enumerate(problems) for g in range(G)]
    records: list[Record] = []
    for start in range(0, len(plans), chunk):
        part = plans[start:start + chunk]
        envs = make_envs(config, engine, None, None, num_envs=len(part))
        try:
            agent = LLMAgent(engine, max_episode_tokens=max_episode_tokens, temperature=temperature,
                             template=envs.template, seed=seed)
            import torch

            with torch.inference_mode():
                rollouts = collect_batch(envs, agent, part)
        finally:
            envs.close()
        for plan, ro in zip(part, rollouts):
            curve = [ro.j0] + list(ro.j0 + np.cumsum(ro.progress))
            tokens = [0] + list(np.cumsum([len(ids) for ids in ro.episode_ids]))
            records.append(Record(plan.problem.id, int(plan.problem.difficulty), plan.group,
                                  [float(round(j, 6)) for j in curve], [int(t) for t in tokens],
                                  float(ro.outcome), list(ro.episodes)))
    return records


def j_after(records: Sequence[Record], j: int) -> float:
    """Mean J after j episodes (a rollout that ended earlier holds its last J)."""
    return float(np.mean([r.j_curve[min(j, len(r.j_curve) - 1)] for r in records]))


def summary(records: Sequence[Record], H: int, max_episode_tokens: int = 48) -> dict:
    """Accuracy (outcome at the budget), J_0..J_H, tokens, token regret (ours and MRT's convention,
    C0 = H x max_episode_tokens), the share of rollouts whose J ever falls, and per-problem spread."""
    c0 = H * max_episode_tokens
    by_problem: dict[str, list[float]] = {}
    for r in records:
        by_problem.setdefault(r.problem_id, []).append(r.outcome)
    per_problem = np.array([np.mean(v) for v in by_problem.values()])
    return {
        "n": len(records),
        "accuracy": float(np.mean([r.outcome for r in records])),
        "J": [j_after(records, j) for j in range(H + 1)],
        "tokens": float(np.mean([r.tokens[-1] for r in records])),
        "episodes": float(np.mean([len(r.episodes) for r in records])),
        "token_regret": float(np.mean([metrics.normalized_token_regret(r.tokens, r.j_curve, c0) for r in records])),
        "ever_falls": float(np.mean([r.ever_falls for r in records])),
        "problem_acc_std": float(per_problem.std()),
        "problems_all_right": float(np.mean(per_problem == 1.0)),
        "problems_all_wrong": float(np.mean(per_problem == 0.0)),
    }


def by_level(records: Sequence[Record]) -> dict[int, list[Record]]:
    out: dict[int, list[Record]] = {}
    for r in records:
        out.setdefault(r.level, []).append(r)
    return dict(sorted(out.items()))
