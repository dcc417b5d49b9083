"""The summary of analysed traces (ttc_gym.traces.report) on hand-made rows."""

from __future__ import annotations

import pytest

from ttc_gym.metrics import mrt_normalized_token_regret, normalized_token_regret
from ttc_gym.traces.format import ANALYSED_FORMAT, check_analysed_row
from ttc_gym.traces.report import fall_after_peak, filled_j_curve, maj_curve, summarize, table


def row(trace_id: str, js: list, tokens: list[int], answers=None, problem_id: str = "p") -> dict:
    k = 4
    prefixes = []
    for j, (value, t) in enumerate(zip(js, tokens)):
        if value is None:
            correct = [None] * k
        else:
            n = round(value * k)
            correct = [True] * n + [False] * (k - n)
        prefixes.append({"n_episodes": j, "tokens": t, "forced_answers": (answers or ["5"] * k), "correct": correct,
                         "J": value})
    episodes = [{"text": f"e{j}", "tokens": tokens[j] - tokens[j - 1]} for j in range(1, len(tokens))]
    return check_analysed_row({
        "format": ANALYSED_FORMAT, "problem_id": problem_id, "problem": "Q", "answer": "5", "trace_id": trace_id,
        "model": None, "episodes": episodes, "prefixes": prefixes,
        "prover": {"engine": "x", "k": k, "max_new_tokens": 24, "template": "boxed"},
        "final_answer": None, "final_correct": None, "problem_tokens": 10})


def test_fall_after_peak():
    assert fall_after_peak([0.0, 0.5, 0.25, 0.5]) == (True, False)
    assert fall_after_peak([0.0, 0.5, 0.5, 0.25]) == (True, True)
    assert fall_after_peak([0.0, 0.25, 0.5]) == (False, False)
    assert fall_after_peak([0.0, 0.0]) == (False, False)


def test_null_j_is_filled_forward():
    assert filled_j_curve(row("a", [None, 0.5, None, 0.25], [0, 5, 9, 12])) == [0.5, 0.5, 0.5, 0.25]
    assert filled_j_curve(row("b", [None, None], [0, 5])) is None


def test_maj_curve_votes_equivalent_correct_answers_together():
    prefix = {"forced_answers": ["1/2", "0.5", "3", "3"], "correct": [True, True, False, False]}
    curve = maj_curve(prefix)
    assert curve[0] == pytest.approx(0.5)  # maj@1 = J
    assert curve[-1] == pytest.approx(0.5)  # 2 correct (one vote) vs 2 of "3": a tie -> 1/2
    prefix = {"forced_answers": ["1/2", "0.5", "3", "7"], "correct": [True, True, False, False]}
    assert maj_curve(prefix)[-1] == pytest.approx(1.0)  # the correct forms pool: 2 votes beat 1 and 1


def test_summary_uses_the_metric_functions():
    rows = [row("a", [0.0, 0.5, 0.25], [0, 40, 100]), row("b", [0.25, 0.25, 1.0], [0, 50, 80], problem_id="q")]
    summary = summarize(rows, budgets=[60, 200])
    ours = [normalized_token_regret([0, 40, 100], [0.0, 0.5, 0.25], 60),
            normalized_token_regret([0, 50, 80], [0.25, 0.25, 1.0], 60)]
    mrt = [mrt_normalized_token_regret([10, 50, 110], [0.0, 0.5, 0.25], 60),
           mrt_normalized_token_regret([10, 60, 90], [0.25, 0.25, 1.0], 60)]
    first = summary["regret_vs_budget"][0]
    assert first["C0"] == 60 and first["regret"]["mean"] == pytest.approx(sum(ours) / 2)
    assert first["regret_mrt"]["mean"] == pytest.approx(sum(mrt) / 2)
    assert summary["traces"] == 2 and summary["problems"] == 2
    assert summary["J_0"]["mean"] == pytest.approx(0.125) and summary["J_final"]["mean"] == pytest.approx(0.625)
    assert summary["share_fall_after_peak"]["mean"] == pytest.approx(0.5)
    assert "C0 (tokens)" in table(summary)
    with pytest.raises(ValueError, match="budgets"):
        summarize(rows, budgets=[0])
    with pytest.raises(ValueError, match="no analysed trace has a graded prefix"):
        summarize([row("c", [None, None], [0, 5])])


def forced(trace_id: str, js: list, tokens: list[int], natural: int | None, problem_id: str = "p") -> dict:
    r = row(trace_id, js, tokens, problem_id=problem_id)
    if natural is not None:
        r["natural_episodes"] = natural
    return check_analysed_row(r)


def test_budget_forcing_reports_j_after_each_extension_against_the_natural_end():
    rows = [forced("a", [0.0, 0.5, 0.25, 0.75], [0, 10, 25, 45], natural=1),  # natural end J 0.5
            forced("b", [0.25, 0.25, None, 0.5, 0.0], [0, 8, 20, 30, 44], natural=1),  # natural end J 0.25
            forced("c", [0.0, 1.0], [0, 9], natural=1),  # never forced on: left out
            forced("d", [0.0, 0.25, 0.5], [0, 5, 9], natural=None)]  # no budget forcing: left out
    bf = summarize(rows)["budget_forcing"]
    assert bf["traces"] == 2 and bf["extensions"] == 2  # the extensions both traces have
    per = bf["per_extension"]
    assert [e["extensions"] for e in per] == [0, 1, 2] and [e["cue"] for e in per] == [None, "Wait", "But wait"]
    assert per[0]["J"]["mean"] == pytest.approx((0.5 + 0.25) / 2)
    assert per[0]["tokens"]["mean"] == pytest.approx((10 + 8) / 2)
    # b's null J after its first extension takes the J before it (0.25).
    assert per[1]["J"]["mean"] == pytest.approx((0.25 + 0.25) / 2)
    assert per[1]["J_minus_natural"]["mean"] == pytest.approx(((0.25 - 0.5) + 0.0) / 2)
    assert per[2]["J_minus_natural"]["mean"] == pytest.approx(((0.75 - 0.5) + (0.5 - 0.25)) / 2)
    assert (per[1]["share_down"], per[1]["share_up"], per[2]["share_up"]) == (0.5, 0.0, 1.0)
    assert "budget forcing: 2 traces" in table(summarize(rows))
    assert summarize([rows[3]])["budget_forcing"] is None
    assert "budget forcing" not in table(summarize([rows[3]]))
