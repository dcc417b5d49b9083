"""Statistics of pre-registered studies over training seeds: paired tests, intervals, the Holm
correction, the smallest effect a design can detect, and basin counts.

Every comparison in a ttc-gym study is *paired by seed*: run i of method A and run i of method B share
the seed (initial weights, training problems), so the unit of analysis is the per-seed difference
d_i = A_i - B_i. On those:

* `paired_permutation_test`: the sign-flip permutation test of "mean d = 0" (two-sided; exact over
  all 2^n sign patterns for n <= `EXACT_MAX_N`, else a seeded Monte Carlo of the patterns). It assumes
  only that, under the null, each d_i is symmetric about 0 (Fisher's randomization test; Good,
  *Permutation Tests*, 2nd ed., §3.1).
* `paired_bootstrap_ci`: the percentile bootstrap interval of mean d (resampling seeds with
  replacement, a fixed generator).
* `holm`: Holm's step-down adjustment of a family of p-values (Holm 1979): it controls the
  family-wise error rate at the chosen level whatever the dependence between the tests.
* `minimum_detectable_effect`: the smallest true mean difference a paired design of n seeds detects
  with the given power at the given (Holm-worst-case, Bonferroni) level, by the normal approximation
  (z_{1 - a/2} + z_{power}) * sd / sqrt(n); an approximation stated as such in the plans.
* `basins`: per-seed values sorted and cut where two neighbours differ by more than `gap`: the
  clusters a set of training runs fell into (a mean over seeds hides them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from statistics import NormalDist

import numpy as np

from ttc_gym.validation import check_float, check_int

EXACT_MAX_N = 20  # 2^20 sign patterns: about a second of numpy


def _diffs(d: Sequence[float]) -> np.ndarray:
    arr = np.asarray(d, dtype=float).reshape(-1)
    if arr.size < 2:
        raise ValueError(f"a paired test needs at least 2 per-seed differences, got {arr.size}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"per-seed differences must be finite numbers, got {arr.tolist()}.")
    return arr


def paired_permutation_test(d: Sequence[float], *, samples: int = 200_000, seed: int = 0) -> float:
    """Two-sided p-value of the sign-flip test of mean(d) = 0: the share of sign patterns whose
    |mean| is at least the observed |mean| (the observed pattern included)."""
    d = _diffs(d)
    n = d.size
    observed = abs(d.mean()) - 1e-12  # ties count as extreme (floating-point sums of the same values)
    if n <= EXACT_MAX_N:
        count, total = 0, 0
        half = n // 2  # enumerate the first half's patterns, broadcast against the second half's
        head = np.array(list(product((1.0, -1.0), repeat=half))) @ d[:half] if half else np.zeros(1)
        tail = np.array(list(product((1.0, -1.0), repeat=n - half))) @ d[half:]
        for chunk in np.array_split(head, max(1, head.size // 512)):
            sums = np.abs(chunk[:, None] + tail[None, :]) / n
            count += int((sums >= observed).sum())
            total += sums.size
        return count / total
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(samples, n))
    extreme = (np.abs(signs @ d) / n >= observed).sum()
    return float((extreme + 1) / (samples + 1))


def paired_bootstrap_ci(d: Sequence[float], *, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(d), resampling seeds with replacement."""
    d = _diffs(d)
    check_float("level", level, minimum=0.5, maximum=0.999)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order: sorted ascending, the k-th smallest (k from 0) is
    multiplied by (m - k), then made non-decreasing and capped at 1. Reject H_i at level a when
    adjusted p_i <= a."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1 or p.size == 0 or ((p < 0) | (p > 1)).any():
        raise ValueError(f"holm needs a non-empty list of p-values in [0, 1], got {list(p_values)!r}.")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def minimum_detectable_effect(sd: float, n: int, *, alpha: float = 0.05, tests: int = 1, power: float = 0.8) -> float:
    """Smallest true mean paired difference detected with probability `power` by a two-sided test at
    level alpha / tests (Holm's first step, the worst case), normal approximation."""
    check_float("sd", sd, minimum=0.0)
    check_int("n", n, minimum=2)
    check_int("tests", tests, minimum=1)
    z = NormalDist().inv_cdf
    return (z(1 - alpha / tests / 2) + z(power)) * sd / np.sqrt(n)


@dataclass(frozen=True)
class Comparison:
    """One paired comparison: mean difference, its bootstrap interval, the permutation p-value."""

    mean: float
    lo: float
    hi: float
    p: float
    n: int


def compare(d: Sequence[float], *, seed: int = 0) -> Comparison:
    d = _diffs(d)
    lo, hi = paired_bootstrap_ci(d, seed=seed)
    return Comparison(float(d.mean()), lo, hi, paired_permutation_test(d, seed=seed), int(d.size))


def basins(values: Sequence[float], gap: float) -> list[tuple[int, float]]:
    """Clusters of per-seed values: sorted, a new cluster wherever two neighbours are more than `gap`
    apart; returns (size, centre) per cluster, lowest first."""
    v = np.sort(np.asarray(values, dtype=float).reshape(-1))
    if v.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(v) > gap) + 1
    return [(int(part.size), float(part.mean())) for part in np.split(v, cuts)]


def format_basins(values: Sequence[float], gap: float, digits: int = 2) -> str:
    """`basins` as text: "3 (12@0.69, 5@0.81, 3@0.90)"."""
    found = basins(values, gap)
    return f"{len(found)} (" + ", ".join(f"{n}@{c:.{digits}f}" for n, c in found) + ")"


def verdict(mean: float, adjusted_p: float, sign: int, *, alpha: float = 0.05) -> str:
    """A pre-registered claim's verdict from its mean difference, its Holm-adjusted p-value and the
    direction the claim states (`sign` +1: positive): supported / contradicted (significant at the
    family level `alpha`, in / against that direction) or not detected."""
    if adjusted_p > alpha:
        return "not detected"
    return "**supported**" if mean * sign > 0 else "**contradicted** (significant, opposite direction)"


def format_mean_interval(values: Sequence[float], digits: int = 3) -> str:
    """"mean [lo, hi]": the mean over seeds and its 95 % percentile bootstrap interval (a table cell,
    no test); the mean alone for one value, "—" for none."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return f"{v.mean():.{digits}f}" if v.size else "—"
    lo, hi = paired_bootstrap_ci(v)
    return f"{v.mean():.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
