"""From `results.jsonl` records to the summary (JSON/CSV) and the terminal table.

Every number comes from `ttc_gym.evaluation.per_problem_metrics` and `ttc_gym.metrics` (one
implementation of each metric); this module only groups, ranks and formats. Intervals: the table shows
mean ± 1.96 s.e. (a 95% normal interval); summary.json also holds a percentile bootstrap interval of each
mean and, per budget, the paired difference of every agent from the top-ranked one on the same problems.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ttc_gym.bench.agent_registry import is_oracle_agent
from ttc_gym.evaluation import RolloutRecord, per_problem_metrics
from ttc_gym.metrics import (
    bootstrap_ci, maj_at_k_graded, mean_and_stderr, mean_curve, pad_curve, paired_difference,
)

Z95 = 1.959963984540054
ORACLE_MARK = "†"  # after an oracle agent's name (`AgentEntry.oracle`: it reads gold-derived information)
HIGHER_IS_BETTER = {
    "return": True, "accuracy": True, "maj_accuracy": True, "maj_one_prefix": True,
    "episodes": False, "tokens": False, "token_regret": False, "mrt_token_regret": False, "episode_regret": False,
}
# Column titles name the convention: "maj@k pooled" (ours: majority of every forced answer so far),
# "maj@K 1 prefix" (MRT's: K answers at the last prefix, ties 1/2), "token regret" (ours),
# "MRT token regret" (MRT notebook's axis); docs/formulation.md §5.
METRIC_TITLES = {
    "return": "return", "accuracy": "accuracy", "maj_accuracy": "maj@k pooled", "maj_one_prefix": "maj@K 1 prefix",
    "episodes": "episodes", "tokens": "tokens", "token_regret": "token regret",
    "mrt_token_regret": "MRT token regret", "episode_regret": "episode regret",
}
_RECORD_FIELDS = ("seed", "total_reward", "outcome", "episodes_used", "tokens_used", "j_curve", "token_curve",
                  "actions", "extra")


def _rollout_record(record: dict) -> RolloutRecord:
    return RolloutRecord(**{k: record[k] for k in _RECORD_FIELDS if k in record})


def _maj_curve(record: dict, length: int) -> list[float] | None:
    """maj@k for k = 1..length over the record's episodes (padded); None without graded forced answers.
    A problem answered before any episode has no forced answers: its committed answer is its vote."""
    extra = record.get("extra") or {}
    if "point_answers" in extra and "point_correct" in extra:  # one list per point of the J curve: drop J_0's
        answers, correct = extra["point_answers"][1:], extra["point_correct"][1:]
    else:  # records written before the points were kept: one list per episode
        answers, correct = extra.get("prover_answers"), extra.get("prover_correct")
    if answers is None or correct is None:
        if int(record["episodes_used"]) > 0:
            return None
        answers, correct = [], []
    votes = [float(v) for v in maj_at_k_graded(answers, correct)]
    if not votes:
        votes = [float(record["outcome"])]
    return votes + [votes[-1]] * max(0, length - len(votes))


BEST_PREFIX = "best-prefix"


def j_star_from_records(groups: dict[str, list[dict]], source: str, horizon: int) -> list[list[float]]:
    """Per problem, the comparator curve J*_j (j = 0..horizon) read off this run's records (`groups`: each
    agent's records, one per problem, in the same order): "best-prefix" = the best J any agent reached
    within j episodes on that problem (an oracle comparator: J is graded against the gold answer), or an
    agent's name = that agent's own J curve (regret then says how far below the reference an agent is;
    negative where it does better)."""
    curves = {agent: [pad_curve(r["j_curve"], horizon + 1) for r in recs] for agent, recs in groups.items()}
    if source == BEST_PREFIX:
        stacked = np.stack([np.stack(c) for c in curves.values()])  # agents x problems x points
        return np.maximum.accumulate(stacked.max(axis=0), axis=1).tolist()
    if source not in curves:
        raise ValueError(f"j_star_from must be {BEST_PREFIX!r} or one of the run's agents {sorted(curves)}, "
                         f"got {source!r}.")
    return [c.tolist() for c in curves[source]]


def _stats(columns: dict[str, Sequence[float]], seed: int) -> dict[str, dict]:
    """Mean, s.e. and percentile-bootstrap 95% interval of each column (one set of resamples for all)."""
    names = list(columns)
    lo, hi = bootstrap_ci(np.column_stack([columns[n] for n in names]), num_resamples=1000, seed=seed)
    out = {}
    for k, name in enumerate(names):
        mean, se = mean_and_stderr(columns[name])
        out[name] = {"mean": mean, "se": se, "ci_low": float(lo[k]), "ci_high": float(hi[k])}
    return out


def summarize_results(
    records: Sequence[dict],
    *,
    agents: Sequence[str],
    budgets: dict[str, dict],
    num_problems: int,
    base_seed: int = 0,
    rank_by: str = "return",
    env_id: str = "",
    note: str = "",
) -> dict:
    """Per agent and budget: mean, s.e. and bootstrap 95% interval of each metric, rank, the paired
    difference from the top-ranked agent, mean J curve (and maj@k curve) per episode.

    `budgets` maps each budget label to {"max_episodes", "max_tokens", "j_star", "budget_tokens"}
    (`comparators.comparators`). Only records of the listed agents, budgets and seeds count, each key once,
    in seed order, so the summary does not depend on the order in which problems finished.
    """
    seeds = [base_seed + i for i in range(num_problems)]
    by_key: dict[tuple, dict] = {}
    for r in records:
        by_key.setdefault((r["agent"], r["budget"], int(r["seed"])), r)
    summary: dict[str, Any] = {
        "env_id": env_id, "num_problems": num_problems, "base_seed": base_seed, "rank_by": rank_by,
        "confidence": 0.95, "note": note, "agents": list(agents), "budgets": [], "rows": [],
        "grading_incomplete": 0,  # grader comparisons that did not complete (reported unknown), all rows
    }
    for b_index, (label, budget) in enumerate(budgets.items()):
        groups = {}
        for agent in agents:
            missing = [s for s in seeds if (agent, label, s) not in by_key]
            if missing:
                raise ValueError(
                    f"results lack {len(missing)} problems of agent {agent!r} at {label} (seeds {missing[:5]}...); "
                    f"resume the run to finish them."
                )
            groups[agent] = [by_key[(agent, label, s)] for s in seeds]
        everything = [r for group in groups.values() for r in group]
        horizon = budget["max_episodes"] or max(1, max(int(r["episodes_used"]) for r in everything))
        c0 = budget["budget_tokens"] or budget["max_tokens"] or max(1, max(int(r["tokens_used"]) for r in everything))
        j_star = float(budget["j_star"])
        # The comparator of the regrets (§5): a curve J*_j from the env's profile (the sim's DP), one curve
        # per problem taken from the records (`j_star_from`), or the number J*.
        comparator = budget.get("j_star_curve")
        if budget.get("j_star_from"):
            comparator = j_star_from_records(groups, budget["j_star_from"], horizon)
            budget = {**budget, "j_star": float(np.mean([c[-1] for c in comparator]))}
        # maj@k needs the env's graded forced answers (info["prover_answers"] / ["prover_correct"]).
        graded = any({"point_answers", "prover_answers"} & set(r.get("extra") or {}) for r in everything)
        summary["budgets"].append({"label": label, **budget, "budget_episodes": horizon, "budget_tokens": c0})

        columns, rows = {}, []
        for agent in agents:
            recs = groups[agent]
            cols = per_problem_metrics(
                [_rollout_record(r) for r in recs], budget_episodes=horizon, budget_tokens=c0,
                j_star=comparator if comparator is not None else j_star,
            )
            majs = [_maj_curve(r, horizon) for r in recs] if graded else [None]
            maj_curve = None
            if all(m is not None for m in majs):
                cols["maj_accuracy"] = [m[-1] for m in majs]
                mean, se = mean_curve(majs, horizon)
                maj_curve = {"mean": mean.tolist(), "se": se.tolist()}
            columns[agent] = cols
            j_mean, j_se = mean_curve([r["j_curve"] for r in recs], horizon + 1)
            row = {
                "agent": agent, "budget": label, "num_problems": len(recs), "oracle": is_oracle_agent(agent),
                "metrics": _stats(cols, seed=b_index),  # the same resamples for every agent
                "j_curve": {"mean": j_mean.tolist(), "se": j_se.tolist()},
            }
            if maj_curve is not None:
                row["maj_curve"] = maj_curve
            row["grading_incomplete"] = sum(int(r.get("grading_incomplete", 0)) for r in recs)
            summary["grading_incomplete"] += row["grading_incomplete"]
            rows.append(row)

        metric = rank_by if all(rank_by in columns[a] for a in agents) else "return"
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        order = sorted(range(len(rows)), key=lambda i: (-sign * rows[i]["metrics"][metric]["mean"], i))
        best = rows[order[0]]["agent"]
        for rank, i in enumerate(order, start=1):
            row = rows[i]
            row["rank"] = rank
            if row["agent"] == best:
                row["vs_best"] = None
                continue
            diffs = {}
            for name in columns[best].keys() & columns[row["agent"]].keys():
                diff, se = paired_difference(columns[row["agent"]][name], columns[best][name])
                diffs[name] = {"diff": diff, "se": se, "significant": bool(abs(diff) > Z95 * se)}
            row["vs_best"] = {"agent": best, "metric": metric, **diffs[metric], "metrics": diffs}
        summary["rows"].extend(rows[i] for i in order)
    return summary


def write_summary(summary: dict, out_dir: Path) -> dict[str, Path]:
    """summary.json (everything) and summary.csv (one row per agent and budget, curves left out)."""
    out_dir = Path(out_dir)
    json_path, csv_path = out_dir / "summary.json", out_dir / "summary.csv"
    json_path.write_text(json.dumps(summary, indent=1) + "\n")
    metrics = [m for m in HIGHER_IS_BETTER if any(m in r["metrics"] for r in summary["rows"])]
    budgets = {b["label"]: b for b in summary["budgets"]}
    header = ["budget", "max_episodes", "max_tokens", "j_star", "rank", "agent", "num_problems"]
    for m in metrics:
        header += [f"{m}_mean", f"{m}_se", f"{m}_ci_low", f"{m}_ci_high"]
    header += ["vs_best_metric", "vs_best_diff", "vs_best_se", "vs_best_significant", "grading_incomplete"]
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in summary["rows"]:
            b = budgets[r["budget"]]
            line = [r["budget"], b["max_episodes"], b["max_tokens"], b["j_star"], r["rank"], r["agent"], r["num_problems"]]
            for m in metrics:
                s = r["metrics"].get(m)
                line += [s["mean"], s["se"], s["ci_low"], s["ci_high"]] if s else ["", "", "", ""]
            v = r["vs_best"]
            line += [v["metric"], v["diff"], v["se"], v["significant"]] if v else ["", "", "", ""]
            line.append(r.get("grading_incomplete", 0))
            writer.writerow(line)
    return {"summary_json": json_path, "summary_csv": csv_path}


def _fmt(stat: dict, digits: int) -> str:
    return f"{stat['mean']:.{digits}f} ± {Z95 * stat['se']:.{digits}f}"


_DIGITS = {"return": 3, "accuracy": 3, "maj_accuracy": 3, "maj_one_prefix": 3, "episodes": 2, "tokens": 0,
           "token_regret": 3, "mrt_token_regret": 3, "episode_regret": 2}


def build_tables(summary: dict) -> list:
    """One rich Table per budget, agents ranked."""
    from rich.table import Table

    tables = []
    metrics = [m for m in HIGHER_IS_BETTER if any(m in r["metrics"] for r in summary["rows"])]
    for budget in summary["budgets"]:
        rows = [r for r in summary["rows"] if r["budget"] == budget["label"]]
        rank_metric = next((r["vs_best"]["metric"] for r in rows if r["vs_best"]), summary["rank_by"])
        arrow = "↑" if HIGHER_IS_BETTER[rank_metric] else "↓"
        title = (
            f"{summary['env_id']} at {budget['label']}  (C0 = {budget['budget_tokens']} tokens, "
            f"J* = {budget['j_star']:.3f}; ranked by {METRIC_TITLES[rank_metric]} {arrow})"
        )
        table = Table(title=title, title_justify="left", header_style="bold")
        table.add_column("#", justify="right")
        table.add_column("agent", style="bold", no_wrap=True)
        for m in metrics:
            table.add_column(METRIC_TITLES[m] + (" ↑" if HIGHER_IS_BETTER[m] else " ↓"), justify="right")
        table.add_column(f"Δ {METRIC_TITLES[rank_metric]} vs #1", justify="right")
        for r in rows:
            cells = [str(r["rank"]), r["agent"] + (f" {ORACLE_MARK}" if r.get("oracle") else "")]
            for m in metrics:
                if m not in r["metrics"]:
                    cells.append("")
                    continue
                diff = (r["vs_best"] or {}).get("metrics", {}).get(m)
                mark = "*" if diff and diff["significant"] else " "
                cells.append(_fmt(r["metrics"][m], _DIGITS[m]) + mark)
            v = r["vs_best"]
            if v is None:
                cells.append("—")
            elif v["se"] == 0 and v["diff"] == 0:
                cells.append("0 (tied)")
            else:
                mark = "*" if v["significant"] else " "
                cells.append(f"{v['diff']:+.3f} ± {Z95 * v['se']:.3f}{mark}")
            table.add_row(*cells)
        tables.append(table)
    return tables


def table_caption(summary: dict) -> str:
    text = (
        f"{summary['num_problems']} problems per agent and budget (seeds {summary['base_seed']}.."
        f"{summary['base_seed'] + summary['num_problems'] - 1}, the same for every agent). ± = 95% interval "
        f"(1.96 s.e.). Δ vs #1: paired difference from the top-ranked agent on the same problems; "
        f"* = differs from #1 significantly (paired, 95%)."
    )
    if any(r.get("oracle") for r in summary["rows"]):
        text += (f"\n{ORACLE_MARK} = oracle: decides from gold-derived information (J, graded against the gold "
                 f"answer or computed from the simulator's hidden state), which a deployed system does not have.")
    unknown = summary.get("grading_incomplete", 0)
    if unknown:
        text += (f"\n{unknown} grader comparison{'s' if unknown != 1 else ''} did not complete (the grader's worker "
                 f"crashed or stalled) and count as unknown, not as verdicts (summary.json: grading_incomplete).")
    return text + (f"\n{summary['note']}" if summary.get("note") else "")


def print_table(summary: dict, console: Any = None, path: Path | None = None) -> Path | None:
    """Print the tables (to `console`, a rich Console; default stdout) and save them as plain text."""
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:  # a file or a pipe: no terminal width to respect
            console = Console(width=200)
    recorder = Console(record=True, width=200, file=io.StringIO())
    for target in (console, recorder):
        for table in build_tables(summary):
            target.print(table)
        target.print(table_caption(summary), style="dim", soft_wrap=False)
    if path is None:
        return None
    Path(path).write_text(recorder.export_text())
    return Path(path)
