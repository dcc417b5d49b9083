"""Run agents on envs and summarize how they spend test-time compute.

A *rollout* is one problem from `reset` to its end; each step in it is one reasoning *episode*. An
agent follows `ttc_gym.agent.Agent`: `reset(seed=...)` before each problem, `act(obs, info)` at each
step (agents with `act` only are accepted too). The summary uses the metric functions of
`ttc_gym.metrics` and nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ttc_gym.agent import Agent, reset_agent
from ttc_gym.metrics import (
    cumulative_regret, maj_at_k_one_prefix_graded, mean_and_stderr, mrt_normalized_token_regret, mrt_token_axis,
    normalized_token_regret, pad_curve,
)


# `info` entries kept in `RolloutRecord.extra`: from reset (which problem, its prompt's length) and at
# every point of the J curve, reset included, as lists aligned with `j_curve` (the prover's K normalized
# forced answers, one grade per answer when the env grades them, their mean length in tokens). The
# pooled maj@k reads the answers after each episode, MRT's maj@k at one prefix the last point's, MRT's
# token axis the lengths.
RESET_INFO_KEYS = ("problem_id", "difficulty", "prompt_tokens")
POINT_INFO_KEYS = {"prover_answers": "point_answers", "prover_correct": "point_correct",
                   "prover_answer_tokens": "answer_tokens"}


__all__ = ["Agent", "RolloutRecord", "per_problem_metrics", "run_rollout", "summarize"]


@dataclass
class RolloutRecord:
    """What one problem's rollout produced (JSON-serializable through `to_dict`)."""

    seed: int
    total_reward: float
    outcome: float
    episodes_used: int
    tokens_used: int
    j_curve: list[float]  # J after 0, 1, ... episodes
    token_curve: list[int]  # cumulative tokens at each point of j_curve
    actions: list[Any] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def run_rollout(env, agent: Agent, seed: int, options: dict | None = None, max_steps: int = 100_000) -> RolloutRecord:
    """Roll out one problem with `agent`: `env.reset(seed=seed)`, `agent.reset(seed=seed)`, then `act` and
    `step` until the env ends the rollout. The env's `info` must carry J, outcome, episodes_used and
    tokens_used."""
    obs, info = env.reset(seed=seed, options=options)
    reset_agent(agent, seed)
    j_curve, token_curve, actions = [float(info["J"])], [int(info["tokens_used"])], []
    extra: dict = {key: info[key] for key in RESET_INFO_KEYS if key in info}

    def keep_point(info: dict) -> None:
        for key, name in POINT_INFO_KEYS.items():
            if key in info:
                value = info[key]
                extra.setdefault(name, []).append(list(value) if isinstance(value, (list, tuple)) else float(value))

    keep_point(info)
    total = 0.0
    for _ in range(max_steps):
        action = agent.act(obs, info)
        actions.append(action.item() if isinstance(action, np.generic) else action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if int(info["episodes_used"]) > len(j_curve) - 1:  # an episode was spent: a new point of the curve
            j_curve.append(float(info["J"]))
            token_curve.append(int(info["tokens_used"]))
            keep_point(info)
        if terminated or truncated:
            break
    else:
        raise RuntimeError(f"the rollout did not end within {max_steps} steps; is the env's budget set?")
    return RolloutRecord(
        seed=seed, total_reward=total, outcome=float(info["outcome"]),
        episodes_used=int(info["episodes_used"]), tokens_used=int(info["tokens_used"]),
        j_curve=j_curve, token_curve=token_curve, actions=actions, extra=extra,
    )


def per_problem_metrics(
    records: Sequence[RolloutRecord],
    *,
    budget_episodes: int,
    budget_tokens: int,
    j_star: float | Sequence[float] | Sequence[Sequence[float]] = 1.0,
) -> dict[str, list[float]]:
    """Each metric's value on each problem (the columns `summarize` averages).

    Always: return, accuracy (final outcome), episodes, tokens, token_regret (ours,
    `metrics.normalized_token_regret` over C0 = `budget_tokens`) and episode_regret (cumulative regret
    after `budget_episodes` episodes; curves padded with their final J once the agent answered).
    When every record carries what they need (the LLM envs report it): maj_one_prefix (MRT's maj@k at
    the rollout's last prefix, k = the K forced answers there, ties 1/2:
    `metrics.maj_at_k_one_prefix_graded`) and mrt_token_regret (MRT notebook's convention,
    `metrics.mrt_normalized_token_regret`: J = 0 at 0 tokens, each point at prompt + reasoning + mean
    forced-answer tokens, the same C0 on that axis).

    `j_star`, the comparator (docs/formulation.md §5): one number J* for every problem and every j; a
    curve J*_j (j = 0..H) shared by all problems; or one such curve per record (e.g. the best prefix any
    agent reached on that problem). The episode regret compares J_j with J*_j, the token regret with
    the curve's last value.
    """
    if not records:
        raise ValueError("summarize needs at least one rollout record.")
    stars = _comparator_curves(j_star, len(records), budget_episodes + 1)
    # Many problems share a rollout's curves (always on the simulator): compute each distinct one once.
    token_memo: dict = {}
    episode_memo: dict = {}

    def token_regret(r: RolloutRecord, star: np.ndarray) -> float:
        key = (tuple(r.token_curve), tuple(r.j_curve), float(star[-1]))
        if key not in token_memo:
            token_memo[key] = normalized_token_regret(r.token_curve, r.j_curve, budget_tokens, float(star[-1]))
        return token_memo[key]

    def episode_regret(r: RolloutRecord, star: np.ndarray) -> float:
        key = (tuple(r.j_curve), tuple(star))
        if key not in episode_memo:
            episode_memo[key] = float(cumulative_regret(pad_curve(r.j_curve, budget_episodes + 1), star)[-1])
        return episode_memo[key]

    columns = {
        "return": [r.total_reward for r in records],
        "accuracy": [r.outcome for r in records],
        "episodes": [r.episodes_used for r in records],
        "tokens": [r.tokens_used for r in records],
        "token_regret": [token_regret(r, star) for r, star in zip(records, stars)],
        "episode_regret": [episode_regret(r, star) for r, star in zip(records, stars)],
    }
    if all(r.extra.get("point_answers") and r.extra.get("point_correct") for r in records):
        columns["maj_one_prefix"] = [
            maj_at_k_one_prefix_graded(r.extra["point_answers"][-1], r.extra["point_correct"][-1]) for r in records
        ]
    if all("prompt_tokens" in r.extra and len(r.extra.get("answer_tokens", ())) == len(r.j_curve) for r in records):
        columns["mrt_token_regret"] = [
            mrt_normalized_token_regret(
                mrt_token_axis(r.extra["prompt_tokens"], r.token_curve, r.extra["answer_tokens"]), r.j_curve, budget_tokens
            )
            for r in records
        ]
    return columns


def _comparator_curves(j_star: Any, num_records: int, length: int) -> list[np.ndarray]:
    """`j_star` (a number, one curve, or one curve per record) as one curve of `length` points per record."""
    star = np.asarray(j_star, dtype=np.float64)
    if star.ndim == 0:
        return [np.full(length, float(star))] * num_records
    if star.ndim == 1 and star.size:
        return [pad_curve(star, length)] * num_records
    if star.ndim == 2 and star.shape[0] == num_records and star.shape[1]:
        return [pad_curve(row, length) for row in star]
    raise ValueError(
        f"j_star must be a number, one curve J*_j, or one curve per record ({num_records} of them), "
        f"got an array of shape {star.shape}."
    )


def summarize(
    records: Sequence[RolloutRecord], *, budget_episodes: int, budget_tokens: int,
    j_star: float | Sequence[float] | Sequence[Sequence[float]] = 1.0,
) -> dict[str, tuple[float, float]]:
    """Mean and standard error of each metric of `per_problem_metrics` over problems."""
    columns = per_problem_metrics(
        records, budget_episodes=budget_episodes, budget_tokens=budget_tokens, j_star=j_star
    )
    return {name: mean_and_stderr(values) for name, values in columns.items()}
