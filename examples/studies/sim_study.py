"""The pre-registered TTC-Sim-v0 study (plan: examples/studies/sim_study_plan.md): (a) MRT's claims
(cumulative regret, extrapolation, token efficiency) against GRPO and the other trainers, in an
adversarial setting, a setting where exploring informs the prover, and a setting with overthinking
and a compute cost; (b) verifier-based vs verifier-free learning as the budget H grows, with the
expert's heterogeneity varied at a fixed mean accuracy. Writes examples/studies/sim_study.md.

    python examples/studies/sim_study.py --save-results runs/sim_study.json   # the full study (as planned)
    python examples/studies/sim_study.py --quick --out /tmp/q.md              # 2 seeds, short runs (~2 min)
    python examples/studies/sim_study.py --from-results runs/sim_study.json   # rewrite the report only

Everything the plan fixes (settings, methods, seeds, budgets, endpoints, the claims and their tests)
is a constant of this file, written before any run of the study; the report is made from the saved
per-seed results by `sim_study_report.py`. Every run is one `ttc_gym.training.sim_train.train`; every
policy is evaluated on the same problems (fixed evaluation seeds); run i of every method shares seed i
(initial weights, training problems), so every comparison is paired by seed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BASE_TOKENS = 256  # TTC-Sim-v0's default tokens per episode: C0 = H x 256 for the token regret

# -- (a) settings, methods, seeds: the plan's tables --------------------------------------------------
EXPLORE = {"heterogeneity": 0.95, "switch_keep": 0.5, "tokens_per_action": [256, 192, 128]}
SETTINGS = {
    # Labelled adversarial: a switch never raises the prover's J here, so no per-episode progress term
    # can pay for exploring (the review of the first study).
    "explore": dict(EXPLORE),
    # Informative exploration: abandoning a dead end rules out half of the forced guess's wrong answers.
    "explore+rule_out": {**EXPLORE, "rule_out": 0.5},
    # Overthinking, a hidden episode count (extrapolation is a real test), no forced answer at the
    # budget's end, and a compute cost in the training return (token efficiency has a price).
    "overthink+cost": {**EXPLORE, "overthink": 0.25, "observe_episodes": False, "answer_on_truncation": False},
}
COST_COEF = {"explore": 0.0, "explore+rule_out": 0.0, "overthink+cost": 1.0}  # x the env's episode_cost 0.02

# (label, algo, overrides). The primary pair ("GRPO", "MRT") gets PRIMARY_SEEDS seeds, the rest SEEDS.
METHODS = (
    ("GRPO", "grpo", {}),
    ("MRT", "mrt", {"alpha": 1.0}),
    ("MRT a=0", "mrt", {"alpha": 0.0}),
    ("MRT a=0.5", "mrt", {"alpha": 0.5}),
    ("MRT a=2", "mrt", {"alpha": 2.0}),
    ("MRT-online a=0.5", "mrt-online", {"alpha": 0.5}),
    ("MRT-online a=1", "mrt-online", {"alpha": 1.0}),
    ("MRT-online a=2", "mrt-online", {"alpha": 2.0}),
    ("MRT-termination", "mrt-termination", {}),
    ("MRT-rtg a=1", "mrt-rtg", {"alpha": 1.0}),
    ("STaR", "star", {}),
    ("MRT-STaR", "mrt-star", {}),
    ("SFT", "sft", {}),
)
PRIMARY_METHODS = ("GRPO", "MRT")

# -- (b) verifier-based vs verifier-free --------------------------------------------------------------
VF, VB, VB_RL = "VF: SFT on expert traces", "VB: STaR on own rollouts", "VB: GRPO on own rollouts"
ARMS_B = (VF, VB, VB_RL)


@dataclass
class Study:
    seeds: int = 20
    primary_seeds: int = 40
    train_budget: int = 8
    iterations: int = 150
    batch_size: int = 128  # 16 problems x G = 8
    group_size: int = 8
    # The remedy the tuning sweep (examples/studies/sim_entropy_sweep.md, a setting none of this study's)
    # found to hold for grpo, mrt and mrt-online together: lr 0.005, entropy bonus 0.03, 150 iterations.
    lr: float = 0.005
    entropy_coef: float = 0.03
    curve_every: int = 10
    curve_problems: int = 300
    eval_problems: int = 2000
    # (b)
    budgets_b: tuple = (4, 8, 16)
    spreads_b: tuple = (0.0, 1.0)
    seeds_b: int = 20
    base_traces_per_episode: int = 64  # the base policy clones 64 x H expert traces (its "pre-training"; a multiple of 8)
    traces_per_episode: int = 320  # then each arm gets 320 x H traces or rollouts: n grows with H
    lr_b: float = 0.02  # (b) keeps the first study's step size: its arms take few steps (10 rounds of 5; 40 GRPO iterations)
    sft_rounds_b: int = 10
    sft_steps_b: int = 5
    rl_iterations_b: int = 40
    calibration_problems: int = 20000
    expert_problems_b: int = 200
    expert_traces_b: int = 16
    workers: int = 2


QUICK = dict(seeds=2, primary_seeds=2, iterations=12, curve_every=6, curve_problems=100, eval_problems=300,
             budgets_b=(4, 8), seeds_b=2, traces_per_episode=80, calibration_problems=2000,
             expert_problems_b=40, expert_traces_b=4)


# -- one run of (a) ------------------------------------------------------------------------------------
def _anytime(curve, H: int) -> float:
    from ttc_gym.metrics import pad_curve

    return float(np.mean(pad_curve(curve, H + 1)[1:]))


def evaluate(policy, env_kwargs: dict, H: int, problems: int, star_curve=None) -> dict:
    """Endpoints of one trained policy at budget H (plan, "Endpoints"): accuracy of the committed
    answer, the forced-answer accuracy J_j after j = H/4 and H/2 episodes, the cumulative episode
    regret against J*_j, tokens, episodes, the share of switch actions."""
    from ttc_gym.actions import MetaAction
    from ttc_gym.metrics import cumulative_regret, pad_curve
    from ttc_gym.training.sim_train import evaluate_policy

    traces = evaluate_policy(policy, {**env_kwargs, "max_episodes": H}, problems=problems)
    curves = np.array([pad_curve(t.j_curve, H + 1) for t in traces])
    actions = np.concatenate([t.actions for t in traces]) if traces else np.zeros(0)
    out = {
        "accuracy": float(np.mean([t.outcome for t in traces])),
        "J_quarter": float(curves[:, H // 4].mean()),
        "J_half": float(curves[:, H // 2].mean()),
        "tokens": float(np.mean([t.token_curve[-1] for t in traces])),
        "episodes": float(np.mean([t.episodes_used for t in traces])),
        "anytime": float(np.mean([_anytime(t.j_curve, H) for t in traces])),
        "switch_share": float(np.mean(actions == int(MetaAction.SWITCH))) if actions.size else 0.0,
    }
    if star_curve is not None:
        star = np.asarray(star_curve[: H + 1])
        out["regret"] = float(np.mean([cumulative_regret(c, star)[-1] / H for c in curves]))
    return out


def _config_a(study: Study, setting: str, algo: str, over: dict, seed: int) -> dict:
    from ttc_gym.training.algorithms import RL_ALGOS

    env = SETTINGS[setting]
    cfg = {"algo": algo, "seed": seed, "iterations": study.iterations, "max_episodes": study.train_budget,
           "batch_size": study.batch_size, "group_size": study.group_size, "lr": study.lr,
           "heterogeneity": env["heterogeneity"], "env_kwargs": {k: v for k, v in env.items() if k != "heterogeneity"},
           "cost_coef": COST_COEF[setting], "eval_every": study.curve_every, "eval_problems": study.curve_problems, **over}
    if algo in RL_ALGOS:
        cfg["entropy_coef"] = study.entropy_coef
    return cfg


def job_a(args) -> dict:
    """Train one policy of (a) and evaluate it at H, 2H, 4H (in a worker process)."""
    import torch

    torch.set_num_threads(1)
    from ttc_gym.training.sim_config import SimTrainConfig
    from ttc_gym.training.sim_train import train

    setting, label, cfg, extra = args
    config = SimTrainConfig(**cfg)
    result = train(config)
    H = config.max_episodes
    out = {"part": "a", "setting": setting, "method": label, "seed": config.seed, "train_s": result.wall_s,
           "curve": [row["eval_accuracy"] for row in result.history if row.get("eval_accuracy") not in (None, "")]}
    env = config.make_env_kwargs()
    for mult in (1, 2, 4):
        ev = evaluate(result.policy, env, mult * H, extra["eval_problems"], extra["star_curve"])
        out.update({f"{k}@{mult}H": v for k, v in ev.items()})
    return out


# -- one seed of (b): the base policy, then the three arms from it ----------------------------------------
def job_b(args) -> dict:
    """For one (H, spread, seed): clone the expert into a base policy, then train VF (more expert
    traces), VB (STaR on the base's own rollouts) and VB-RL (GRPO on them) from that base, each with
    the same data budget, and evaluate all four (in a worker process)."""
    import torch

    torch.set_num_threads(1)
    from ttc_gym.training.sim_config import SimTrainConfig
    from ttc_gym.training.sim_train import train

    H, spread, seed, share, study_dict = args
    study = Study(**{k: tuple(v) if isinstance(v, list) else v for k, v in study_dict.items()})
    env = {"max_episodes": H}
    expert = {"trace_source": "expert", "expert_spread": spread, "expert_mixture": "strong-weak",
              "expert_strong_share": share}
    n = study.traces_per_episode * H
    out = {"part": "b", "H": H, "spread": spread, "seed": seed, "train_s": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        base_path = str(Path(tmp) / "base.pt")
        rounds = study.sft_rounds_b
        base_rounds = study.base_traces_per_episode // 8  # rounds of 8 x H traces
        base = train(SimTrainConfig(algo="sft", seed=seed, iterations=base_rounds, sft_steps=study.sft_steps_b,
                                    lr=study.lr_b, batch_size=8 * H, checkpoint=base_path, **expert, **env))
        out["train_s"] += base.wall_s
        out["base"] = evaluate(base.policy, env, H, study.eval_problems)["accuracy"]
        arms = {
            VF: dict(algo="sft", iterations=rounds, sft_steps=study.sft_steps_b, batch_size=n // rounds, **expert),
            VB: dict(algo="star", iterations=rounds, sft_steps=study.sft_steps_b, batch_size=n // rounds),
            VB_RL: dict(algo="grpo", iterations=study.rl_iterations_b, group_size=study.group_size,
                        batch_size=n // study.rl_iterations_b, entropy_coef=study.entropy_coef),
        }
        for arm, kw in arms.items():
            result = train(SimTrainConfig(seed=seed, lr=study.lr_b, init_policy=base_path, **kw, **env))
            out["train_s"] += result.wall_s
            out[arm] = evaluate(result.policy, env, H, study.eval_problems)["accuracy"]
    return out


def expert_job(args) -> dict:
    """The strong-weak expert at (H, spread): accuracy, and heterogeneity on each problem as the std of
    the anytime reward over the traces of one problem (sigma) and the share of a problem's traces at
    least one sigma above its mean (kappa, anti-concentration)."""
    H, spread, share, problems, traces_per, eval_problems = args
    import gymnasium as gym

    import ttc_gym  # noqa: F401
    from ttc_gym.training.experts import HeterogeneousExpert
    from ttc_gym.training.sim_rollout import AgentsActor, make_envs, rollout
    from ttc_gym.training.sim_train import evaluate_policy

    kwargs = {"max_episodes": H}
    model = gym.make("TTC-Sim-v0", **kwargs).unwrapped.model
    expert = HeterogeneousExpert(H, seed=12345, spread=spread, model=model, mixture="strong-weak", strong_share=share)
    ev = evaluate_policy(None, kwargs, problems=eval_problems, actor=AgentsActor(expert.agents(eval_problems)),
                         chunk=eval_problems)
    G, P = traces_per, problems
    tr = rollout(make_envs(G * P, **kwargs), AgentsActor(expert.agents(G * P)), np.repeat(np.arange(P) + 777_000, G),
                 groups=np.repeat(np.arange(P), G), noise_seeds=np.arange(G * P) + 999_000)
    anytime = np.array([_anytime(t.j_curve, H) for t in tr]).reshape(P, G)
    sigma = anytime.std(axis=1)
    above = (anytime >= anytime.mean(axis=1, keepdims=True) + sigma[:, None] - 1e-12).mean(axis=1)
    return {"H": H, "spread": spread, "accuracy": float(np.mean([t.outcome for t in ev])), "sigma": float(sigma.mean()),
            "kappa": float(above[sigma > 1e-9].mean()) if (sigma > 1e-9).any() else 0.0}


# -- the DP lines and the expert's calibration ---------------------------------------------------------
def line_job(args):
    """J*_j for j = 0..4H of a setting (answer forced at every budget: the regret comparator), or the
    strong-weak expert's calibration at a budget of (b)."""
    kind, key, value = args
    import gymnasium as gym

    import ttc_gym  # noqa: F401
    from ttc_gym.agents.oracle import j_star_curve

    if kind == "curve":
        env = {**SETTINGS[key], "answer_on_truncation": True, "max_episodes": value}
        return j_star_curve(gym.make("TTC-Sim-v0", **env).unwrapped.model).tolist()
    from ttc_gym.training.experts import calibrated_strong_share

    return calibrated_strong_share(gym.make("TTC-Sim-v0", max_episodes=key).unwrapped.model, problems=value)


def jobs_a(study: Study, curves: dict) -> list:
    jobs = []
    for setting in SETTINGS:
        extra = {"eval_problems": study.eval_problems, "star_curve": curves[setting]}
        for label, algo, over in METHODS:
            n = study.primary_seeds if label in PRIMARY_METHODS else study.seeds
            jobs += [(setting, label, _config_a(study, setting, algo, over, seed), extra) for seed in range(n)]
    from ttc_gym.training.algorithms import RL_ALGOS

    return sorted(jobs, key=lambda j: -(2 if j[2]["algo"] == "mrt" else 1.5 if j[2]["algo"] in RL_ALGOS else 1))


def with_reporting(jobs: list, report_to: str, report_dir: str) -> list:
    """Each (a) run reported to `report_to` in its own folder under `report_dir` (none: unchanged)."""
    if report_to == "none":
        return jobs
    return [(setting, label, {**cfg, "report_to": report_to,
                              "report_dir": str(Path(report_dir) / re.sub(r"[^A-Za-z0-9.]+", "_", f"{setting}-{label}-seed{cfg['seed']}"))},
             extra) for setting, label, cfg, extra in jobs]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, short runs, two budgets in (b): a smoke test")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "sim_study.md"))
    parser.add_argument("--save-results", help="also dump the raw per-run results to this JSON file")
    parser.add_argument("--from-results", help="skip training: rewrite the report from a --save-results file")
    parser.add_argument("--plan-commit", default="(not given)", help="the commit of the plan, named in the report")
    parser.add_argument("--report-to", default="none", help="experiment tracking of every training run: "
                        "tensorboard, wandb (offline), none (ttc_gym/training/tracking.py); does not change a run")
    parser.add_argument("--report-dir", default="runs/sim_study", help="one folder per run under it (--report-to)")
    args = parser.parse_args(argv)
    from sim_study_report import write_report  # noqa: E402  (this folder, imported here: the workers do not need it)

    study = Study(workers=args.workers)
    if args.quick:
        study = replace(study, **QUICK)
    if args.from_results:
        blob = json.loads(Path(args.from_results).read_text())
        write_report(Path(args.out), blob, regenerated=True)
        print(f"wrote {args.out} from {args.from_results}")
        return 0
    command = "python examples/studies/sim_study.py" + (" --quick" if args.quick else "")
    start = time.perf_counter()
    H = study.train_budget
    with mp.get_context("spawn").Pool(study.workers) as pool:
        line_tasks = [("curve", name, 4 * H) for name in SETTINGS]
        line_tasks += [("share", Hb, study.calibration_problems) for Hb in study.budgets_b]
        lines = pool.map(line_job, line_tasks, chunksize=1)
        curves = {name: lines[i] for i, name in enumerate(SETTINGS)}
        shares = {Hb: lines[len(SETTINGS) + i] for i, Hb in enumerate(study.budgets_b)}
        a_jobs = with_reporting(jobs_a(study, curves), args.report_to, args.report_dir)
        b_jobs = [(Hb, s, seed, shares[Hb]["strong_share"], asdict(study))
                  for Hb in sorted(study.budgets_b, reverse=True) for s in study.spreads_b for seed in range(study.seeds_b)]
        e_jobs = [(Hb, s, shares[Hb]["strong_share"], study.expert_problems_b, study.expert_traces_b, study.eval_problems)
                  for Hb in study.budgets_b for s in study.spreads_b]
        print(f"{len(a_jobs)} runs in (a), {len(b_jobs)} seeds x 4 runs in (b), {len(e_jobs)} expert measurements "
              f"on {study.workers} workers ({time.perf_counter() - start:.0f}s for the DP lines) ...", flush=True)
        experts = pool.map(expert_job, e_jobs)
        results = []
        tasks = [(job_b, j) for j in b_jobs] + [(job_a, j) for j in a_jobs]
        for i, r in enumerate(pool.imap_unordered(_call, tasks), 1):
            results.append(r)
            if i % 25 == 0 or i == len(tasks):
                print(f"  {i}/{len(tasks)} jobs done ({time.perf_counter() - start:.0f}s)", flush=True)
    blob = {"study": asdict(study), "results": results, "experts": experts, "curves": curves,
            "shares": {str(k): v for k, v in shares.items()}, "wall": time.perf_counter() - start,
            "command": command, "plan_commit": args.plan_commit}
    if args.save_results:
        Path(args.save_results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.save_results).write_text(json.dumps(blob))
    write_report(Path(args.out), blob)
    print(f"wrote {args.out} in {blob['wall']:.0f}s")
    return 0


def _call(task):
    fn, arg = task
    return fn(arg)


if __name__ == "__main__":
    raise SystemExit(main())
