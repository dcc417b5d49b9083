"""The bench's comparators and MRT's conventions (issue: MRT as the papers define it, §4).

J*_j per problem from the run's records (`--j-star-from best-prefix|AGENT`), MRT's maj@k at one prefix
and MRT's token-regret convention beside ours, each computed by hand on constructed records.
"""

from __future__ import annotations

import pytest

from ttc_gym.bench import BenchConfig, prepare
from ttc_gym.bench.report import j_star_from_records, summarize_results
from ttc_gym.evaluation import RolloutRecord, per_problem_metrics
from ttc_gym.metrics import mrt_normalized_token_regret


def _record(agent, seed, j_curve, outcome, points=None, prompt_tokens=None, answer_tokens=None):
    episodes = len(j_curve) - 1
    extra = {}
    if points is not None:
        extra["point_answers"] = [a for a, _ in points]
        extra["point_correct"] = [c for _, c in points]
    if prompt_tokens is not None:
        extra["prompt_tokens"] = prompt_tokens
        extra["answer_tokens"] = answer_tokens
    return {
        "agent": agent, "budget": "H=2", "seed": seed, "total_reward": outcome, "outcome": outcome,
        "episodes_used": episodes, "tokens_used": 100 * episodes, "j_curve": j_curve,
        "token_curve": [100 * i for i in range(episodes + 1)], "actions": [], "extra": extra,
    }


GROUPS = {
    "a": [_record("a", 0, [0.0, 0.5, 0.25], 0.0), _record("a", 1, [0.5], 1.0)],
    "b": [_record("b", 0, [0.25, 0.25, 1.0], 1.0), _record("b", 1, [0.0, 0.75, 0.5], 1.0)],
}


def test_best_prefix_is_the_running_max_over_agents_and_prefixes():
    curves = j_star_from_records(GROUPS, "best-prefix", horizon=2)
    # problem 0: max(a, b) = [0.25, 0.5, 1.0], running max the same; problem 1: a padded [0.5, 0.5, 0.5],
    # b [0, 0.75, 0.5] -> max [0.5, 0.75, 0.5] -> running max [0.5, 0.75, 0.75] (a stop at j = 1 stays reachable)
    assert curves == [pytest.approx([0.25, 0.5, 1.0]), pytest.approx([0.5, 0.75, 0.75])]
    assert j_star_from_records(GROUPS, "b", horizon=2) == [[0.25, 0.25, 1.0], [0.0, 0.75, 0.5]]
    with pytest.raises(ValueError, match="best-prefix.*'a', 'b'.*got 'c'"):
        j_star_from_records(GROUPS, "c", horizon=2)


def test_summary_regrets_use_the_per_problem_comparator():
    records = [r for recs in GROUPS.values() for r in recs]
    budgets = {"H=2": {"max_episodes": 2, "max_tokens": None, "j_star": 1.0, "budget_tokens": 200,
                       "j_star_from": "best-prefix"}}
    s = summarize_results(records, agents=["a", "b"], budgets=budgets, num_problems=2, rank_by="accuracy")
    rows = {r["agent"]: r["metrics"] for r in s["rows"]}
    # a, problem 0: J* [.25 .5 1] vs [0 .5 .25] -> regret (0) + (0.75) = 0.75; problem 1: [.5 .75 .75] vs
    # [.5 .5 .5] -> 0.25 + 0.25 = 0.5. Mean 0.625.
    assert rows["a"]["episode_regret"]["mean"] == pytest.approx(0.625)
    # b, problem 0: (0.25) + (0) = 0.25; problem 1: (0) + (0.25) = 0.25.
    assert rows["b"]["episode_regret"]["mean"] == pytest.approx(0.25)
    # The token regret compares with each problem's J*_H (1.0 and 0.75); the title's J* is their mean.
    assert s["budgets"][0]["j_star"] == pytest.approx(0.875)
    with_scalar = summarize_results(records, agents=["a", "b"], num_problems=2, rank_by="accuracy",
                                    budgets={"H=2": {**budgets["H=2"], "j_star_from": None}})
    assert {r["agent"]: r["metrics"]["episode_regret"]["mean"] for r in with_scalar["rows"]} != {
        "a": pytest.approx(0.625), "b": pytest.approx(0.25)}


def test_comparator_shapes_are_checked():
    recs = [RolloutRecord(seed=0, total_reward=1.0, outcome=1.0, episodes_used=1, tokens_used=10,
                          j_curve=[0.0, 1.0], token_curve=[0, 10])]
    one = per_problem_metrics(recs, budget_episodes=1, budget_tokens=10, j_star=[0.5, 1.0])
    assert one["episode_regret"] == [pytest.approx(0.0)]
    per_record = per_problem_metrics(recs, budget_episodes=1, budget_tokens=10, j_star=[[0.5, 0.5]])
    assert per_record["episode_regret"] == [pytest.approx(-0.5)]
    with pytest.raises(ValueError, match="one curve per record \\(1 of them\\).*shape \\(2, 2\\)"):
        per_problem_metrics(recs, budget_episodes=1, budget_tokens=10, j_star=[[0.5, 0.5], [1.0, 1.0]])


def test_mrt_columns_follow_the_notebook_conventions():
    # One rollout: J 0.25 -> 0.75 after an episode of 100 tokens; prompt 50 tokens; forced answers of 10
    # and 20 tokens. Points at K answers: ["4", "4", "5", "four"] graded [T, T, F, T] at the end.
    r = _record("a", 0, [0.25, 0.75], 1.0,
                points=[(["5", "5", "4", "6"], [False, False, True, False]),
                        (["4", "4", "5", "four"], [True, True, False, True])],
                prompt_tokens=50, answer_tokens=[10.0, 20.0])
    rec = RolloutRecord(**{k: r[k] for k in ("seed", "total_reward", "outcome", "episodes_used", "tokens_used",
                                            "j_curve", "token_curve", "extra")})
    cols = per_problem_metrics([rec], budget_episodes=1, budget_tokens=400)
    # maj@K at the last prefix: the correct class ("4" and "four") has 3 votes of 4 -> 1.
    assert cols["maj_one_prefix"] == [1.0]
    # MRT's axis: (0, 0), (60, 0.25), (170, 0.75), held to 400.
    area = (60 * 0.125 + 110 * 0.5 + 230 * 0.75) / 400
    assert cols["mrt_token_regret"] == [pytest.approx(1 - area)]
    assert cols["mrt_token_regret"][0] == pytest.approx(mrt_normalized_token_regret([60, 170], [0.25, 0.75], 400))
    assert cols["mrt_token_regret"][0] != pytest.approx(cols["token_regret"][0])
    # Without the prompt length (the simulator) the MRT column is left out, not made up.
    bare = RolloutRecord(**{**rec.__dict__, "extra": {}})
    assert "mrt_token_regret" not in per_problem_metrics([bare], budget_episodes=1, budget_tokens=400)


def test_bench_config_checks_the_comparator_source(tmp_path):
    common = dict(env_id="TTC-Sim-v0", agents=("answer-after:1", "never-verify"), num_problems=2)
    with pytest.raises(ValueError, match="j_star_from.*Did you mean .never-verify."):
        prepare(BenchConfig(**common, j_star_from="never-verfy", out_dir=str(tmp_path / "a")))
    with pytest.raises(ValueError, match="not both"):
        prepare(BenchConfig(**common, j_star=0.9, j_star_from="best-prefix", out_dir=str(tmp_path / "b")))
    plan = prepare(BenchConfig(**common, j_star_from="best-prefix", out_dir=str(tmp_path / "c")))
    assert plan.j_star_from == "best-prefix"


def test_replay_env_benches_with_its_defaults_and_a_best_prefix_comparator(tmp_path):
    import io

    from rich.console import Console

    from ttc_gym.bench import run_bench

    config = BenchConfig(env_id="TTC-Replay-v0", num_problems=20, j_star_from="best-prefix", out_dir=str(tmp_path))
    result = run_bench(config, progress=False, plots=False, console=Console(file=io.StringIO()))
    s = result.summary
    assert [b["label"] for b in s["budgets"]] == ["H=2", "H=4", "H=8"]
    # The comparator is the best prefix any agent reached: no agent's episode regret is below 0,
    # and the oracle-informed agent is marked.
    assert all(r["metrics"]["episode_regret"]["mean"] >= -1e-12 for r in s["rows"])
    assert {r["agent"] for r in s["rows"] if r["oracle"]} == {"oracle-answer-when-confident"}
    assert all("maj_one_prefix" in r["metrics"] for r in s["rows"])
