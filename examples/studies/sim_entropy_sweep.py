"""The sweep that chose the sim trainer's default entropy bonus (`SimTrainConfig.entropy_coef`).

    python examples/studies/sim_entropy_sweep.py                       # the grid of the report
    python examples/studies/sim_entropy_sweep.py --algos grpo --coefs 0 0.03 --seeds 3 --lr 0.005

A TUNING setting, on purpose none of the simulator study's (`examples/studies/sim_study.py` uses
heterogeneity 0.95 with switch_keep 0.5, and the first-release env, heterogeneity 0.8 with H = 10):
TTC-Sim-v0 with heterogeneity 0.5, num_strategies 2, H = 6 (every other knob at its default). The
training shape is the study's (128 rollouts per iteration, 16 problems x G = 8, lr 0.02, the 0/1
outcome as the reward) run for 150 iterations instead of 100. For each algorithm, coefficient and
seed it trains one policy and records the learning curve (accuracy on 512 fixed problems every 25
iterations), the final accuracy on 2000 fixed problems, and the policy's action entropy on the last
update's actions; a seed whose final entropy is below 0.05 nats counts as collapsed (a deterministic
policy: it can no longer sample anything else). The reference is the DP optimum J*_H
(`ttc_gym.agents.oracle.j_star_curve`). One process, one torch thread (the machine is shared).

Prints a markdown table per pass (append it to examples/studies/sim_entropy_sweep.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

TUNING_ENV = {"heterogeneity": 0.5, "max_episodes": 6, "env_kwargs": {"num_strategies": 2}}
SHAPE = {"batch_size": 128, "group_size": 8}
COLLAPSED = 0.05  # nats: below this the policy is (almost) deterministic on the states it visits


def run_one(algo: str, coef: float, seed: int, *, lr: float, iterations: int, every: int, grad_norm: float):
    from ttc_gym.training.sim_config import SimTrainConfig
    from ttc_gym.training.sim_rollout import batch_stats
    from ttc_gym.training.sim_train import evaluate_policy, train

    config = SimTrainConfig(algo=algo, seed=seed, lr=lr, iterations=iterations, entropy_coef=coef,
                            max_grad_norm=grad_norm, eval_every=every, eval_problems=512, **SHAPE, **TUNING_ENV)
    result = train(config)
    curve = [row["eval_accuracy"] for row in result.history if "eval_accuracy" in row]
    final = batch_stats(evaluate_policy(result.policy, config.make_env_kwargs(), problems=2000))
    return {"curve": curve, "final": final["accuracy"], "episodes": final["episodes"],
            "entropy": result.history[-1]["entropy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algos", nargs="+", default=["grpo", "mrt-online"])
    parser.add_argument("--coefs", nargs="+", type=float, default=[0.0, 0.003, 0.01, 0.03, 0.1])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--max-grad-norm", type=float, default=0.0, help="0: no clipping")
    args = parser.parse_args()
    torch.set_num_threads(1)

    import gymnasium as gym

    import ttc_gym  # noqa: F401
    from ttc_gym.agents.oracle import j_star_curve

    env = {k: v for k, v in TUNING_ENV.items() if k != "env_kwargs"} | TUNING_ENV["env_kwargs"]
    j_star = float(j_star_curve(gym.make("TTC-Sim-v0", **env).unwrapped.model)[-1])
    points = list(range(args.every, args.iterations + 1, args.every))
    print(f"tuning setting: TTC-Sim-v0 {env}; lr {args.lr}, {args.iterations} iterations of {SHAPE['batch_size']} "
          f"rollouts (G = {SHAPE['group_size']}), max_grad_norm {args.max_grad_norm}, seeds 0..{args.seeds - 1}; "
          f"DP optimum J*_H = {j_star:.3f}\n")
    print("| algo | entropy_coef | final accuracy, mean (min..max) | per seed | collapsed seeds | final entropy "
          "(mean) | episodes | curve: mean accuracy at " + ", ".join(map(str, points)) + " | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for algo in args.algos:
        for coef in args.coefs:
            start = time.perf_counter()
            runs = [run_one(algo, coef, s, lr=args.lr, iterations=args.iterations, every=args.every,
                            grad_norm=args.max_grad_norm) for s in range(args.seeds)]
            finals = np.array([r["final"] for r in runs])
            entropies = np.array([r["entropy"] for r in runs])
            curve = np.mean([r["curve"] for r in runs], axis=0)
            print(f"| {algo} | {coef:g} | {finals.mean():.3f} ({finals.min():.3f}..{finals.max():.3f}) | "
                  f"{' '.join(f'{f:.3f}' for f in finals)} | {int((entropies < COLLAPSED).sum())}/{len(runs)} | "
                  f"{entropies.mean():.3f} | {np.mean([r['episodes'] for r in runs]):.2f} | "
                  f"{' '.join(f'{c:.3f}' for c in curve)} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
