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
from ttc_gym.metrics import cumulative_regret, mean_and_stderr, normalized_token_regret, pad_curve


# `info` entries kept in `RolloutRecord.extra`: from reset (which problem) and after every episode
# (the prover's K normalized forced answers and, when the env grades them, one bool per answer).
RESET_INFO_KEYS = ("problem_id", "difficulty")
EPISODE_INFO_KEYS = ("prover_answers", "prover_correct")


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
    total = 0.0
    for _ in range(max_steps):
        action = agent.act(obs, info)
        actions.append(action.item() if isinstance(action, np.generic) else action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if int(info["episodes_used"]) > len(j_curve) - 1:  # an episode was spent: a new point of the curve
            j_curve.append(float(info["J"]))
            token_curve.append(int(info["tokens_used"]))
            for key in EPISODE_INFO_KEYS:  # forced answers after this episode, for maj@k
                if key in info:
                    extra.setdefault(key, []).append(list(info[key]))
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
    records: Sequence[RolloutRecord], *, budget_episodes: int, budget_tokens: int, j_star: float = 1.0
) -> dict[str, list[float]]:
    """Each metric's value on each problem (the columns `summarize` averages).

    return, accuracy (final outcome), episodes, tokens, normalized token regret (MRT, against j_star
    over C0 = budget_tokens) and cumulative episode regret after `budget_episodes` episodes (curves
    padded with their final J once the agent answered).
    """
    if not records:
        raise ValueError("summarize needs at least one rollout record.")
    # Many problems share a rollout's curves (always on the simulator): compute each distinct one once.
    token_memo: dict = {}
    episode_memo: dict = {}

    def token_regret(r: RolloutRecord) -> float:
        key = (tuple(r.token_curve), tuple(r.j_curve))
        if key not in token_memo:
            token_memo[key] = normalized_token_regret(r.token_curve, r.j_curve, budget_tokens, j_star)
        return token_memo[key]

    def episode_regret(r: RolloutRecord) -> float:
        key = tuple(r.j_curve)
        if key not in episode_memo:
            episode_memo[key] = float(cumulative_regret(pad_curve(r.j_curve, budget_episodes + 1), j_star)[-1])
        return episode_memo[key]

    return {
        "return": [r.total_reward for r in records],
        "accuracy": [r.outcome for r in records],
        "episodes": [r.episodes_used for r in records],
        "tokens": [r.tokens_used for r in records],
        "token_regret": [token_regret(r) for r in records],
        "episode_regret": [episode_regret(r) for r in records],
    }


def summarize(
    records: Sequence[RolloutRecord], *, budget_episodes: int, budget_tokens: int, j_star: float = 1.0
) -> dict[str, tuple[float, float]]:
    """Mean and standard error of each metric of `per_problem_metrics` over problems."""
    columns = per_problem_metrics(
        records, budget_episodes=budget_episodes, budget_tokens=budget_tokens, j_star=j_star
    )
    return {name: mean_and_stderr(values) for name, values in columns.items()}
