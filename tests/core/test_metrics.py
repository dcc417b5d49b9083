"""The metric functions on hand-computed curves."""

import numpy as np
import pytest

from ttc_gym.metrics import (
    accuracy_at_budgets,
    bootstrap_ci,
    cumulative_regret,
    maj_at_k,
    majority_vote,
    mean_and_stderr,
    normalized_token_regret,
    pad_curve,
)


def test_cumulative_regret_hand_computed():
    # J after 0..3 episodes; J* = 1: regret charges episodes 1..3: (1-.5) + (1-.5) + (1-1) ...
    curve = [0.1, 0.5, 0.5, 1.0]
    np.testing.assert_allclose(cumulative_regret(curve), [0.5, 1.0, 1.0])
    np.testing.assert_allclose(cumulative_regret(curve, j_star=0.8), [0.3, 0.6, 0.4])


def test_cumulative_regret_against_a_comparator_curve():
    np.testing.assert_allclose(cumulative_regret([0.0, 0.2, 0.4], [0.0, 0.5, 1.0]), [0.3, 0.9])


def test_normalized_token_regret_hand_computed():
    # J rises linearly from 0 at 0 tokens to 1 at 100 tokens, budget 100: area 0.5, regret 0.5.
    assert normalized_token_regret([0, 100], [0.0, 1.0], 100) == pytest.approx(0.5)
    # Trace ends at 50 tokens with J=1; held at 1 until C0=100: area = (0.25 + 0.5) / 1 -> 0.75.
    assert normalized_token_regret([0, 50], [0.0, 1.0], 100) == pytest.approx(0.25)
    # Trace longer than the budget is cut at C0 (interpolated: J(50) = 0.5): area 0.25/ 50 -> 0.25.
    assert normalized_token_regret([0, 100], [0.0, 1.0], 50) == pytest.approx(0.75)
    # Step-like trace: J=0.2 until 40 tokens, 0.6 at 80, budget 80: trapezoid
    # area = 0.2*40 + (0.2+0.6)/2*40 = 8 + 16 = 24 -> 24/80 = 0.3 -> regret 0.7.
    assert normalized_token_regret([0, 40, 80], [0.2, 0.2, 0.6], 80) == pytest.approx(0.7)
    assert normalized_token_regret([0, 40, 80], [0.2, 0.2, 0.6], 80, j_star=0.6) == pytest.approx(0.3)


def test_normalized_token_regret_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        normalized_token_regret([0, 1], [0.5], 10)
    with pytest.raises(ValueError, match="non-decreasing"):
        normalized_token_regret([0, 10, 5], [0.1, 0.2, 0.3], 10)
    with pytest.raises(ValueError, match="budget_tokens"):
        normalized_token_regret([0, 10], [0.1, 0.2], 0)


def test_pad_and_accuracy_at_budgets():
    np.testing.assert_allclose(pad_curve([0.1, 0.4], 4), [0.1, 0.4, 0.4, 0.4])
    np.testing.assert_allclose(pad_curve([0.1, 0.4, 0.9], 2), [0.1, 0.4])
    acc = accuracy_at_budgets([[0.0, 1.0], [0.0, 0.0, 0.5]], [0, 1, 2, 5])
    assert acc == pytest.approx({0: 0.0, 1: 0.5, 2: 0.75, 5: 0.75})
    with pytest.raises(ValueError, match="budgets"):
        accuracy_at_budgets([[0.0]], [-1])


def test_majority_vote_and_maj_at_k():
    assert majority_vote(["3", "4", "4", "3"]) == "3"  # tie -> first seen
    assert majority_vote([None, None]) is None
    per_episode = [["5", "6", "6"], ["5", "5"], ["6", "6", "6"]]
    # k=1: 6 wins; k=2: 5 has 3 vs 6 has 2 -> 5; k=3: 6 has 5 -> 6
    assert maj_at_k(per_episode, lambda a: a == "5") == [False, True, False]


def test_mean_stderr_and_bootstrap():
    mean, se = mean_and_stderr([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    lo, hi = bootstrap_ci([0.0, 1.0] * 50, seed=1)
    assert lo < 0.5 < hi and hi - lo < 0.3


def test_maj_at_k_one_prefix_hand_made():
    from ttc_gym.metrics import maj_at_k_one_prefix

    answers = ["4", "4", "5", None]
    assert maj_at_k_one_prefix(answers, "4", 1) == pytest.approx(0.5)  # 2 of 4 singletons are right
    # pairs: {4,4}=1, {4,5}x2 = 1/2 each, {4,None}x2 = 1, {5,None} = 0  -> (1 + 1 + 2) / 6
    assert maj_at_k_one_prefix(answers, "4", 2) == pytest.approx(4 / 6)
    assert maj_at_k_one_prefix(["5", "6"], "4", 2) == 0.0
    assert maj_at_k_one_prefix([None, None], "4", 1) == 0.0
    assert maj_at_k_one_prefix(["4", "5"], "4", 2, weights=[0.9, 0.1]) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        maj_at_k_one_prefix(answers, "4", 5)


def test_mrt_normalized_token_regret_hand_made():
    from ttc_gym.metrics import mrt_normalized_token_regret, normalized_token_regret

    # (0,0) -> (10, 1), held to C0 = 20: area = 5 + 10 = 15 -> regret 1 - 15/20
    assert mrt_normalized_token_regret([10], [1.0], 20) == pytest.approx(0.25)
    # cut at C0 = 5 inside the first segment: J(5) = 0.5, area 1.25 -> 1 - 0.25
    assert mrt_normalized_token_regret([10], [1.0], 5) == pytest.approx(0.75)
    # ours starts at its first point (held before it): no credit lost before 10 tokens
    assert normalized_token_regret([10], [1.0], 20) == pytest.approx(0.0)


def test_maj_at_k_one_prefix_graded_groups_correct_spellings_and_halves_ties():
    from ttc_gym.metrics import maj_at_k_one_prefix_graded

    # "1/2" and "0.5" are both graded right: one class of 2 votes against "3" (1 vote) -> right.
    assert maj_at_k_one_prefix_graded(["1/2", "0.5", "3"], [True, True, False]) == 1.0
    # 2 right against 2 of "3": a tie counts 1/2 (MRT's notebook).
    assert maj_at_k_one_prefix_graded(["1/2", "0.5", "3", "3"], [True, True, False, False]) == 0.5
    # Graded as separate strings they would have been two singletons losing to "3".
    from ttc_gym.metrics import maj_at_k_one_prefix
    assert maj_at_k_one_prefix(["1/2", "0.5", "3", "3"], "1/2", 4) == 0.0
    assert maj_at_k_one_prefix_graded([None, None], [False, False]) == 0.0
    with pytest.raises(ValueError, match="one grade per answer"):
        maj_at_k_one_prefix_graded(["1"], [True, False])


def test_mrt_token_axis_counts_prompt_prefix_and_answer_and_never_goes_back():
    from ttc_gym.metrics import mrt_token_axis

    # a shorter forced answer after a short episode would move x back from 64 to 62: held at 64
    assert mrt_token_axis(40, [0, 20, 21], [4.0, 4.0, 1.0]) == [44.0, 64.0, 64.0]
    with pytest.raises(ValueError, match="one answer length per prefix"):
        mrt_token_axis(40, [0, 20], [4.0])
