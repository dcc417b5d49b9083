"""Reproduction study on TTC-Sim-v0, with the simulator's knobs for exploration, overthinking, token
lengths and budget-agnostic observation: (a) MRT vs outcome-only GRPO, Dr. GRPO, the reward-to-go
form, STaR and MRT-STaR, against the DP optimum; (b) verifier-based vs verifier-free learning from an
expert whose own heterogeneity is varied, as the budget H grows. Writes examples/sim_study.md and
examples/sim_study_*.png.

    python examples/sim_study.py --save-results runs/sim_study.json   # the full study
    python examples/sim_study.py --quick                              # 2 seeds, short runs (< 10 min)
    python examples/sim_study.py --from-results runs/sim_study.json   # rewrite the report only

Every run is one `ttc_gym.agents.training.sim_train.train(SimTrainConfig(...))`; every policy is
evaluated on the same problems (fixed evaluation seeds). Intervals are 95% t-intervals over seeds;
every comparison is paired by seed (same seed: same initial weights, same training problems).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BASE_TOKENS = 256  # TTC-Sim-v0's default tokens per episode: C0 = H x 256 for the token regret

# -- the settings, chosen from the phenomena before any result was seen (the report prints this) ---------
COMMON_A = {"heterogeneity": 0.95, "switch_keep": 0.5, "tokens_per_action": [256, 192, 128]}
SETTINGS_A = {
    "explore": dict(COMMON_A),
    "explore+overthink": {**COMMON_A, "overthink": 0.25, "observe_episodes": False, "answer_on_truncation": False},
}
SETTINGS_RATIONALE = """The two settings of (a) were fixed from the phenomena the papers describe, before any run:

- **explore** — `heterogeneity=0.95` (a dead-end strategy almost never progresses, so the optimum must
  give up on a strategy and switch: exploration matters), `switch_keep=0.5` (a switch keeps half of the
  steps done, so exploring no longer earns negative progress by construction: the issue's first
  complaint), `tokens_per_action=(256, 192, 128)` (continue / switch / verify episodes have different,
  sampled lengths, so tokens are an axis of their own). The episode count is observed and the answer
  is forced at H, as in the first release.
- **explore+overthink** — the same, plus `overthink=0.25` (an episode that continues past a candidate
  rewrites it one time in four, and a rewritten answer is wrong half the time: J falls when a model
  keeps thinking after it has an answer, MRT's observation on R1-style models), `observe_episodes=False`
  (the policy does not see how much budget it has spent, as an LLM does not: extrapolation to 2H and 4H
  is then a real test), `answer_on_truncation=False` (a trace still thinking at the budget's end scores
  0, as a truncated R1 output: running out of budget costs).

H = {H} for training in both. (b) uses the first-release env (all knobs off, heterogeneity 0.8) and
varies the expert only."""


@dataclass
class Study:
    seeds: int = 6
    # (a)
    train_budget: int = 8
    iterations: int = 100  # policy updates / STaR rounds per run
    batch_size: int = 128  # trajectories per iteration (16 problems x G = 8 for the RL methods)
    group_size: int = 8
    lr: float = 0.02
    curve_every: int = 10  # learning curves: evaluate every this many iterations ...
    curve_problems: int = 300  # ... on this many problems
    # (b)
    budgets_b: tuple = (4, 8, 16)
    spreads_b: tuple = (0.0, 0.5, 1.0)
    trajectories_per_episode_b: int = 640  # data scales with H: 640 x H trajectories per run
    rl_iterations_b: int = 40
    sft_rounds_b: int = 10
    eval_problems: int = 2000
    expert_problems_b: int = 200  # problems x traces for the expert's sigma and anti-concentration
    expert_traces_b: int = 16
    workers: int = 2


QUICK = dict(seeds=2, iterations=40, curve_every=10, curve_problems=200, budgets_b=(4, 8), spreads_b=(0.0, 1.0),
             eval_problems=500,
             expert_problems_b=80, expert_traces_b=8)

# (label, algo, config overrides). Dr. GRPO is GRPO's advantage without the std division
# (docs/formulation.md §4; algorithms.outcome_advantages(scale=False)); the loss is a token mean over
# the batch, without the per-response length normalization Dr. GRPO also removes.
METHODS_A = (
    ("GRPO", "grpo", {}),
    ("Dr. GRPO", "grpo", {"adv_scale": False}),
    ("MRT", "mrt", {}),
    ("MRT-rtg", "mrt-rtg", {}),
    ("STaR", "star", {}),
    ("MRT-STaR", "mrt-star", {}),
)
VF, VB, RL = "SFT (verifier-free)", "STaR (verifier-based)", "RL: GRPO (verifier-based)"


# -- one training run ----------------------------------------------------------------------------------
def _anytime(curve, H: int) -> float:
    """Mean over b = 1..H of J after b episodes (held after the answer): the anytime reward of a trace."""
    from ttc_gym.metrics import pad_curve

    return float(np.mean(pad_curve(curve, H + 1)[1:]))


def _evaluate(policy, env_kwargs: dict, H: int, problems: int, star_curve=None, star_h=None) -> dict:
    from ttc_gym.agents.training.sim_train import evaluate_policy
    from ttc_gym.metrics import cumulative_regret, normalized_token_regret, pad_curve

    traces = evaluate_policy(policy, {**env_kwargs, "max_episodes": H}, problems=problems)
    out = {
        "accuracy": float(np.mean([t.outcome for t in traces])),
        "tokens": float(np.mean([t.token_curve[-1] for t in traces])),
        "episodes": float(np.mean([t.episodes_used for t in traces])),
        "anytime": float(np.mean([_anytime(t.j_curve, H) for t in traces])),
    }
    if star_curve is not None:
        star = np.asarray(star_curve[: H + 1])
        out["episode_regret"] = float(np.mean([cumulative_regret(pad_curve(t.j_curve, H + 1), star)[-1] / H for t in traces]))
        out["token_regret"] = float(np.mean([
            normalized_token_regret(t.token_curve, t.j_curve, H * BASE_TOKENS, j_star=star_h) for t in traces]))
    return out


def _job(args):
    """Train one policy and evaluate it (runs in a worker process)."""
    import torch

    torch.set_num_threads(1)
    from ttc_gym.agents.training.sim_config import SimTrainConfig
    from ttc_gym.agents.training.sim_train import train

    part, key, cfg_kwargs, extra = args
    config = SimTrainConfig(**cfg_kwargs)
    result = train(config)
    H = config.max_episodes
    env = config.make_env_kwargs()
    out = {"part": part, "key": key, "seed": config.seed, "train_s": result.wall_s}
    if part == "a":
        out["curve"] = [(row["step"] * config.batch_size, row["eval_accuracy"]) for row in result.history
                        if row.get("eval_accuracy") not in (None, "")]
        for mult in (1, 2, 4):
            ev = _evaluate(result.policy, env, mult * H, extra["eval_problems"], extra["star_curve"], extra["star_h"][mult])
            out.update({f"{k}@{mult}H": v for k, v in ev.items()})
    else:
        out.update(_evaluate(result.policy, env, H, extra["eval_problems"]))
    return out


def _expert_job(args):
    """The expert's accuracy and anytime reward, and its heterogeneity on each problem: the std of the
    anytime reward over `traces` traces of the same problem (sigma), and the anti-concentration
    estimate kappa = the share of a problem's traces at least one sigma above that problem's mean
    (over problems with sigma > 0). Also the std of the 0/1 outcome, the earlier study's measure."""
    H, spread, problems, traces_per, eval_problems = args
    import gymnasium as gym

    import ttc_gym  # noqa: F401
    from ttc_gym.agents.training.experts import HeterogeneousExpert
    from ttc_gym.agents.training.sim_rollout import AgentsActor, make_envs, rollout
    from ttc_gym.agents.training.sim_train import evaluate_policy

    kwargs = {"max_episodes": H}
    model = gym.make("TTC-Sim-v0", **kwargs).unwrapped.model
    expert = HeterogeneousExpert(H, seed=12345, spread=spread, model=model)
    ev = evaluate_policy(None, kwargs, problems=eval_problems, actor=AgentsActor(expert.agents(eval_problems)),
                         chunk=eval_problems)
    G, P = traces_per, problems
    envs = make_envs(G * P, **kwargs)
    tr = rollout(envs, AgentsActor(expert.agents(G * P)), np.repeat(np.arange(P) + 777_000, G),
                 groups=np.repeat(np.arange(P), G), noise_seeds=np.arange(G * P) + 999_000)
    anytime = np.array([_anytime(t.j_curve, H) for t in tr]).reshape(P, G)
    outcome = np.array([t.outcome for t in tr]).reshape(P, G)
    sigma = anytime.std(axis=1)
    above = (anytime >= anytime.mean(axis=1, keepdims=True) + sigma[:, None] - 1e-12).mean(axis=1)
    return {"H": H, "spread": spread, "accuracy": float(np.mean([t.outcome for t in ev])),
            "anytime": float(np.mean([_anytime(t.j_curve, H) for t in ev])), "sigma": float(sigma.mean()),
            "kappa": float(above[sigma > 1e-9].mean()) if (sigma > 1e-9).any() else 0.0,
            "sigma_outcome": float(outcome.std(axis=1).mean())}


def _dp_lines(study: Study) -> dict:
    """The DP optimum of each env: J*_j curves (the regret comparator: best forced-answer accuracy with j
    episodes) and the accuracy optimum J*_b at b = H, 2H, 4H of the env as it is (unanswered = wrong
    where the setting says so)."""
    import gymnasium as gym

    import ttc_gym  # noqa: F401
    from ttc_gym.agents.oracle import j_star_curve

    H = study.train_budget
    lines = {"a": {}, "b": {}}
    for name, env in SETTINGS_A.items():
        forced = {**env, "answer_on_truncation": True}
        curve = j_star_curve(gym.make("TTC-Sim-v0", **{**forced, "max_episodes": 4 * H}).unwrapped.model).tolist()
        star_h = {m: float(j_star_curve(gym.make("TTC-Sim-v0", **{**env, "max_episodes": m * H}).unwrapped.model)[-1])
                  for m in (1, 2, 4)}
        lines["a"][name] = {"curve": curve, "star_h": star_h}
    from ttc_gym.agents.oracle import AccuracyOracleAgent

    for Hb in study.budgets_b:
        model = gym.make("TTC-Sim-v0", max_episodes=Hb).unwrapped.model
        oracle = AccuracyOracleAgent(model)
        lines["b"][Hb] = {"accuracy": float(j_star_curve(model)[-1]),
                          "anytime": float(np.mean(oracle.expected_j_curve()[1:]))}
    return lines


def jobs_for(study: Study, lines: dict) -> list:
    jobs = []
    base = {"batch_size": study.batch_size, "group_size": study.group_size, "lr": study.lr}
    H = study.train_budget
    for name, env in SETTINGS_A.items():
        env_kwargs = {k: v for k, v in env.items() if k != "heterogeneity"}
        extra = {"eval_problems": study.eval_problems, "star_curve": lines["a"][name]["curve"],
                 "star_h": {int(k): v for k, v in lines["a"][name]["star_h"].items()}}
        for label, algo, over in METHODS_A:
            for seed in range(study.seeds):
                cfg = {**base, "algo": algo, "seed": seed, "iterations": study.iterations, "max_episodes": H,
                       "heterogeneity": env["heterogeneity"], "env_kwargs": env_kwargs,
                       "eval_every": study.curve_every, "eval_problems": study.curve_problems, **over}
                jobs.append(("a", (name, label), cfg, extra))
    extra_b = {"eval_problems": study.eval_problems}
    for Hb in study.budgets_b:
        data = study.trajectories_per_episode_b * Hb
        for seed in range(study.seeds):
            rl_batch = data // study.rl_iterations_b
            rl_batch -= rl_batch % study.group_size
            jobs.append(("b", (Hb, None, RL), {**base, "algo": "grpo", "seed": seed, "max_episodes": Hb,
                                               "iterations": study.rl_iterations_b, "batch_size": rl_batch}, extra_b))
            for spread in study.spreads_b:
                for label, algo in ((VF, "sft"), (VB, "star")):
                    cfg = {**base, "algo": algo, "seed": seed, "max_episodes": Hb, "trace_source": "expert",
                           "expert_spread": spread, "sft_steps": 5, "iterations": study.sft_rounds_b,
                           "batch_size": data // study.sft_rounds_b}
                    jobs.append(("b", (Hb, spread, label), cfg, extra_b))
    # Longest first: better packing on few workers.
    from ttc_gym.agents.training.algorithms import RL_ALGOS

    return sorted(jobs, key=lambda j: -(j[2]["max_episodes"] * j[2]["iterations"] * j[2]["batch_size"])
                  * (3 if j[2]["algo"] in RL_ALGOS else 1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, short runs, fewer settings of (b): a smoke test")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "sim_study.md"))
    parser.add_argument("--save-results", help="also dump the raw per-run results to this JSON file")
    parser.add_argument("--from-results", help="skip training: rewrite the report from a --save-results file")
    args = parser.parse_args(argv)
    study = Study(workers=args.workers)
    if args.quick:
        study = replace(study, **QUICK)
    if args.seeds:
        study = replace(study, seeds=args.seeds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.from_results:
        blob = json.loads(Path(args.from_results).read_text())
        saved = replace(study, **{k: tuple(v) if isinstance(v, list) else v for k, v in blob["study"].items()})
        write_report(out, saved, blob["results"], blob["experts"], _fix_lines(blob["lines"]), blob["wall"],
                     command=blob["command"])
        print(f"wrote {out} from {args.from_results}")
        return 0
    command = "python examples/sim_study.py" + (" --quick" if args.quick else "") + (
        f" --seeds {args.seeds}" if args.seeds else "") + (f" --workers {args.workers}" if args.workers != 2 else "")
    start = time.perf_counter()
    lines = _dp_lines(study)
    jobs = jobs_for(study, lines)
    expert_jobs = [(Hb, s, study.expert_problems_b, study.expert_traces_b, study.eval_problems)
                   for Hb in study.budgets_b for s in study.spreads_b]
    print(f"{len(jobs)} training runs + {len(expert_jobs)} expert measurements on {study.workers} workers ...", flush=True)
    with mp.get_context("spawn").Pool(study.workers) as pool:
        experts = pool.map(_expert_job, expert_jobs)
        results = []
        for i, r in enumerate(pool.imap_unordered(_job, jobs), 1):
            results.append(r)
            if i % 20 == 0 or i == len(jobs):
                print(f"  {i}/{len(jobs)} runs done ({time.perf_counter() - start:.0f}s)", flush=True)
    wall = time.perf_counter() - start
    if args.save_results:
        Path(args.save_results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save_results).write_text(json.dumps({
            "study": asdict(study), "results": results, "experts": experts, "lines": lines, "wall": wall,
            "command": command}))
    write_report(out, study, results, experts, lines, wall, command=command)
    print(f"wrote {out} in {wall:.0f}s")
    return 0


def _fix_lines(lines: dict) -> dict:
    """JSON turned the int keys of the DP lines into strings: turn them back."""
    for v in lines["a"].values():
        v["star_h"] = {int(k): x for k, x in v["star_h"].items()}
    lines["b"] = {int(k): v for k, v in lines["b"].items()}
    return lines


# -- statistics -------------------------------------------------------------------------------------
T95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}


def _interval(values) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval over seeds."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return float(x.mean()), float("nan")
    return float(x.mean()), float(T95.get(x.size, 1.96) * x.std(ddof=1) / np.sqrt(x.size))


def _fmt(values, digits=3) -> str:
    m, h = _interval(values)
    return f"{m:.{digits}f} ± {h:.{digits}f}"


def _paired_values(a_runs, b_runs, field) -> list[float]:
    """a - b on the seeds both have."""
    b_by = {r["seed"]: r for r in b_runs}
    return [r[field] - b_by[r["seed"]][field] for r in a_runs if r["seed"] in b_by]


def _verdict(mean: float, half: float, sign: int) -> str:
    """Does a difference go the claimed way (sign +1: positive), and is its interval clear of 0?"""
    if not np.isfinite(half):
        return "n/a (one seed)"
    if mean * sign > 0:
        return "**reproduced**" if abs(mean) > half else "same direction, not significant"
    return "**opposite** (significant)" if abs(mean) > half else "not reproduced (opposite sign, not significant)"


def _by(results, part):
    out: dict = {}
    for r in results:
        if r["part"] == part:
            out.setdefault(tuple(r["key"]), []).append(r)
    for runs in out.values():
        runs.sort(key=lambda r: r["seed"])
    return out


def _curve_area(run) -> float:
    """Mean evaluation accuracy over the learning curve's points (the area under it, per point)."""
    return float(np.mean([acc for _, acc in run["curve"]])) if run["curve"] else float("nan")


# -- the report -------------------------------------------------------------------------------------
def write_report(path: Path, study: Study, results: list, experts: list, lines: dict, wall: float, *, command: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    H = study.train_budget
    A, B = _by(results, "a"), _by(results, "b")
    for runs in A.values():
        for r in runs:
            r["curve_area"] = _curve_area(r)
    claims: list[tuple] = []  # (claim, source, setting, measure, mean, half, verdict)

    def claim(text, source, setting, measure, diffs, sign):
        m, h = _interval(diffs)
        claims.append((text, source, setting, measure, m, h, _verdict(m, h, sign)))
        return m, h

    out = [
        "# TTC-Sim-v0 reproduction study: MRT vs outcome-only RL, verifier-based vs verifier-free",
        "",
        (f"Generated by `{command}` in {wall:.0f} s wall time on {study.workers} worker processes of a shared "
         f"2-core machine ({len(results)} training runs, {sum(r['train_s'] for r in results):.0f} s of training in all). "
         f"Every number is a mean over {study.seeds} seeds ± the half-width of a 95% t-interval; every "
         f"difference is paired by seed (same seed: same initial weights and training problems), with its own "
         f"95% interval. Each policy is evaluated on the same {study.eval_problems} problems, sampling its actions. "
         "Policy: an MLP (64 hidden units) over the one-hot observation, Adam. No method was tuned: one setting "
         "of every hyper-parameter for all, written below."),
        "",
        "## Settings (chosen before the runs)",
        "",
        SETTINGS_RATIONALE.replace("{H}", str(H)),
        "",
        "Every setting that was run is reported below; nothing was dropped.",
        "",
        f"## (a) MRT vs GRPO, Dr. GRPO, the reward-to-go form, STaR and MRT-STaR (training budget H = {H})",
        "",
        (f"Training: {study.iterations} iterations of {study.batch_size} trajectories (RL: "
         f"{study.batch_size // study.group_size} problems x G = {study.group_size}, the G rollouts of one problem share it; "
         f"STaR / MRT-STaR: self-training rounds, {study.batch_size} rollouts of the current policy, 10 SFT steps on the "
         f"kept ones), lr {study.lr}, the 0/1 outcome as the reward (no episode cost), alpha = 1 for MRT and MRT-rtg. "
         "MRT: A_ij = A_i + alpha * p_ij (the paper's estimator, `mrt`); MRT-rtg: outcome advantage + alpha * z-score "
         "of the progress-to-go (`mrt-rtg`); Dr. GRPO: GRPO without the std division (`grpo --no-adv-scale`; our "
         "loss is a token mean over the batch, so it has no per-response length normalization either)."),
        "",
        ("Columns: acc@H — accuracy of the final answer in the training env (DP optimum J*_H in the header row); "
         "regret_j — normalized episode regret against the DP comparator J*_j, (1/H) sum_{j=1..H} (J*_j - J_j), J*_j "
         "the best forced-answer accuracy reachable with j episodes; regret_tok — MRT's normalized token regret, "
         f"J*_H - area under J(tokens) / C0 with C0 = H x {BASE_TOKENS}; tokens — tokens used per problem at H; "
         "acc@2H, acc@4H — accuracy when the same policy runs with budget 2H, 4H (extrapolation; with the episode "
         "count observed the policy sees times >= H-1 as H-1); curve — mean evaluation accuracy over the learning "
         f"curve ({study.curve_problems} problems every {study.curve_every} iterations): higher = learns faster."),
        "",
    ]
    for name in SETTINGS_A:
        star = lines["a"][name]["star_h"]
        out += [
            f"### setting `{name}`",
            "",
            "| method | acc@H | regret_j | regret_tok | tokens@H | episodes@H | acc@2H | acc@4H | curve |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| DP optimum (J*_b) | {star[1]:.3f} | 0 | — | — | — | {star[2]:.3f} | {star[4]:.3f} | {star[1]:.3f} |",
        ]
        for label, _, _ in METHODS_A:
            runs = A.get((name, label), [])
            if not runs:
                continue
            out.append(
                f"| {label} | {_fmt([r['accuracy@1H'] for r in runs])} | {_fmt([r['episode_regret@1H'] for r in runs])} | "
                f"{_fmt([r['token_regret@1H'] for r in runs])} | {_fmt([r['tokens@1H'] for r in runs], 0)} | "
                f"{_fmt([r['episodes@1H'] for r in runs], 2)} | {_fmt([r['accuracy@2H'] for r in runs])} | "
                f"{_fmt([r['accuracy@4H'] for r in runs])} | {_fmt([r['curve_area'] for r in runs])} |"
            )
        out += ["", "Paired differences (same seed), each method minus GRPO, then MRT minus each other method:", "",
                "| difference | acc@H | regret_j | regret_tok | tokens@H | acc@2H | acc@4H | curve |",
                "|---|---|---|---|---|---|---|---|"]
        fields = ("accuracy@1H", "episode_regret@1H", "token_regret@1H", "tokens@1H", "accuracy@2H", "accuracy@4H", "curve_area")
        pairs = [(label, "GRPO") for label, _, _ in METHODS_A if label != "GRPO"]
        pairs += [("MRT", label) for label, _, _ in METHODS_A if label not in ("GRPO", "MRT")]
        for a_label, b_label in pairs:
            a_runs, b_runs = A.get((name, a_label), []), A.get((name, b_label), [])
            if a_runs and b_runs:
                cells = " | ".join(_fmt(_paired_values(a_runs, b_runs, f), 0 if f.startswith("tokens") else 3) for f in fields)
                out.append(f"| {a_label} − {b_label} | {cells} |")
        out.append("")
        mrt, grpo = A.get((name, "MRT"), []), A.get((name, "GRPO"), [])
        if mrt and grpo:
            src = "MRT §7 (Fig. 1, Table 1)"
            claim("MRT beats outcome-only GRPO in accuracy", src, name, "acc@H", _paired_values(mrt, grpo, "accuracy@1H"), +1)
            claim("MRT has lower normalized regret than GRPO", src, name, "regret_j", _paired_values(mrt, grpo, "episode_regret@1H"), -1)
            claim("MRT has lower token regret than GRPO", src, name, "regret_tok", _paired_values(mrt, grpo, "token_regret@1H"), -1)
            claim("MRT uses fewer tokens than GRPO (token efficiency)", src, name, "tokens@H", _paired_values(mrt, grpo, "tokens@1H"), -1)
            for m in (2, 4):
                claim(f"MRT extrapolates better than GRPO ({m}H budget)", "MRT §7.2 (budget extrapolation)", name,
                      f"acc@{m}H", _paired_values(mrt, grpo, f"accuracy@{m}H"), +1)
            claim("dense progress credit speeds learning (MRT vs GRPO)", "MRT §6", name, "curve",
                  _paired_values(mrt, grpo, "curve_area"), +1)
        ms, st = A.get((name, "MRT-STaR"), []), A.get((name, "STaR"), [])
        if ms and st:
            claim("MRT-STaR beats STaR in accuracy", "MRT §7 (STaR variant)", name, "acc@H", _paired_values(ms, st, "accuracy@1H"), +1)
            claim("MRT-STaR uses fewer tokens than STaR", "MRT §7 (STaR variant)", name, "tokens@H", _paired_values(ms, st, "tokens@1H"), -1)
        dr = A.get((name, "Dr. GRPO"), [])
        if dr and grpo:
            claim("Dr. GRPO matches or beats GRPO in accuracy", "Dr. GRPO §3", name, "acc@H", _paired_values(dr, grpo, "accuracy@1H"), +1)
    # Learning-curve and budget plots.
    names = list(SETTINGS_A)
    fig, axes = plt.subplots(2, len(names), figsize=(5 * len(names), 7), squeeze=False)
    for col, name in enumerate(names):
        ax = axes[0, col]
        for label, _, _ in METHODS_A:
            runs = A.get((name, label), [])
            if runs and runs[0]["curve"]:
                xs = [x for x, _ in runs[0]["curve"]]
                ys = np.mean([[y for _, y in r["curve"]] for r in runs], axis=0)
                ax.plot(xs, ys, label=label, marker="o", ms=2)
        ax.axhline(lines["a"][name]["star_h"][1], color="k", ls="--", lw=1, label="DP optimum J*_H")
        ax.set_title(f"{name}: learning curves (H = {H})")
        ax.set_xlabel("training trajectories")
        ax.set_ylabel("accuracy at H")
        ax.legend(fontsize=7)
        ax = axes[1, col]
        mults = [1, 2, 4]
        for label, _, _ in METHODS_A:
            runs = A.get((name, label), [])
            if runs:
                stats = [_interval([r[f"accuracy@{m}H"] for r in runs]) for m in mults]
                ax.errorbar([m * H for m in mults], [s[0] for s in stats], yerr=[s[1] for s in stats], label=label,
                            capsize=3, marker="o", ms=3)
        ax.plot([m * H for m in mults], [lines["a"][name]["star_h"][m] for m in mults], "k--", label="DP optimum J*_b")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{name}: trained at H = {H}, run at budget b")
        ax.set_xlabel("budget b (episodes)")
        ax.set_ylabel("accuracy")
    fig.tight_layout()
    fig.savefig(path.with_name("sim_study_a.png"), dpi=80)
    plt.close(fig)
    out += ["![learning curves and budget extrapolation](sim_study_a.png)", ""]

    # (b)
    E = {(e["H"], e["spread"]): e for e in experts}
    out += [
        "## (b) Verifier-based vs verifier-free as the budget H grows, varying the expert's heterogeneity",
        "",
        ("Env: TTC-Sim-v0 with its first-release settings (heterogeneity 0.8), budget H. The expert "
         "(`ttc_gym.agents.training.experts.HeterogeneousExpert`, gold-free: it never reads J) follows, per problem, "
         "the base heuristic `NeverVerify(2)` with probability 1 − spread and a strategy drawn from the mixture "
         "(AnswerAfterK(k), NeverVerify(p), AnswerWhenConfident on E[J | observation]) with probability spread: "
         "spread 0 is one heuristic, 1 the full mixture. Data scale with H: every run sees "
         f"{study.trajectories_per_episode_b} x H trajectories (SFT / STaR: {study.sft_rounds_b} rounds of fresh expert "
         f"traces, 5 SFT steps each; RL: GRPO from the initial policy, {study.rl_iterations_b} iterations, the same number "
         "of trajectories, independent of the expert). Verifier-free: SFT clones every expert trace; verifier-based: "
         "STaR keeps the traces the 0/1 verifier accepts, and RL."),
        "",
        ("Expert measurements (on its own traces, per problem: "
         f"{study.expert_traces_b} traces of each of {study.expert_problems_b} problems): anytime = mean over b = 1..H "
         "of J after b episodes (the dense reward the theory's sigma is about); sigma = the std over a problem's traces "
         "of the anytime reward, averaged over problems; kappa = anti-concentration estimate, the share of a problem's "
         "traces whose anytime reward is at least one sigma above that problem's mean (problems with sigma > 0); "
         "sigma(0/1) = the same std of the 0/1 outcome (the earlier study's measure)."),
        "",
        "| H | spread | expert acc | expert anytime | sigma | kappa | sigma(0/1) | DP acc J*_H | DP anytime |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for Hb in study.budgets_b:
        for s in study.spreads_b:
            e = E.get((Hb, s))
            if e:
                out.append(f"| {Hb} | {s} | {e['accuracy']:.3f} | {e['anytime']:.3f} | {e['sigma']:.3f} | {e['kappa']:.3f} | "
                           f"{e['sigma_outcome']:.3f} | {lines['b'][Hb]['accuracy']:.3f} | {lines['b'][Hb]['anytime']:.3f} |")
    out += ["", "Trained policies (accuracy at H and anytime reward), and the gap verifier-based − verifier-free "
            "(paired by seed):", "",
            "| H | spread | SFT acc | STaR acc | RL acc | SFT anytime | STaR anytime | RL anytime | gap STaR − SFT (acc) | gap STaR − SFT (anytime) | gap RL − SFT (acc) |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    gaps: dict = {}
    for Hb in study.budgets_b:
        rl = B.get((Hb, None, RL), [])
        for s in study.spreads_b:
            vf, vb = B.get((Hb, s, VF), []), B.get((Hb, s, VB), [])
            if not (vf and vb):
                continue
            gaps[(Hb, s)] = {"acc": _paired_values(vb, vf, "accuracy"), "anytime": _paired_values(vb, vf, "anytime"),
                             "rl": _paired_values(rl, vf, "accuracy") if rl else []}
            out.append(
                f"| {Hb} | {s} | {_fmt([r['accuracy'] for r in vf])} | {_fmt([r['accuracy'] for r in vb])} | "
                f"{_fmt([r['accuracy'] for r in rl]) if rl else '—'} | {_fmt([r['anytime'] for r in vf])} | "
                f"{_fmt([r['anytime'] for r in vb])} | {_fmt([r['anytime'] for r in rl]) if rl else '—'} | "
                f"{_fmt(gaps[(Hb, s)]['acc'])} | {_fmt(gaps[(Hb, s)]['anytime'])} | "
                f"{_fmt(gaps[(Hb, s)]['rl']) if rl else '—'} |")
    out.append("")
    lo_h, hi_h = min(study.budgets_b), max(study.budgets_b)
    lo_s, hi_s = min(study.spreads_b), max(study.spreads_b)
    src = "VB-vs-VF (Setlur et al. 2025), Thm. / §5-6"
    diff_rows = []
    if (hi_h, hi_s) in gaps:
        claim("verifier-based (STaR) beats verifier-free (SFT), heterogeneous expert, largest H", src,
              f"H={hi_h}, spread={hi_s}", "acc", gaps[(hi_h, hi_s)]["acc"], +1)
        claim("verifier-based (RL) beats verifier-free (SFT) at the largest H", src, f"H={hi_h}, spread={hi_s}", "acc",
              gaps[(hi_h, hi_s)]["rl"], +1)
    for s in study.spreads_b:
        if (hi_h, s) in gaps and (lo_h, s) in gaps:
            for what in ("acc", "anytime"):
                d = [a - b for a, b in zip(gaps[(hi_h, s)][what], gaps[(lo_h, s)][what])]
                diff_rows.append((f"gap({hi_h}) − gap({lo_h}), spread {s}", what, d))
                if s == hi_s:
                    claim("the VB − VF gap grows with H (heterogeneous expert)", src, f"spread={s}", f"gap {what}: H={hi_h} − H={lo_h}", d, +1)
    for Hb in study.budgets_b:
        if (Hb, hi_s) in gaps and (Hb, lo_s) in gaps:
            for what in ("acc", "anytime"):
                d = [a - b for a, b in zip(gaps[(Hb, hi_s)][what], gaps[(Hb, lo_s)][what])]
                diff_rows.append((f"gap(spread {hi_s}) − gap(spread {lo_s}), H = {Hb}", what, d))
                if Hb == hi_h:
                    claim("the VB − VF gap is larger for a heterogeneous expert", src, f"H={Hb}", f"gap {what}: spread {hi_s} − {lo_s}", d, +1)
    if diff_rows:
        out += ["Does the gap grow? Paired by seed:", "", "| difference of gaps | measure | value |", "|---|---|---|"]
        out += [f"| {label} | {what} | {_fmt(d)} |" for label, what, d in diff_rows]
        out.append("")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for s in study.spreads_b:
        xs = [Hb for Hb in study.budgets_b if (Hb, s) in gaps]
        for ax, what in zip(axes, ("acc", "anytime")):
            st = [_interval(gaps[(Hb, s)][what]) for Hb in xs]
            e_sig = np.mean([E[(Hb, s)]["sigma"] for Hb in xs]) if xs else float("nan")
            ax.errorbar(xs, [m for m, _ in st], yerr=[h for _, h in st], capsize=3, marker="o", ms=3,
                        label=f"spread {s} (sigma {e_sig:.2f})")
    for ax, what in zip(axes, ("accuracy at H", "anytime reward")):
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("budget H (episodes; data ∝ H)")
        ax.set_ylabel(f"STaR − SFT, {what}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path.with_name("sim_study_b.png"), dpi=80)
    plt.close(fig)
    out += ["![gap vs H](sim_study_b.png)", ""]

    out += [
        "## Which of the papers' claims the simulator reproduces",
        "",
        ("Each row: the claim, its source, the setting, the paired difference (claimed direction: the first-named "
         "method better) with its 95% interval over seeds, and the verdict: **reproduced** = the claimed direction "
         "and an interval clear of 0; \"same direction, not significant\"; \"not reproduced\" = the opposite sign "
         "within noise; **opposite** = the opposite sign with an interval clear of 0."),
        "",
        "| claim | source | setting | measure | difference | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for text, source, setting, measure, m, h, verdict in claims:
        digits = 0 if measure.startswith("tokens") else 3
        out.append(f"| {text} | {source} | {setting} | {measure} | {m:+.{digits}f} ± {h:.{digits}f} | {verdict} |")
    out += ["", FINDINGS]
    path.write_text("\n".join(out) + "\n")


FINDINGS = """## Reading the results

(Written after the full run; see the tables above for every number.)
"""


if __name__ == "__main__":
    raise SystemExit(main())
