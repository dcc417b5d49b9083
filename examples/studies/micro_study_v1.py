"""MRT vs outcome-only RL on a CPU: the micro-reasoner trained with GRPO, MRT, STaR and MRT-STaR
(issue 15, point 3): the first, unpowered micro study, superseded by the pre-registered one
(micro_study_plan.md, micro_study.py) and kept to reproduce examples/studies/micro_study_v1.md and its PNGs.

    python examples/studies/micro_study_v1.py --out examples/studies/micro_study_v1.md

Every run starts from the shipped base checkpoint (`make_engine("micro")`) and trains with the LLM
trainer (`ttc_gym.training.llm_train.train`, the policy as its own prover, docs/formulation.md
§2, §4) on problems of `--source` at budget H; then the trained policy is evaluated on held-out
problems at H and at 2H (budget extrapolation), with the same evaluation seeds for every run
(common random numbers: differences between runs are paired). Per algorithm and seed: held-out
accuracy, normalized token regret (docs/formulation.md §5, C0 = H x max episode tokens), tokens used,
J after each episode, and the training curve. Paired tests: for each seed the difference between
two algorithms (trained from the same seed), its mean over seeds with a t interval, and a
bootstrap interval over held-out problems of the seed-averaged difference.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from micro_eval import Record, evaluate, heldout_problems, summary  # noqa: E402

from ttc_gym import metrics  # noqa: E402
from ttc_gym.engines import make_engine  # noqa: E402
from ttc_gym.micro.checkpoint import micro_checkpoint_dir  # noqa: E402

ALGOS = ("grpo", "mrt", "star", "mrt-star")
PAIRS = (("mrt", "grpo"), ("mrt-star", "star"), ("mrt", "star"), ("grpo", "base"), ("mrt", "base"),
         ("star", "base"), ("mrt-star", "base"))
# The committed results' "mrt" is the per-episode estimator named `mrt-online-raw` since the paper's
# recipe (branches of a prefix) took the name `mrt` (issue 27): the row keeps its label, the trainer
# runs the estimator the results were made with. Rerunning with the paper's recipe is the study issue's work.
TRAINER_ALGO = {"mrt": "mrt-online-raw"}
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def run_one(args, algo: str, seed: int, heldout: list, out: Path) -> dict:
    import torch

    from ttc_gym.training.llm_config import LLMTrainConfig
    from ttc_gym.training.llm_train import train

    torch.set_num_threads(args.threads)
    engine = make_engine("micro")
    config = LLMTrainConfig(
        algo=TRAINER_ALGO.get(algo, algo), model=str(micro_checkpoint_dir()), seed=seed, iterations=args.iterations,
        problems_per_iter=args.problems_per_iter, group_size=args.group_size, micro_batch_size=args.group_size * args.problems_per_iter,
        lr=args.lr, temperature=args.temperature, max_episode_tokens=args.max_episode_tokens, max_episodes=args.H,
        num_prover_samples=args.K, source=args.source, alpha=args.alpha, out=str(out / f"{algo}-seed{seed}"),
        tensorboard=False, report_to=args.report_to, torch_threads=args.threads)
    begin = time.perf_counter()
    result = train(config, policy_engine=engine)
    train_s = time.perf_counter() - begin
    evals = {}
    for budget in (args.H, 2 * args.H):
        records = evaluate(engine, heldout, H=budget, G=args.eval_group, temperature=args.temperature, K=args.K,
                           max_episode_tokens=args.max_episode_tokens, seed=args.eval_seed)
        evals[budget] = [vars(r) for r in records]
    return {"algo": algo, "seed": seed, "history": result.history, "train_s": train_s,
            "iteration_s": train_s / max(1, result.step), "evals": evals,
            "eval_s": time.perf_counter() - begin - train_s}


def base_eval(args, heldout: list) -> dict:
    engine = make_engine("micro")
    begin = time.perf_counter()
    evals = {budget: [vars(r) for r in evaluate(engine, heldout, H=budget, G=args.eval_group, temperature=args.temperature,
                                                K=args.K, max_episode_tokens=args.max_episode_tokens, seed=args.eval_seed)]
             for budget in (args.H, 2 * args.H)}
    return {"algo": "base", "seed": None, "history": [], "evals": evals, "eval_s": time.perf_counter() - begin}


def records_of(run: dict, budget: int) -> list[Record]:
    """The evaluation records of a run (as read back from the results file: budgets are strings)."""
    return [Record(**r) for r in run["evals"][str(budget)]]


def per_problem_outcomes(records: list[Record]) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for r in records:
        out.setdefault(f"{r.problem_id}#{r.group}", []).append(r.outcome)
    return {k: float(np.mean(v)) for k, v in sorted(out.items())}


def t_interval(diffs: list[float]) -> tuple[float, float, float]:
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return float(d.mean()), float("nan"), float("nan")
    half = T95.get(d.size - 1, 1.96) * d.std(ddof=1) / np.sqrt(d.size)
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def render(results: dict, args, wall_s: float, command: str) -> str:
    H = args.H
    runs = results["runs"]
    base = results["base"]
    algos = [a for a in ALGOS if any(r["algo"] == a for r in runs)]
    seeds = sorted({r["seed"] for r in runs})
    lines = ["# Micro-reasoner study: GRPO vs MRT vs STaR vs MRT-STaR on a CPU\n",
             f"Command: `{command}`  \nWall time: {wall_s / 60:.1f} min on this machine (2 CPU cores shared with "
             f"other jobs); one training iteration took {np.mean([r['iteration_s'] for r in runs]):.1f} s on average.\n"]
    if args.reduced_note:
        lines.append(f"**Reduced study:** {args.reduced_note}\n")
    lines.append(
        f"Setup: base = the shipped micro-reasoner (`make_engine(\"micro\")`). Each run trains it with "
        f"`ttc_gym.training.llm_train.train` on `{args.source}` at budget H = {H} episodes for "
        f"{args.iterations} iterations of {args.problems_per_iter} problems x {args.group_size} rollouts, lr {args.lr}, "
        f"episodes sampled at temperature {args.temperature} (max {args.max_episode_tokens} tokens), the policy as "
        f"its own prover with K = {args.K}, alpha = {args.alpha}; seeds {seeds}. Held-out evaluation: "
        f"{args.eval_problems} problems of `{args.source}` (drawn apart from training), {args.eval_group} rollouts "
        f"each at temperature {args.temperature}, same evaluation seeds for every run; at H = {H} and at 2H = {2 * H} "
        f"(train at H, evaluate at 2H). Token regret: `metrics.normalized_token_regret`, C0 = H x "
        f"{args.max_episode_tokens} tokens, J* = 1.\n")
    head = ["algo", "runs", f"acc@{H}", f"acc@{2 * H}", f"token regret@{H}", f"tokens@{H}", f"episodes@{H}",
            "J_0", f"J_{H}", "train s/run"]
    lines += ["## Held-out results (mean over seeds ± standard error across seeds)\n", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)]

    def stats(rs: list[dict], budget: int) -> list[dict]:
        return [summary(records_of(r, budget), budget, args.max_episode_tokens) for r in rs]

    def fmt(values: list[float]) -> str:
        m, se = metrics.mean_and_stderr(values)
        return f"{m:.3f}" + (f" ± {se:.3f}" if len(values) > 1 else "")

    for algo in ["base", *algos]:
        rs = [base] if algo == "base" else [r for r in runs if r["algo"] == algo]
        sH, s2H = stats(rs, H), stats(rs, 2 * H)
        lines.append("| " + " | ".join([
            algo, str(len(rs)), fmt([s["accuracy"] for s in sH]), fmt([s["accuracy"] for s in s2H]),
            fmt([s["token_regret"] for s in sH]), fmt([s["tokens"] for s in sH]), fmt([s["episodes"] for s in sH]),
            fmt([s["J"][0] for s in sH]), fmt([s["J"][H] for s in sH]),
            "" if algo == "base" else f"{np.mean([r['train_s'] for r in rs]):.0f}"]) + " |")
    lines += ["", "## Paired comparisons (held-out accuracy)\n",
              "Per seed: the difference of the two runs' held-out accuracy (same training seed, same evaluation "
              "seeds); across seeds: mean and 95 % t interval. Pooled: the seed-averaged per-(problem, rollout) "
              "outcome difference with a 95 % bootstrap interval over held-out problems (`metrics.bootstrap_ci`). "
              "'base' is the untrained checkpoint.\n",
              "| comparison | budget | per-seed differences | mean [95 % t interval] | pooled [95 % bootstrap] |",
              "|---|---|---|---|---|"]
    for a, b in PAIRS:
        if a not in algos or (b != "base" and b not in algos):
            continue
        for budget in (H, 2 * H):
            diffs, pooled = [], []
            for seed in seeds:
                ra = next((r for r in runs if r["algo"] == a and r["seed"] == seed), None)
                rb = base if b == "base" else next((r for r in runs if r["algo"] == b and r["seed"] == seed), None)
                if ra is None or rb is None:
                    continue
                pa, pb = per_problem_outcomes(records_of(ra, budget)), per_problem_outcomes(records_of(rb, budget))
                diffs.append(float(np.mean(list(pa.values())) - np.mean(list(pb.values()))))
                pooled.append([pa[k] - pb[k] for k in sorted(pa)])
            if not diffs:
                continue
            mean, lo, hi = t_interval(diffs)
            per_problem = np.mean(np.array(pooled), axis=0)
            blo, bhi = metrics.bootstrap_ci(per_problem, seed=0)
            lines.append(f"| {a} − {b} | {budget} | {', '.join(f'{d:+.3f}' for d in diffs)} | {mean:+.3f} "
                         f"[{lo:+.3f}, {hi:+.3f}] | {per_problem.mean():+.3f} [{blo:+.3f}, {bhi:+.3f}] |")
    lines += ["", "## J after each episode on held-out problems (mean over seeds)\n",
              "| algo | " + " | ".join(f"J_{j}" for j in range(2 * H + 1)) + " |", "|---|" + "---|" * (2 * H + 1)]
    for algo in ["base", *algos]:
        rs = [base] if algo == "base" else [r for r in runs if r["algo"] == algo]
        curves = np.mean([summary(records_of(r, 2 * H), 2 * H, args.max_episode_tokens)["J"] for r in rs], axis=0)
        lines.append(f"| {algo} (budget {2 * H}) | " + " | ".join(f"{j:.2f}" for j in curves) + " |")
    lines += ["", "## Learning curves\n", "![training outcome per iteration](micro_study_v1_curves.png)\n",
              "![held-out J after each episode](micro_study_v1_j.png)\n",
              "Training-batch outcome (mean over the iteration's rollouts, then over seeds) every iteration:\n",
              "| algo | " + " | ".join(f"it {k}" for k in range(1, args.iterations + 1, max(1, args.iterations // 8))) + " |",
              "|---|" + "---|" * len(range(1, args.iterations + 1, max(1, args.iterations // 8)))]
    for algo in algos:
        rs = [r for r in runs if r["algo"] == algo]
        curve = np.mean([[row["outcome"] for row in r["history"]] for r in rs], axis=0)
        lines.append(f"| {algo} | " + " | ".join(f"{curve[k - 1]:.2f}" for k in range(1, args.iterations + 1, max(1, args.iterations // 8))) + " |")
    return "\n".join(lines) + "\n"


def plots(results: dict, args, out_md: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    algos = [a for a in ALGOS if any(r["algo"] == a for r in runs)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    window = min(3, args.iterations)
    for algo in algos:
        curves = np.array([[row["outcome"] for row in r["history"]] for r in runs if r["algo"] == algo])
        mean = curves.mean(axis=0)
        smooth = np.convolve(mean, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(mean) + 1), smooth, label=algo)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"training outcome (moving mean of {window})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_md.with_name("micro_study_v1_curves.png"), dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    H2 = 2 * args.H
    for algo in ["base", *algos]:
        rs = [results["base"]] if algo == "base" else [r for r in runs if r["algo"] == algo]
        curve = np.mean([summary(records_of(r, H2), H2, args.max_episode_tokens)["J"] for r in rs], axis=0)
        ax.plot(range(H2 + 1), curve, marker="o", ms=3, label=algo, linestyle="--" if algo == "base" else "-")
    ax.axvline(args.H, color="grey", lw=0.8)
    ax.set_xlabel("episodes (training budget H marked)")
    ax.set_ylabel("held-out J (forced-answer accuracy)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_md.with_name("micro_study_v1_j.png"), dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--problems-per-iter", type=int, default=4)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-episode-tokens", type=int, default=48)
    p.add_argument("--H", type=int, default=4)
    p.add_argument("--K", type=int, default=4)
    p.add_argument("--source", default="micro:1-3")
    p.add_argument("--eval-problems", type=int, default=48)
    p.add_argument("--eval-group", type=int, default=2)
    p.add_argument("--eval-seed", type=int, default=12345)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs-dir", default="runs/micro_study")
    p.add_argument("--out", default="examples/studies/micro_study_v1.md")
    p.add_argument("--json", default=None, help="results file (default: beside --out, .json); existing runs in it are reused")
    p.add_argument("--report-to", default="none", help="experiment tracking of every training run: tensorboard, "
                   "wandb (offline), none; under --runs-dir/<algo>-seed<N>/ (ttc_gym/training/tracking.py)")
    p.add_argument("--reduced-note", default="", help="a sentence for the header when the study is cut down")
    args = p.parse_args(argv)
    command = "python examples/studies/micro_study_v1.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    out_md = Path(args.out)
    json_path = Path(args.json) if args.json else out_md.with_suffix(".json")
    results = json.loads(json_path.read_text()) if json_path.is_file() else {"runs": [], "base": None, "wall_s": 0.0}
    begin = time.perf_counter()
    heldout = heldout_problems(args.source, args.eval_problems, args.eval_seed)
    runs_dir = Path(args.runs_dir)
    out_md.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        results["wall_s_this_call"] = time.perf_counter() - begin
        json_path.write_text(json.dumps(results))

    if results["base"] is None:
        results["base"] = json.loads(json.dumps(base_eval(args, heldout)))
        save()
    for seed in range(args.seeds):
        for algo in args.algos.split(","):
            if any(r["algo"] == algo and r["seed"] == seed for r in results["runs"]):
                continue
            run = run_one(args, algo, seed, heldout, runs_dir)
            results["runs"].append(json.loads(json.dumps(run)))
            save()
            print(f"{algo} seed {seed}: train {run['train_s']:.0f}s, eval {run['eval_s']:.0f}s, "
                  f"acc@H {summary([Record(**r) for r in run['evals'][args.H]], args.H)['accuracy']:.3f}", flush=True)
    results["wall_s"] = results.get("wall_s", 0.0) + time.perf_counter() - begin
    save()
    results = json.loads(json_path.read_text())
    out_md.write_text(render(results, args, results["wall_s"], command))
    plots(results, args, out_md)
    print(out_md.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
