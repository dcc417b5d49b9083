"""The report of the micro-reasoner study (examples/studies/micro_study.py), made from the saved per-run
results only: the pilot's spread and minimum detectable effects, or the study's pre-registered claims
with their paired tests, Holm-adjusted verdicts and the groups without an outcome signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataclasses import asdict, replace

from micro_study import CLAIMS, ENDPOINTS, FAMILY_ALPHA, PILOT, QUICK, Study
from ttc_gym.study_stats import compare, format_basins, format_mean_interval, holm, minimum_detectable_effect, verdict

PLANNED_SEEDS = Study().seeds


def _by_method(blob: dict) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for r in blob["runs"]:
        if r["method"] != "base":
            out.setdefault(r["method"], {})[int(r["seed"])] = r
    return out


def _base(blob: dict) -> dict | None:
    return next((r for r in blob["runs"] if r["method"] == "base"), None)


def _some_run(runs: dict) -> dict:
    """One run (the first method's first seed): every run holds the same fields."""
    return next(iter(next(iter(runs.values())).values()))


def diffs(runs: dict, a: str, b: str, endpoint: str) -> np.ndarray:
    """Per-seed A - B of an endpoint, over the seeds both have (in seed order)."""
    seeds = sorted(set(runs.get(a, {})) & set(runs.get(b, {})))
    return np.array([runs[a][s][endpoint] - runs[b][s][endpoint] for s in seeds], dtype=float)


def _header(blob: dict, regenerated: bool) -> list[str]:
    st = blob["study"]
    title = {"pilot": "Micro-reasoner study — PILOT (not the study; sets the plan's detectable effects)",
             "quick": "Micro-reasoner study — QUICK smoke run (not evidence)",
             "study": "Micro-reasoner study: MRT vs GRPO, MRT-online, STaR, MRT-STaR (pre-registered)"}[blob["mode"]]
    train_s = [r["train_s"] for r in blob["runs"] if r["method"] != "base"]
    eval_s = [r["eval_s"] for r in blob["runs"]]
    lines = [f"# {title}\n"]
    if blob.get("plan_commit"):
        lines.append(f"Plan: `examples/studies/micro_study_plan.md` at commit `{blob['plan_commit']}`.\n")
    flag = {"pilot": "--pilot ", "quick": "--quick ", "study": ""}[blob["mode"]]
    if blob["mode"] in ("pilot", "quick"):  # a pilot arm's --set options: what differs from the mode's settings
        expected = asdict(replace(Study(), **(PILOT if blob["mode"] == "pilot" else QUICK)))
        flag += "".join(f"--set {k}={v} " for k, v in st.items()
                        if k in expected and v != expected[k] and k not in ("checkpoint", "workers", "methods"))
    lines.append(f"Command: `python examples/studies/micro_study.py {flag}--save-results <file>`"
                 + (" (report regenerated with `--from-results`)" if regenerated else "") + "  \n"
                 f"Wall time {blob['wall_s'] / 60:.1f} min with {st['workers']} worker processes of 1 torch thread "
                 f"(torch {blob.get('torch', '?')}); training {np.mean(train_s) if train_s else 0:.0f} s and evaluation "
                 f"{np.mean(eval_s) if eval_s else 0:.0f} s per run on average.\n")
    lines.append(
        f"Settings: base checkpoint `{st['checkpoint']}`, problems `{st['source']}`; each run trains with "
        f"`ttc_gym.training.llm_train.train` for {st['iterations']} iterations of {st['problems_per_iter']} problems x "
        f"{st['group_size']} rollouts (lr {st['lr']}, temperature {st['temperature']}, episodes of at most "
        f"{st['max_episode_tokens']} tokens, budget H = {st['H']}, the policy as its own prover with K = {st['K']} "
        f"forced answers per J, alpha = {st['alpha']} for MRT and MRT-online); seeds 0..{st['seeds'] - 1}, run i of "
        f"every method with seed i. Held-out: {st['eval_problems']} problems x {st['eval_group']} rollouts, the same "
        f"problems and evaluation seeds for every run, at H = {st['H']} and 2H = {2 * st['H']}, with "
        f"K = {st.get('eval_K', st['K'])} forced answers per J.\n")
    return lines


def _method_table(runs: dict, base: dict | None) -> list[str]:
    cols = ("acc@H", "acc@2H", "regret@H", "tokens@H", "episodes@H")
    lines = ["## Held-out endpoints per method (mean over seeds [95 % bootstrap interval over seeds])\n",
             "| method | seeds | " + " | ".join(cols) + " | train s/run |", "|---|---|" + "---|" * (len(cols) + 1)]
    if base is not None:
        lines.append("| base (untrained) | — | " + " | ".join(f"{base[c]:.3f}" for c in cols) + " | — |")
    for m, rs in runs.items():
        vals = [format_mean_interval([r[c] for r in rs.values()], 3 if c != "tokens@H" else 1) for c in cols]
        lines.append(f"| {m} | {len(rs)} | " + " | ".join(vals) + f" | {np.mean([r['train_s'] for r in rs.values()]):.0f} |")
    return lines + [""]


def _curves(runs: dict, field: str, title: str) -> list[str]:
    n = len(_some_run(runs)["history"])
    if n == 0:
        return []
    width = max(1, n // 8)
    windows = [(k, min(n, k + width)) for k in range(0, n, width)]
    lines = [f"## {title} (mean over seeds, per window of {width} iterations)\n",
             "| method | " + " | ".join(f"it {a + 1}-{b}" for a, b in windows) + " |", "|---|" + "---|" * len(windows)]
    for m, rs in runs.items():
        rows = np.array([[h[field] if h[field] is not None else np.nan for h in r["history"]] for r in rs.values()])
        lines.append(f"| {m} | " + " | ".join(f"{np.nanmean(rows[:, a:b]):.3f}" for a, b in windows) + " |")
    return lines + [""]


def _pilot(runs: dict, blob: dict) -> list[str]:
    claims = len(CLAIMS)
    lines = ["## Pilot: per-seed MRT − GRPO and the effects the planned design can detect\n",
             f"Per endpoint: the per-seed differences, their standard deviation over seeds (the pilot's estimate, "
             f"from {len(diffs(runs, 'MRT', 'GRPO', 'acc@H'))} seeds: itself uncertain), and the minimum detectable "
             f"effect (`study_stats.minimum_detectable_effect`: two-sided, level {FAMILY_ALPHA} / {claims} — Holm's "
             f"first step over the {claims} planned claims —, power 0.8, normal approximation) with the planned "
             f"{PLANNED_SEEDS} seeds and with 20 seeds.\n",
             "| endpoint | per-seed MRT − GRPO | mean | SD over seeds | MDE, 12 seeds | MDE, 20 seeds |",
             "|---|---|---|---|---|---|"]
    for ep in ENDPOINTS:
        d = diffs(runs, "MRT", "GRPO", ep)
        if d.size < 2:
            continue
        sd = float(d.std(ddof=1))
        lines.append(f"| {ep} | {', '.join(f'{x:+.3f}' for x in d)} | {d.mean():+.3f} | {sd:.3f} | "
                     f"{minimum_detectable_effect(sd, PLANNED_SEEDS, tests=claims):.3f} | "
                     f"{minimum_detectable_effect(sd, 20, tests=claims):.3f} |")
    return lines + [""]


def _claims(runs: dict) -> list[str]:
    rows, ps = [], []
    for c in CLAIMS:
        d = diffs(runs, c.a, c.b, c.endpoint)
        if d.size < 2:
            rows.append((c, d, None))
            ps.append(1.0)
            continue
        cmp = compare(d)
        rows.append((c, d, cmp))
        ps.append(cmp.p)
    adjusted = holm(ps)
    lines = ["## Pre-registered claims\n",
             f"Paired by seed (run i of A and B share seed i); the sign-flip permutation test of mean d = 0 "
             f"(two-sided, exact), Holm-adjusted over the {len(CLAIMS)} claims at family level {FAMILY_ALPHA}; "
             f"interval: 95 % percentile bootstrap over seeds; MDE from this study's own spread (power 0.8, Holm's "
             f"first step). A claim is *supported* when the adjusted p is below {FAMILY_ALPHA} in its direction, "
             f"*contradicted* when below it in the other, else *not detected*.\n",
             "| claim | A − B | endpoint | claimed | seeds | mean d [95 % CI] | p | Holm p | verdict | MDE | basins of d |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (c, d, cmp), adj in zip(rows, adjusted):
        if cmp is None:
            lines.append(f"| {c.name} | {c.a} − {c.b} | {c.endpoint} | {'>' if c.sign > 0 else '<'} 0 | {d.size} | "
                         f"— | — | — | not run | — | — |")
            continue
        mde = minimum_detectable_effect(float(d.std(ddof=1)), d.size, tests=len(CLAIMS))
        lines.append(f"| {c.name} | {c.a} − {c.b} | {c.endpoint} | {'>' if c.sign > 0 else '<'} 0 | {d.size} | "
                     f"{cmp.mean:+.3f} [{cmp.lo:+.3f}, {cmp.hi:+.3f}] | {cmp.p:.4f} | {adj:.4f} | "
                     f"{verdict(cmp.mean, adj, c.sign, alpha=FAMILY_ALPHA)} | {mde:.3f} | {format_basins(d, 0.05)} |")
    lines.append("")
    lines += ["Sources of the claims:", ""] + [f"- {c.name}: {c.source}" for c in CLAIMS] + [""]
    return lines


def _no_signal(runs: dict, base: dict | None) -> list[str]:
    lines = ["## Groups without an outcome signal\n",
             "Training: the share of an iteration's groups (a problem's rollouts; an `mrt` prefix's branches) in "
             "which every rollout failed — there the group-normalized outcome advantage is zero and only a dense "
             "(progress) term can move the policy (trainer log column `all_failed_groups`), mean over iterations "
             "and seeds.\n",
             "| method | all-failed groups (training) |", "|---|---|"]
    for m, rs in runs.items():
        vals = [np.nanmean([h["all_failed_groups"] for h in r["history"] if h["all_failed_groups"] is not None])
                for r in rs.values() if r["history"]]
        lines.append(f"| {m} | {format_mean_interval(vals)} |")
    if base is not None:
        hard = [i for i, v in enumerate(base["per_problem@H"]) if v == 0.0]
        lines += ["", f"Held-out: the {len(hard)} problems (of {len(base['per_problem@H'])}) on which every rollout of "
                  f"the base checkpoint failed at H; each method's accuracy on them at H and 2H (mean over seeds "
                  f"[95 % bootstrap]; descriptive, not in the claims' family).\n",
                  "| method | acc@H on base-failed | acc@2H on base-failed |", "|---|---|---|"]
        for m, rs in runs.items():
            a1 = [np.mean([r["per_problem@H"][i] for i in hard]) for r in rs.values()] if hard else []
            a2 = [np.mean([r["per_problem@2H"][i] for i in hard]) for r in rs.values()] if hard else []
            lines.append(f"| {m} | {format_mean_interval(a1)} | {format_mean_interval(a2)} |")
    return lines + [""]


def _levels(runs: dict, base: dict | None) -> list[str]:
    levels = sorted(_some_run(runs)["by_level@H"])
    lines = ["## Held-out accuracy at H by level (mean over seeds)\n",
             "| method | " + " | ".join(f"level {lv}" for lv in levels) + " |", "|---|" + "---|" * len(levels)]
    if base is not None:
        lines.append("| base | " + " | ".join(f"{base['by_level@H'][lv]:.3f}" for lv in levels) + " |")
    for m, rs in runs.items():
        lines.append(f"| {m} | " + " | ".join(f"{np.mean([r['by_level@H'][lv] for r in rs.values()]):.3f}" for lv in levels) + " |")
    return lines + [""]


def _j_curves(runs: dict, base: dict | None, budget: str, k: int) -> list[str]:
    """Held-out mean J after j = 0..episodes (`micro_eval.j_after`: a rollout that answered earlier
    keeps its last J), mean over seeds; `k`: the held-out forced answers per J. Descriptive (the plan's
    "J curves"); no test."""
    n = len(_some_run(runs)[f"J@{budget}"])
    lines = [f"## Held-out J after each episode at {budget} (mean over seeds; K = {k} forced answers per J)\n",
             "| method | " + " | ".join(f"J_{j}" for j in range(n)) + " |", "|---|" + "---|" * n]
    if base is not None:
        lines.append("| base | " + " | ".join(f"{v:.3f}" for v in base[f"J@{budget}"]) + " |")
    for m, rs in runs.items():
        curve = np.mean([r[f"J@{budget}"] for r in rs.values()], axis=0)
        lines.append(f"| {m} | " + " | ".join(f"{v:.3f}" for v in curve) + " |")
    return lines + [""]


def write_report(path: Path, blob: dict, regenerated: bool = False) -> None:
    runs = _by_method(blob)
    base = _base(blob)
    lines = _header(blob, regenerated)
    if runs:
        lines += _method_table(runs, base)
        if blob["mode"] == "pilot":
            lines += _pilot(runs, blob)
        else:
            lines += _claims(runs)
        lines += _no_signal(runs, base)
        lines += _levels(runs, base)
        if "J@H" in _some_run(runs):
            k = blob["study"].get("eval_K", blob["study"]["K"])
            lines += _j_curves(runs, base, "H", k) + _j_curves(runs, base, "2H", k)
        lines += _curves(runs, "outcome", "Learning curves: training-batch outcome")
        lines += _curves(runs, "J_final", "Learning curves: training-batch J at the last episode")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
