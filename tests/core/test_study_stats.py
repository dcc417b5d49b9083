"""The study statistics (ttc_gym/study_stats.py) against values worked out by hand."""

from itertools import product

import numpy as np
import pytest

from ttc_gym.study_stats import (
    basins,
    compare,
    format_basins,
    format_mean_interval,
    holm,
    minimum_detectable_effect,
    paired_bootstrap_ci,
    paired_permutation_test,
    verdict,
)


def test_exact_sign_flip_p_value_by_enumeration():
    d = [0.3, 0.1, -0.05, 0.2, 0.25]
    obs = abs(np.mean(d))
    patterns = [abs(np.dot(s, d)) / 5 for s in product((1, -1), repeat=5)]
    expected = np.mean([p >= obs - 1e-12 for p in patterns])
    assert paired_permutation_test(d) == pytest.approx(expected)
    assert paired_permutation_test([1.0] * 6) == pytest.approx(2 / 64)  # only all-plus and all-minus


def test_permutation_test_is_calibrated_and_detects_a_shift():
    rng = np.random.default_rng(0)
    null = [paired_permutation_test(rng.normal(size=12)) for _ in range(300)]
    assert 0.02 < np.mean(np.array(null) < 0.05) < 0.09
    assert paired_permutation_test(rng.normal(1.5, 1.0, size=20)) < 0.001
    assert paired_permutation_test(rng.normal(1.5, 1.0, size=30), samples=20000) < 0.001  # Monte Carlo path


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.5]) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="p-values"):
        holm([1.2])


def test_bootstrap_interval_covers_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.normal(0.1, 0.2, 10), rng.normal(0.1, 0.2, 200)
    lo, hi = paired_bootstrap_ci(small)
    assert lo < np.mean(small) < hi
    lo2, hi2 = paired_bootstrap_ci(large)
    assert hi2 - lo2 < hi - lo
    c = compare(large)
    assert c.lo < c.mean < c.hi and c.p < 0.001 and c.n == 200


def test_minimum_detectable_effect_by_hand():
    # (z_0.975 + z_0.8) * 1 / sqrt(16) = (1.95996 + 0.84162) / 4
    assert minimum_detectable_effect(1.0, 16) == pytest.approx(0.70040, abs=1e-4)
    assert minimum_detectable_effect(1.0, 16, tests=10) > minimum_detectable_effect(1.0, 16)


def test_basins_cut_at_gaps():
    values = [0.69, 0.70, 0.899, 0.60, 0.605, 0.71]
    assert basins(values, gap=0.03) == [(2, pytest.approx(0.6025)), (3, pytest.approx(0.70)), (1, pytest.approx(0.899))]
    assert format_basins(values, 0.03) == "3 (2@0.60, 3@0.70, 1@0.90)"


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        paired_permutation_test([0.1])
    with pytest.raises(ValueError, match="finite"):
        compare([0.1, float("nan")])


def test_verdict_reads_the_adjusted_p_and_the_claimed_direction():
    assert verdict(+0.1, 0.01, +1) == "**supported**"
    assert verdict(-0.1, 0.01, -1) == "**supported**"
    assert verdict(-0.1, 0.01, +1).startswith("**contradicted**")
    assert verdict(+0.1, 0.06, +1) == "not detected"
    assert verdict(+0.1, 0.06, +1, alpha=0.1) == "**supported**"


def test_mean_interval_cell():
    assert format_mean_interval([]) == "—"
    assert format_mean_interval([0.25]) == "0.250"
    values = [0.1, 0.2, 0.3, 0.4]
    lo, hi = paired_bootstrap_ci(values)
    assert format_mean_interval(values, 2) == f"0.25 [{lo:.2f}, {hi:.2f}]"
