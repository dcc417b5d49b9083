"""Metrics of how test-time compute is spent (DESIGN.md §2). One implementation, shared by the envs,
the benchmark runner and the examples.

Conventions: a J curve `j_curve[i]` is the forced-answer accuracy after i episodes, with
`j_curve[0]` = J_0 before any episode. A trajectory that stopped early is padded with its last
value (the answer does not change once committed).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Hashable, Sequence

import numpy as np


def _as_curve(values: Sequence[float], name: str) -> np.ndarray:
    curve = np.asarray(values, dtype=np.float64)
    if curve.ndim != 1 or curve.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {curve.shape}.")
    if not np.all(np.isfinite(curve)):
        raise ValueError(f"{name} must be finite, got {values!r}.")
    return curve


def pad_curve(j_curve: Sequence[float], length: int) -> np.ndarray:
    """The curve cut or padded with its last value to exactly `length` points."""
    curve = _as_curve(j_curve, "j_curve")
    if length <= curve.size:
        return curve[:length].copy()
    return np.concatenate([curve, np.full(length - curve.size, curve[-1])])


def cumulative_regret(j_curve: Sequence[float], j_star: float | Sequence[float] = 1.0) -> np.ndarray:
    """Delta_k = sum_{i=1..k} (J*_i - J_i) for k = 1..len(j_curve)-1.

    `j_curve[i]` is J after i episodes (index 0, before any episode, is not charged: regret counts the
    episodes spent). `j_star` is the comparator's accuracy, a number or a curve of the same length
    (e.g. the oracle's J curve on TTC-Sim-v0). Returns an array of length len(j_curve) - 1.
    """
    curve = _as_curve(j_curve, "j_curve")
    star = np.broadcast_to(np.asarray(j_star, dtype=np.float64), curve.shape)
    return np.cumsum(star[1:] - curve[1:])


def normalized_token_regret(
    tokens: Sequence[float], j_values: Sequence[float], budget_tokens: float, j_star: float = 1.0
) -> float:
    """MRT's normalized regret over tokens: j_star - (1/C0) * integral_0^C0 J(t) dt.

    `tokens[i]` is the cumulative token count at which `j_values[i]` was measured (starting with the
    prefix before any episode, usually at 0 tokens). J is piecewise linear between the points, held
    at its last value past the end of the trace, and cut at C0 = `budget_tokens`. Before the first
    point J equals its first value. With j_star = 1 this is 1 - area, as plotted in the MRT paper.
    """
    t = _as_curve(tokens, "tokens")
    j = _as_curve(j_values, "j_values")
    if t.shape != j.shape:
        raise ValueError(f"tokens and j_values must have the same length, got {t.size} and {j.size}.")
    if np.any(np.diff(t) < 0):
        raise ValueError(f"tokens must be non-decreasing cumulative counts, got {list(tokens)!r}.")
    if not budget_tokens > 0:
        raise ValueError(f"budget_tokens (C0) must be > 0, got {budget_tokens!r}.")
    c0 = float(budget_tokens)
    # Points inside [0, C0], with the curve's values at 0 and C0 added.
    grid = np.concatenate([[0.0], t[(t > 0) & (t < c0)], [c0]])
    values = np.interp(grid, t, j)  # np.interp holds the end values outside [t0, tn]
    area = float(np.trapezoid(values, grid)) / c0
    return float(j_star) - area


def accuracy_at_budgets(
    j_curves: Sequence[Sequence[float]], budgets: Sequence[int]
) -> dict[int, float]:
    """Mean over problems of J after b episodes, for each budget b (curves padded past their end)."""
    out = {}
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 0:
            raise ValueError(f"budgets must be episode counts >= 0, got {b!r}.")
        out[int(b)] = float(np.mean([pad_curve(c, b + 1)[b] for c in j_curves]))
    return out


def majority_vote(answers: Sequence[Hashable]) -> Hashable | None:
    """The most frequent answer; ties go to the one seen first. None when there is no answer."""
    answers = [a for a in answers if a is not None]
    if not answers:
        return None
    counts = Counter(answers)
    best = max(counts.values())
    return next(a for a in answers if counts[a] == best)


def maj_at_k(
    answers_per_episode: Sequence[Sequence[Hashable]],
    is_correct: Callable[[Hashable], bool],
) -> list[bool]:
    """maj@k over episodes: for k = 1..n, is the majority answer of episodes 0..k-1 correct?

    `answers_per_episode[i]` holds the forced answers sampled after episode i (already normalized,
    so that equal answers compare equal; None for "no answer"). `is_correct` grades one answer.
    """
    pooled: list[Hashable] = []
    out = []
    for answers in answers_per_episode:
        pooled.extend(answers)
        vote = majority_vote(pooled)
        out.append(bool(vote is not None and is_correct(vote)))
    return out


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Sample mean and its standard error (0 for a single value)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_and_stderr needs at least one value.")
    se = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0
    return float(x.mean()), se


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, num_resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value.")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(num_resamples, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)
