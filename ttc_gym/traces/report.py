"""MRT's analysis of analysed traces: a JSON summary, a table and PNG figures (docs/traces.md).

Every number comes from the metric functions of `ttc_gym.metrics` (docs/formulation.md §5):
normalized token regret in ttc-gym's convention (`normalized_token_regret`) beside MRT's notebook's
(`mrt_normalized_token_regret`), maj@k at one prefix (`maj_at_k_one_prefix_graded`), intervals by
`bootstrap_ci`. A prefix whose J is null (nothing graded) takes the J of the prefix before it (the
first graded one for J_0); a trace with no graded prefix is left out and counted.

Traces collected with budget forcing (`natural_episodes` set; `ttc_gym.traces.collect`) also get
`budget_forcing`: J and tokens where the model ended the trace itself and after each forced
extension, and the paired change J(after w extensions) - J(natural end) per trace — what MRT's
`analysis/code/extrapolate.ipynb` plots as accuracy against tokens for w = 0, 2, 4, 6, 8 "Wait"s.
Intervals are over traces (like every interval here), not clustered by problem.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ttc_gym.metrics import (
    bootstrap_ci,
    maj_at_k_one_prefix_graded,
    mean_curve,
    mrt_normalized_token_regret,
    mrt_token_axis,
    normalized_token_regret,
)
from ttc_gym.prompts import BUDGET_FORCING_CUES

Z95 = 1.959963984540054


def filled_j_curve(row: dict) -> list[float] | None:
    """J at each prefix with nulls filled forward (module docstring); None when nothing was graded."""
    values = [p["J"] for p in row["prefixes"]]
    graded = [v for v in values if v is not None]
    if not graded:
        return None
    out, last = [], graded[0]
    for v in values:
        last = v if v is not None else last
        out.append(float(last))
    return out


def fall_after_peak(curve: Sequence[float], tol: float = 1e-9) -> tuple[bool, bool]:
    """(some J after the first peak is lower than the peak, the last J is lower than the peak)."""
    peak = int(np.argmax(curve))
    later = curve[peak + 1:]
    return bool(len(later) and min(later) < curve[peak] - tol), bool(curve[-1] < curve[peak] - tol)


def maj_curve(prefix: dict) -> list[float]:
    """maj@k at one prefix for k = 1..K (`metrics.maj_at_k_one_prefix_graded`): answers graded correct vote
    together (equivalent forms of the gold answer count as one), the others by their normalized text."""
    answers, correct = prefix["forced_answers"], [bool(c) for c in prefix["correct"]]
    return [maj_at_k_one_prefix_graded(answers, correct, k) for k in range(1, len(answers) + 1)]


def default_budgets(rows: list[dict]) -> list[int]:
    """C0 budgets: the 25th, 50th, 75th and 100th percentiles of the traces' total tokens."""
    totals = [r["prefixes"][-1]["tokens"] for r in rows]
    budgets = sorted({int(round(q)) for q in np.percentile(totals, [25, 50, 75, 100]) if q >= 1})
    return budgets or [1]


def _interval(values: Sequence[float]) -> dict:
    values = [float(v) for v in values]
    lo, hi = bootstrap_ci(values) if len(values) > 1 else (values[0], values[0])
    return {"mean": float(np.mean(values)), "ci95": [float(lo), float(hi)], "n": len(values)}


def summarize(rows: list[dict], budgets: Sequence[int] | None = None) -> dict:
    """The summary of analysed traces (module docstring): counts, J, regret per C0, maj@k, falls."""
    curves = {r["trace_id"]: filled_j_curve(r) for r in rows}
    usable = [r for r in rows if curves[r["trace_id"]] is not None]
    if not usable:
        raise ValueError("no analysed trace has a graded prefix; nothing to summarize.")
    budgets = sorted(int(b) for b in (budgets or default_budgets(usable)))
    if any(b < 1 for b in budgets):
        raise ValueError(f"budgets (C0, tokens) must be >= 1, got {budgets}.")
    j = [curves[r["trace_id"]] for r in usable]
    tokens = [[p["tokens"] for p in r["prefixes"]] for r in usable]
    # MRT's notebook axis: problem + prefix + mean forced-answer tokens at each prefix.
    mrt_axes = [mrt_token_axis(r.get("problem_tokens", 0), [p["tokens"] for p in r["prefixes"]],
                               [p.get("answer_tokens", 0.0) for p in r["prefixes"]]) for r in usable]
    falls = [fall_after_peak(c) for c in j]
    regret = []
    for c0 in budgets:
        ours = [normalized_token_regret(t, c, c0) for t, c in zip(tokens, j)]
        mrt = [mrt_normalized_token_regret(axis, c, c0) if axis[0] > 0 else float("nan")
               for axis, c in zip(mrt_axes, j)]
        row = {"C0": c0, "regret": _interval(ours)}
        mrt = [m for m in mrt if np.isfinite(m)]
        row["regret_mrt"] = _interval(mrt) if mrt else None
        regret.append(row)
    k = usable[0]["prover"]["k"]
    maj_first = [maj_curve(r["prefixes"][0]) for r in usable]
    maj_last = [maj_curve(r["prefixes"][-1]) for r in usable]
    graded_final = [r["final_correct"] for r in usable if r.get("final_correct") is not None]
    problems = sorted({r["problem_id"] for r in usable})
    return {
        "traces": len(usable), "traces_without_grades": len(rows) - len(usable), "problems": len(problems),
        "models": sorted({str(r.get("model")) for r in usable}), "prover": usable[0]["prover"],
        "episodes": _interval([len(r["episodes"]) for r in usable]),
        "tokens": _interval([t[-1] for t in tokens]),
        "J_0": _interval([c[0] for c in j]), "J_final": _interval([c[-1] for c in j]),
        "J_max": _interval([max(c) for c in j]),
        "final_answer_accuracy": _interval([float(x) for x in graded_final]) if graded_final else None,
        "share_fall_after_peak": _interval([float(a) for a, _ in falls]),
        "share_final_below_peak": _interval([float(b) for _, b in falls]),
        "regret_vs_budget": regret,
        "regret_conventions": {
            "regret": "ttc-gym: metrics.normalized_token_regret (J held back to 0 tokens; x = trace tokens)",
            "regret_mrt": "MRT notebook: metrics.mrt_normalized_token_regret (curve from (0, 0); x = problem + "
                          "prefix + mean forced-answer tokens)",
        },
        "maj_at_k_first_prefix": [float(v) for v in np.mean(maj_first, axis=0)],
        "maj_at_k_last_prefix": [float(v) for v in np.mean(maj_last, axis=0)],
        "maj_at_k_estimator": f"metrics.maj_at_k_one_prefix_graded over the K={k} forced answers of one prefix, k = 1..K",
        "budget_forcing": budget_forcing_summary(usable),
    }


def budget_forcing_summary(rows: list[dict]) -> dict | None:
    """What budget forcing did (module docstring), over the traces forced on at least once; None when
    none was. `extensions` is the number of extensions every one of them has."""
    forced = [r for r in rows if r.get("natural_episodes") is not None and len(r["episodes"]) > r["natural_episodes"]]
    curves = [filled_j_curve(r) for r in forced]
    forced, curves = [r for r, c in zip(forced, curves) if c is not None], [c for c in curves if c is not None]
    if not forced:
        return None
    extensions = min(len(r["episodes"]) - r["natural_episodes"] for r in forced)
    j0 = [c[r["natural_episodes"]] for r, c in zip(forced, curves)]
    per = []
    for w in range(extensions + 1):
        j = [c[r["natural_episodes"] + w] for r, c in zip(forced, curves)]
        diff = [a - b for a, b in zip(j, j0)]
        per.append({
            "extensions": w, "cue": BUDGET_FORCING_CUES[(w - 1) % len(BUDGET_FORCING_CUES)] if w else None,
            "tokens": _interval([r["prefixes"][r["natural_episodes"] + w]["tokens"] for r in forced]),
            "J": _interval(j), "J_minus_natural": _interval(diff),
            "share_up": float(np.mean([d > 1e-9 for d in diff])), "share_down": float(np.mean([d < -1e-9 for d in diff])),
        })
    return {"traces": len(forced), "problems": len({r["problem_id"] for r in forced}), "extensions": extensions,
            "per_extension": per,
            "how": "each extension: one episode opened by the next of " + ", ".join(BUDGET_FORCING_CUES)
                   + " after the trace ended (MRT analysis/code/pass_at_k_extrapolate.py; s1)"}


def table(summary: dict) -> str:
    """A plain-text table of the summary."""
    def ci(d):
        return "-" if d is None else f"{d['mean']:.3f} [{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]"

    p = summary["prover"]
    lines = [
        f"traces {summary['traces']} on {summary['problems']} problems (models: {', '.join(summary['models'])}); "
        f"prover {p['engine']} K={p['k']} ({p['template']})",
        f"episodes per trace   {ci(summary['episodes'])}",
        f"tokens per trace     {ci(summary['tokens'])}",
        f"J_0                  {ci(summary['J_0'])}",
        f"J_final              {ci(summary['J_final'])}",
        f"max J                {ci(summary['J_max'])}",
        f"final answer correct {ci(summary['final_answer_accuracy'])}"
        + (f" (n={summary['final_answer_accuracy']['n']} traces that ended with an answer)"
           if summary["final_answer_accuracy"] else " (no trace ended with an answer)"),
        f"J falls after peak   {ci(summary['share_fall_after_peak'])}",
        f"final J below peak   {ci(summary['share_final_below_peak'])}",
        f"maj@k, k=1..K, J_0 prefix:  {' '.join(f'{v:.3f}' for v in summary['maj_at_k_first_prefix'])}",
        f"maj@k, k=1..K, last prefix: {' '.join(f'{v:.3f}' for v in summary['maj_at_k_last_prefix'])}",
        "",
        f"{'C0 (tokens)':>12}  {'regret (ours)':<28}  regret (MRT notebook)",
    ]
    for row in summary["regret_vs_budget"]:
        lines.append(f"{row['C0']:>12}  {ci(row['regret']):<28}  {ci(row['regret_mrt'])}")
    forcing = summary.get("budget_forcing")
    if forcing:
        lines += ["", f"budget forcing: {forcing['traces']} traces ({forcing['problems']} problems) forced on "
                      f"{forcing['extensions']} times after they ended",
                  f"{'extensions':>10}  {'cue':<14}  {'tokens':<28}  {'J':<28}  {'J - J at natural end':<30}  up / down"]
        for e in forcing["per_extension"]:
            lines.append(f"{e['extensions']:>10}  {e['cue'] or '(natural end)':<14}  {ci(e['tokens']):<28}  "
                         f"{ci(e['J']):<28}  {ci(e['J_minus_natural']):<30}  {e['share_up']:.2f} / {e['share_down']:.2f}")
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def plot_all(rows: list[dict], summary: dict, out_dir: Path) -> list[Path]:
    """The four PNG figures of docs/traces.md in `out_dir`."""
    plt = _pyplot()
    usable = [r for r in rows if filled_j_curve(r) is not None]
    files = []

    # J vs episode index, per problem (mean over its traces) and overall.
    by_problem: dict[str, list[list[float]]] = {}
    for r in usable:
        by_problem.setdefault(r["problem_id"], []).append(filled_j_curve(r))
    length = max(len(c) for cs in by_problem.values() for c in cs)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    per_problem = []
    for curves in by_problem.values():
        mean, _ = mean_curve(curves, length)
        per_problem.append(mean)
        ax.plot(range(length), mean, color="tab:blue", alpha=0.18, lw=0.8)
    overall, se = mean_curve(per_problem, length)
    ax.plot(range(length), overall, color="black", lw=2, label=f"mean over {len(by_problem)} problems")
    ax.fill_between(range(length), overall - Z95 * se, overall + Z95 * se, color="black", alpha=0.12)
    ax.set(xlabel="episodes in the prefix (j)", ylabel="J (forced-answer accuracy)", ylim=(-0.02, 1.02),
           title="J after each episode, per problem")
    ax.legend(loc="upper left")
    files.append(_save(fig, out_dir / "j_vs_episode.png", plt))

    # Mean J vs tokens (each trace interpolated on a grid, held past its end).
    top = max(r["prefixes"][-1]["tokens"] for r in usable) or 1
    grid = np.linspace(0, top, 60)
    stacked = np.stack([np.interp(grid, [p["tokens"] for p in r["prefixes"]], filled_j_curve(r)) for r in usable])
    mean = stacked.mean(axis=0)
    se = stacked.std(axis=0, ddof=1) / np.sqrt(len(usable)) if len(usable) > 1 else np.zeros_like(mean)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(grid, mean, color="tab:blue", lw=2, label=f"mean over {len(usable)} traces")
    ax.fill_between(grid, mean - Z95 * se, mean + Z95 * se, color="tab:blue", alpha=0.15)
    ax.set(xlabel="trace tokens", ylabel="J", ylim=(-0.02, 1.02), title="Mean J against tokens")
    ax.legend(loc="upper left")
    files.append(_save(fig, out_dir / "j_vs_tokens.png", plt))

    # Normalized regret vs C0, both conventions.
    fig, ax = plt.subplots(figsize=(5, 3.4))
    budgets = [row["C0"] for row in summary["regret_vs_budget"]]
    shift = 0.01 * (max(budgets) - min(budgets) or max(budgets))  # side by side, not on top of each other
    for key, label, color, dx in (("regret", "ours (normalized_token_regret)", "tab:blue", -shift),
                                  ("regret_mrt", "MRT notebook (mrt_normalized_token_regret)", "tab:orange", shift)):
        pts = [(b + dx, row[key]) for b, row in zip(budgets, summary["regret_vs_budget"]) if row[key] is not None]
        if not pts:
            continue
        xs, ds = [b for b, _ in pts], [d for _, d in pts]
        means = np.array([d["mean"] for d in ds])
        err = np.array([[d["mean"] - d["ci95"][0] for d in ds], [d["ci95"][1] - d["mean"] for d in ds]])
        ax.errorbar(xs, means, yerr=err, marker="o", capsize=3, color=color, label=label)
    ax.set(xlabel="budget C0 (tokens)", ylabel="normalized regret (J* = 1)", title="Normalized token regret vs budget")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=1, frameon=False)
    files.append(_save(fig, out_dir / "regret_vs_budget.png", plt))

    # maj@k at a prefix vs tokens: first, middle and last prefix of each trace.
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(grid, mean, color="grey", lw=1.2, ls="--", label="J: think longer (mean)")
    k = usable[0]["prover"]["k"]
    for name, pick, color in (("J_0 prefix", lambda n: 0, "tab:red"), ("middle prefix", lambda n: n // 2, "tab:green"),
                              ("last prefix", lambda n: n, "tab:blue")):
        curves, xs = [], []
        for r in usable:
            p = r["prefixes"][pick(len(r["episodes"]))]
            if len(p["forced_answers"]) != k:
                continue
            curves.append(maj_curve(p))
            xs.append([p["tokens"] + kk * max(p.get("answer_tokens", 0.0), 1.0) for kk in range(1, k + 1)])
        if curves:
            ax.plot(np.mean(xs, axis=0), np.mean(curves, axis=0), marker="o", ms=3, color=color, label=name)
    ax.set(xlabel="tokens: prefix + k x forced answer", ylabel="maj@k (k = 1..K)", ylim=(-0.02, 1.02),
           title="maj@k at one prefix")
    ax.legend(loc="best")
    files.append(_save(fig, out_dir / "maj_at_k.png", plt))

    # Budget forcing: mean J against mean tokens at the natural end and after each extension.
    forcing = summary.get("budget_forcing")
    if forcing:
        per = forcing["per_extension"]
        xs = [e["tokens"]["mean"] for e in per]
        ys = np.array([e["J"]["mean"] for e in per])
        err = np.array([[e["J"]["mean"] - e["J"]["ci95"][0] for e in per], [e["J"]["ci95"][1] - e["J"]["mean"] for e in per]])
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, color="tab:purple",
                    label=f"{forcing['traces']} traces, mean J (95% CI)")
        for x, y, e in zip(xs, ys, per):
            ax.annotate(str(e["extensions"]), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set(xlabel="trace tokens (mean)", ylabel="J", ylim=(-0.02, 1.02),
               title="Budget forcing: J after w forced extensions (w labelled)")
        ax.legend(loc="best")
        files.append(_save(fig, out_dir / "budget_forcing.png", plt))
    return files


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(rows: list[dict], out_dir: str | Path, *, budgets: Sequence[int] | None = None,
                 plots: bool = True) -> dict[str, Path]:
    """summary.json, table.txt and (with `plots`) the PNGs of `rows` in `out_dir`; {name: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows, budgets)
    files = {"summary.json": out / "summary.json", "table.txt": out / "table.txt"}
    files["summary.json"].write_text(json.dumps(summary, indent=2) + "\n")
    files["table.txt"].write_text(table(summary))
    if plots:
        files.update((p.name, p) for p in plot_all(rows, summary, out))
    return files
