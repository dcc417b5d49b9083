"""Metrics of how test-time compute is spent (docs/formulation.md §5). One implementation, shared by the envs,
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


def answer_agreement(answers: Sequence[Hashable]) -> float:
    """The share of the K forced answers that equal their most common answer: a gold-free confidence
    signal, which a deployed reasoner has (docs/formulation.md §3, "No gold in observations").

    `answers` are the forced answers, normalized so that equal answers compare equal (as
    `info["prover_answers"]`); a missing one (None or "") counts in K but agrees with nothing. 0.0 when
    there is no answer at all.
    """
    answers = list(answers)
    given = [a for a in answers if a is not None and a != ""]
    if not given:
        return 0.0
    return max(Counter(given).values()) / len(answers)


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


def maj_at_k_graded(
    answers_per_episode: Sequence[Sequence[Hashable]], correct_per_episode: Sequence[Sequence[bool]]
) -> list[bool]:
    """maj@k over episodes when each forced answer comes with its grade (as envs report them in
    `info["prover_answers"]` / `info["prover_correct"]`): `maj_at_k` with a grader read off the grades."""
    if len(answers_per_episode) != len(correct_per_episode):
        raise ValueError(
            f"answers and grades must cover the same episodes, got {len(answers_per_episode)} and "
            f"{len(correct_per_episode)}."
        )
    grades: dict = {}
    for answers, correct in zip(answers_per_episode, correct_per_episode):
        if len(answers) != len(correct):
            raise ValueError(f"one grade per answer expected, got {len(answers)} answers and {len(correct)} grades.")
        for answer, ok in zip(answers, correct):
            if answer is not None:
                grades.setdefault(answer, bool(ok))
    return maj_at_k(answers_per_episode, lambda answer: grades.get(answer, False))


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
    """Percentile bootstrap confidence interval of the mean.

    `values` may also be 2-D (problems x metrics): every column is resampled with the same draws and
    the bounds come back as two arrays, one entry per column (one draw of indices serves them all).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0 or x.ndim not in (1, 2):
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D or 2-D array of values, got shape {x.shape}.")
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    idx = rng.integers(0, n, size=(num_resamples, n))
    # Resample counts per problem (a row per resample), then every mean in one matrix product.
    counts = np.bincount((idx + n * np.arange(num_resamples)[:, None]).ravel(), minlength=num_resamples * n)
    means = counts.reshape(num_resamples, n).astype(np.float64) @ x / n
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    if x.ndim == 1:
        return float(lo), float(hi)
    return lo, hi


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of a - b over paired values (the same problems for both agents):
    far tighter than comparing two independent means when the problems drive most of the variance."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired values must have the same shape, got {x.shape} and {y.shape}.")
    return mean_and_stderr(x - y)


def mean_curve(curves: Sequence[Sequence[float]], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise mean and standard error of curves padded (or cut) to `length` points (`pad_curve`):
    e.g. the mean J curve after 0..H episodes over problems."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"length must be an integer >= 1, got {length!r}.")
    if len(curves) == 0:
        raise ValueError("mean_curve needs at least one curve.")
    stacked = np.stack([pad_curve(c, int(length)) for c in curves])
    mean = stacked.mean(axis=0)
    se = stacked.std(axis=0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else np.zeros(int(length))
    return mean, se


def maj_at_k_one_prefix(answers: Sequence[Hashable], correct_answer: Hashable, k: int,
                        weights: Sequence[float] | None = None) -> float:
    """maj@k as MRT's notebook computes it (CMU-AIRe/MRT analysis/code/episode_scaling_curve.ipynb,
    `compute_maj_at_k`): the expected credit over k answers drawn without replacement from the forced
    answers sampled at ONE prefix; each draw scores 1 when the correct answer's vote (count, or summed
    `weights`: the notebook uses 2**mean-logprob) beats every other non-None answer's, 1/2 on a tie,
    0 otherwise (0 when neither exists). Exact over all k-subsets (the notebook samples 100000 of them).
    `answers` are normalized so that equal answers compare equal; None = no answer (it takes a slot)."""
    from itertools import combinations
    from math import comb

    answers = list(answers)
    n = len(answers)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in 1..{n} (the number of answers), got {k!r}.")
    if comb(n, k) > 200_000:
        raise ValueError(f"C({n}, {k}) subsets is too many to enumerate exactly; use fewer answers.")
    w = [1.0] * n if weights is None else [float(x) for x in weights]
    if len(w) != n:
        raise ValueError(f"one weight per answer expected, got {len(w)} weights and {n} answers.")
    total = 0.0
    for subset in combinations(range(n), k):
        votes: dict = {}
        for i in subset:
            votes[answers[i]] = votes.get(answers[i], 0.0) + w[i]
        right = votes.get(correct_answer, float("-inf")) if correct_answer is not None else float("-inf")
        other = max((v for a, v in votes.items() if a != correct_answer and a is not None), default=float("-inf"))
        if right > other:
            total += 1.0
        elif right == other and right != float("-inf"):
            total += 0.5
    return total / comb(n, k)


def maj_at_k_one_prefix_graded(answers: Sequence[Hashable], correct: Sequence[bool], k: int | None = None) -> float:
    """`maj_at_k_one_prefix` on the forced answers of one prefix as envs report them (normalized answers
    with one grade each, `info["prover_answers"]` / `["prover_correct"]`), k = all of them by default.
    Answers graded correct form one class (the notebook's "correct answer": two spellings of the right
    value are one vote, as a grader that accepts both would count them); the others vote as they are."""
    answers, correct = list(answers), [bool(c) for c in correct]
    if len(answers) != len(correct):
        raise ValueError(f"one grade per answer expected, got {len(answers)} answers and {len(correct)} grades.")
    if not answers:
        raise ValueError("maj@k at one prefix needs at least one forced answer.")
    right = object()  # a class no answer can equal
    classes = [right if ok else a for a, ok in zip(answers, correct)]
    return maj_at_k_one_prefix(classes, right, len(answers) if k is None else k)


def maj_pooled_over_episodes(answers_per_episode, is_correct) -> list[bool]:
    """Our pooled variant (not MRT's maj@k): `maj_at_k` under an honest name — the majority of ALL forced
    answers of episodes 0..k-1, for k = 1..n (docs/formulation.md §5)."""
    return maj_at_k(answers_per_episode, is_correct)


def mrt_token_axis(prompt_tokens: float, prefix_tokens: Sequence[float], answer_tokens: Sequence[float]) -> list[float]:
    """The x of MRT's notebook's token curve at each prefix: prompt + prefix + mean forced-answer tokens,
    made non-decreasing (a running maximum: a prefix whose forced answers happen to be shorter than the
    previous one's does not move the curve back in tokens; the notebook's long traces never meet this)."""
    if len(prefix_tokens) != len(answer_tokens):
        raise ValueError(f"one answer length per prefix expected, got {len(answer_tokens)} for {len(prefix_tokens)} prefixes.")
    x = float(prompt_tokens) + np.asarray(prefix_tokens, dtype=np.float64) + np.asarray(answer_tokens, dtype=np.float64)
    return np.maximum.accumulate(x).tolist() if x.size else []


def mrt_normalized_token_regret(tokens: Sequence[float], j_values: Sequence[float], budget_tokens: float) -> float:
    """MRT's normalized token regret as its notebook computes it (CMU-AIRe/MRT analysis/code/regret.ipynb):
    1 - (1/C0) * trapezoid area of the curve that starts at (0 tokens, J = 0), then passes through
    (tokens[i], j_values[i]), held at its last value up to C0 or linearly interpolated at C0. There
    `tokens[i]` counts the prompt (problem + reasoning prefix) plus the mean forced-answer length.
    Ours (`normalized_token_regret`) starts at the first measured point instead of J = 0."""
    t = _as_curve(tokens, "tokens")
    j = _as_curve(j_values, "j_values")
    if t.shape != j.shape:
        raise ValueError(f"tokens and j_values must have the same length, got {t.size} and {j.size}.")
    if np.any(t <= 0):
        raise ValueError(f"tokens must be > 0 (the curve starts at (0, 0)), got {list(tokens)!r}.")
    return normalized_token_regret(np.concatenate([[0.0], t]), np.concatenate([[0.0], j]), budget_tokens, 1.0)
