"""The report of the pre-registered TTC-Sim-v0 study (examples/studies/sim_study.py): the claims, their
paired tests with the Holm correction, and the per-setting tables, made from the saved per-seed
results. The claims and their tests are the plan's (examples/studies/sim_study_plan.md), fixed here
before any run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim_study import ARMS_B, METHODS, SETTINGS, VB, VB_RL, VF
from ttc_gym.study_stats import compare, format_basins, format_mean_interval, holm, minimum_detectable_effect, verdict

FAMILY_ALPHA = 0.05
BASIN_GAP = 0.03  # accuracy: 3x the evaluation's standard error on 2000 problems (~0.01)


@dataclass(frozen=True)
class Claim:
    """One pre-registered claim. kind: "pair" (MRT - GRPO on `endpoint` in `setting`), "pair_change"
    (that difference in `setting` minus in `other`), "gap" (VB - VF at the largest budget), "gap_growth"
    (the gap at the largest budget minus at the smallest), "growth_change" (the growth at spread 1 minus
    at spread 0). sign: the direction the source claims (+1: positive)."""

    key: str
    source: str
    text: str
    kind: str
    sign: int
    setting: str = ""
    endpoint: str = ""
    other: str = ""
    spread: float = 1.0


MRT_SRC, SETLUR_SRC = "MRT (Qu et al. 2025)", "Setlur et al. 2025"
CLAIMS = (
    Claim("P1", MRT_SRC, "MRT has lower cumulative episode regret than GRPO", "pair", -1, "explore", "regret@1H"),
    Claim("P2", MRT_SRC, "MRT has lower cumulative episode regret than GRPO", "pair", -1, "explore+rule_out", "regret@1H"),
    Claim("P3", MRT_SRC, "MRT has lower cumulative episode regret than GRPO", "pair", -1, "overthink+cost", "regret@1H"),
    Claim("P4", MRT_SRC, "MRT is more accurate than GRPO at the training budget H", "pair", +1, "explore", "accuracy@1H"),
    Claim("P5", MRT_SRC, "MRT is more accurate than GRPO at the training budget H", "pair", +1, "explore+rule_out", "accuracy@1H"),
    Claim("P6", MRT_SRC, "MRT is more accurate than GRPO at the training budget H", "pair", +1, "overthink+cost", "accuracy@1H"),
    Claim("P7", MRT_SRC, "MRT extrapolates: more accurate than GRPO at 2H", "pair", +1, "overthink+cost", "accuracy@2H"),
    Claim("P8", MRT_SRC, "MRT extrapolates: more accurate than GRPO at 4H", "pair", +1, "overthink+cost", "accuracy@4H"),
    Claim("P9", MRT_SRC, "MRT uses fewer tokens than GRPO where compute costs", "pair", -1, "overthink+cost", "tokens@1H"),
    Claim("P10", MRT_SRC, "MRT's regret advantage over GRPO is larger when exploring informs the prover", "pair_change", -1,
          "explore+rule_out", "regret@1H", other="explore"),
    # (b): the largest and the smallest budget of the study's budgets_b (the plan: 16 and 4).
    Claim("P11", SETLUR_SRC, "verifier-based (STaR on own rollouts) beats verifier-free (SFT on expert traces) at the "
          "largest H, heterogeneous expert", "gap", +1, spread=1.0),
    Claim("P12", SETLUR_SRC, "the VB - VF gap grows with H (largest vs smallest H), heterogeneous expert", "gap_growth", +1,
          spread=1.0),
    Claim("P13", SETLUR_SRC, "the gap grows faster under heterogeneity (growth at spread 1 minus at spread 0)",
          "growth_change", +1),
)


def _runs(results, part: str, key: tuple[str, str]) -> dict:
    """The runs of one part, {(r[key[0]], r[key[1]]): {seed: run}} in the order the results came."""
    out: dict = {}
    for r in results:
        if r["part"] == part:
            out.setdefault((r[key[0]], r[key[1]]), {})[r["seed"]] = r
    return out


def _paired(a: dict, b: dict, field: str) -> tuple[list[int], np.ndarray]:
    seeds = sorted(set(a) & set(b))
    return seeds, np.array([a[s][field] - b[s][field] for s in seeds])


def claim_diffs(claim: Claim, A: dict, B: dict) -> np.ndarray:
    """The per-seed differences a claim is tested on."""
    if claim.kind == "pair":
        return _paired(A[(claim.setting, "MRT")], A[(claim.setting, "GRPO")], claim.endpoint)[1]
    if claim.kind == "pair_change":
        s1, d1 = _paired(A[(claim.setting, "MRT")], A[(claim.setting, "GRPO")], claim.endpoint)
        s2, d2 = _paired(A[(claim.other, "MRT")], A[(claim.other, "GRPO")], claim.endpoint)
        common = sorted(set(s1) & set(s2))
        return np.array([d1[s1.index(s)] - d2[s2.index(s)] for s in common])

    budgets = sorted(H for H, _ in B)
    lo_H, hi_H = (budgets[0], budgets[-1]) if budgets else (None, None)  # the plan's 4 and 16 (--quick: 4 and 8)

    def gaps(H, spread):
        runs = B.get((H, spread), {})
        return {s: r[VB] - r[VF] for s, r in runs.items()}

    if claim.kind == "gap":
        return np.array(list(gaps(hi_H, claim.spread).values()))

    def growth(spread):
        lo, hi = gaps(lo_H, spread), gaps(hi_H, spread)
        return {s: hi[s] - lo[s] for s in sorted(set(lo) & set(hi))}

    if claim.kind == "gap_growth":
        return np.array(list(growth(claim.spread).values()))
    g1, g0 = growth(1.0), growth(0.0)
    return np.array([g1[s] - g0[s] for s in sorted(set(g1) & set(g0))])


def write_report(path: Path, blob: dict, regenerated: bool = False) -> None:
    study, results = blob["study"], blob["results"]
    A, B = _runs(results, "a", ("setting", "method")), _runs(results, "b", ("H", "spread"))
    H = study["train_budget"]
    rows, ps = [], []
    for claim in CLAIMS:
        d = claim_diffs(claim, A, B)
        if d.size < 2:
            rows.append((claim, None, d))
            continue
        c = compare(d)
        rows.append((claim, c, d))
        ps.append(c.p)
    adjusted = iter(holm(ps)) if ps else iter(())
    m = len(CLAIMS)
    out = [
        "# TTC-Sim-v0 study, pre-registered: MRT's claims and verifier-based vs verifier-free learning",
        "",
        f"Plan: `examples/studies/sim_study_plan.md`, committed in **{blob.get('plan_commit', '(not given)')}** before any run "
        f"of this study. Generated by `{blob['command']}` in {blob['wall']:.0f} s wall time on {study['workers']} worker "
        f"processes of a shared 2-core machine ({len(results)} jobs, {sum(r['train_s'] for r in results):.0f} s of "
        f"training in all{'; rewritten from its saved results' if regenerated else ''}). Deviations from the plan: see "
        "the section of that name.",
        "",
        "## The pre-registered claims",
        "",
        (f"Each claim is tested on per-seed differences (paired by seed) with the two-sided sign-flip permutation "
         f"test; the interval is the 95% percentile bootstrap over seeds; p-values are Holm-adjusted across the "
         f"{m} claims (family-wise level {FAMILY_ALPHA}). Verdict: **supported** when the adjusted p <= {FAMILY_ALPHA} "
         f"and the difference goes the claimed way, **contradicted** when it is significant the other way, "
         f"else not detected. MDE: the smallest true difference this design detects with 80% power at the first "
         f"Holm step (level {FAMILY_ALPHA}/{m}), from the observed SD of the differences (normal approximation)."),
        "",
        "| claim | source | where | n | difference (claimed sign) | 95% interval | p | Holm p | verdict | MDE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for claim, c, d in rows:
        budgets = sorted({H for H, _ in B})
        shown = {"gap": f"H={budgets[-1]}" if budgets else "H=?",
                 "gap_growth": f"H={budgets[-1]} minus H={budgets[0]}" if budgets else "H=?"}
        where = claim.setting or f"{shown.get(claim.kind, shown['gap_growth'])}, spread={claim.spread}"
        if claim.kind == "growth_change":
            where = f"{shown['gap_growth']}, spread 1 minus spread 0"
        if claim.kind in ("pair", "pair_change"):
            where += f", {claim.endpoint}" + (f" (minus {claim.other})" if claim.other else "")
        if c is None:
            out.append(f"| {claim.key}: {claim.text} | {claim.source} | {where} | {d.size} | — | — | — | — | too few seeds | — |")
            continue
        p_adj = next(adjusted)
        mde = minimum_detectable_effect(float(np.std(d, ddof=1)), d.size, tests=m)
        sign = "+" if claim.sign > 0 else "−"
        out.append(f"| {claim.key}: {claim.text} | {claim.source} | {where} | {c.n} | {c.mean:+.4f} ({sign}) | "
                   f"[{c.lo:+.4f}, {c.hi:+.4f}] | {c.p:.4f} | {p_adj:.4f} | {verdict(c.mean, p_adj, claim.sign, alpha=FAMILY_ALPHA)} | {mde:.4f} |")
    out += ["", "Basin counts of the arms of each claim (per-seed accuracy at H, cut at gaps > "
            f"{BASIN_GAP}: number of clusters (size@centre, ...)):", ""]
    for setting in SETTINGS:
        for method in ("GRPO", "MRT"):
            runs = A.get((setting, method), {})
            if runs:
                out.append(f"- {setting}, {method}: {format_basins([r['accuracy@1H'] for r in runs.values()], BASIN_GAP)}")
    for (Hb, spread), runs in sorted(B.items()):
        cells = ", ".join(f"{arm.split(':')[0]} {format_basins([r[arm] for r in runs.values()], BASIN_GAP)}"
                          for arm in (VF, VB))
        out.append(f"- (b) H={Hb}, spread={spread}: {cells}")
    out += _tables_a(A, study, blob["curves"], H) + _tables_b(B, blob, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")


ENDPOINTS_A = (("accuracy@1H", "acc@H"), ("J_quarter@1H", "J@H/4"), ("J_half@1H", "J@H/2"), ("regret@1H", "regret"),
               ("accuracy@2H", "acc@2H"), ("accuracy@4H", "acc@4H"), ("tokens@1H", "tokens@H"),
               ("switch_share@1H", "switch share"))


def _tables_a(A: dict, study: dict, curves: dict, H: int) -> list[str]:
    out = ["", f"## (a) Every method in every setting (H = {H}; secondary, unadjusted)", "",
           (f"Training: {study['iterations']} iterations of {study['batch_size']} rollouts ({study['batch_size'] // study['group_size']} "
            f"problems x G = {study['group_size']}; mrt: as many prefixes, each with G continuing and G terminating branches), "
            f"lr {study['lr']}, entropy bonus {study['entropy_coef']} on the policy-gradient methods. Evaluation: "
            f"{study['eval_problems']} fixed problems per policy, sampling. Cells: mean [95% bootstrap interval] over "
            "seeds. acc: the committed answer's accuracy; J@j: the forced-answer accuracy after j episodes of the "
            "H-budget run; regret: (1/H) sum_j (J*_j - J_j); switch share: share of the policy's actions that switch "
            "strategy; last - previous curve point: the learning curve's last step (near 0: flat)."), ""]
    for setting in SETTINGS:
        star = curves[setting]
        out += [f"### setting `{setting}`", "",
                f"DP optimum: J*_H = {star[H]:.3f}, J*_2H = {star[2 * H]:.3f}, J*_4H = {star[4 * H]:.3f} (answer forced "
                "at each budget).", "",
                "| method | seeds | " + " | ".join(name for _, name in ENDPOINTS_A) + " | acc@H basins | last - previous curve point |",
                "|---|---|" + "---|" * len(ENDPOINTS_A) + "---|---|"]
        for label, _, _ in METHODS:
            runs = A.get((setting, label), {})
            if not runs:
                continue
            cells = [format_mean_interval([r[field] for r in runs.values()], 0 if field.startswith("tokens") else 3) for field, _ in ENDPOINTS_A]
            flat = [r["curve"][-1] - r["curve"][-2] for r in runs.values() if len(r["curve"]) >= 2]
            out.append(f"| {label} | {len(runs)} | " + " | ".join(cells) +
                       f" | {format_basins([r['accuracy@1H'] for r in runs.values()], BASIN_GAP)} | "
                       f"{format_mean_interval(flat) if flat else '—'} |")
        out += ["", "Each method minus GRPO, paired on their common seeds (unadjusted p, permutation test):", "",
                "| method − GRPO | " + " | ".join(name for _, name in ENDPOINTS_A[:7]) + " |", "|---|" + "---|" * 7]
        grpo = A.get((setting, "GRPO"), {})
        for label, _, _ in METHODS[1:]:
            runs = A.get((setting, label), {})
            if not runs or not grpo:
                continue
            cells = []
            for field, _ in ENDPOINTS_A[:7]:
                _, d = _paired(runs, grpo, field)
                c = compare(d)
                digits = 0 if field.startswith("tokens") else 3
                cells.append(f"{c.mean:+.{digits}f} [{c.lo:+.{digits}f}, {c.hi:+.{digits}f}] p={c.p:.3f}")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def _tables_b(B: dict, blob: dict, study: dict) -> list[str]:
    experts = {(e["H"], e["spread"]): e for e in blob["experts"]}
    out = ["## (b) Verifier-based vs verifier-free, heterogeneity at a fixed mean accuracy", "",
           (f"The expert: with probability 1 - spread the base heuristic NeverVerify(2), else the accuracy-optimal "
            f"planner (share w, calibrated per H on {study['calibration_problems']} problems so that the mixture is as "
            f"accurate as the base heuristic) or AnswerAfterK(1). The base policy clones {study['base_traces_per_episode']} x H "
            f"expert traces; then from that base each arm gets n = {study['traces_per_episode']} x H traces: VF clones "
            f"more expert traces, VB (STaR) keeps its own correct rollouts, VB-RL runs GRPO on its own rollouts "
            f"({study['rl_iterations_b']} iterations, entropy bonus {study['entropy_coef']}); lr {study['lr_b']}. sigma: the std of the anytime reward over one problem's expert traces; "
            f"kappa: the share of a problem's traces at least one sigma above its mean."), "",
           "| H | spread | w | expert acc | sigma | kappa | base | " + " | ".join(ARMS_B) + " | VB − VF | VB-RL − VF |",
           "|---|---|---|---|---|---|---|" + "---|" * len(ARMS_B) + "---|---|"]
    for (H, spread), runs in sorted(B.items()):
        e = experts.get((H, spread), {})
        share = blob["shares"][str(H)]["strong_share"]
        cells = [format_mean_interval([r[arm] for r in runs.values()]) for arm in ARMS_B]
        vb = format_mean_interval([r[VB] - r[VF] for r in runs.values()])
        rl = format_mean_interval([r[VB_RL] - r[VF] for r in runs.values()])
        out.append(f"| {H} | {spread} | {share:.3f} | {e.get('accuracy', float('nan')):.3f} | {e.get('sigma', float('nan')):.3f} | "
                   f"{e.get('kappa', float('nan')):.3f} | {format_mean_interval([r['base'] for r in runs.values()])} | " + " | ".join(cells) +
                   f" | {vb} | {rl} |")
    return out + [""]
