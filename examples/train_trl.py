"""Train the default model (SmolLM2-135M-Instruct, offline) on TTC-Math-v0 with TRL's GRPOTrainer
and MRT's per-episode credit, for a few steps on a CPU.

    pip install 'ttc-gym[trl]'
    python examples/train_trl.py --alpha 1 --out runs/trl_a1      # a few minutes on 2 CPU cores
    python examples/train_trl.py --alpha 0 --out runs/trl_a0      # same seed: same first rollouts, other loss

Each rollout is a multi-episode TTC-Math-v0 trace written by the policy, J measured by the policy
itself forced to stop (MRT's online setting; docs/formulation.md §2); TRL logs the outcome and the
progress components (`rewards/outcome/mean`, `rewards/progress/mean`) and trains on the per-token
credit of `--algo` (default mrt-online: each episode's own progress inside the group normalization;
docs/formulation.md §4). The log rows are printed and
written to OUT/log.json. See `ttc_gym.integrations.trl_grpo` for the design.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL; we know


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="'default' or a transformers model folder / hub id")
    p.add_argument("--algo", default="mrt-online",
                   help="an algorithms.ADVANTAGES name on full rollouts: mrt-online, mrt-online-raw, grpo, mrt-rtg, "
                        "mrt-termination")
    p.add_argument("--alpha", type=float, default=1.0, help="weight of progress (credit and reward)")
    p.add_argument("--steps", type=int, default=2, help="optimizer steps")
    p.add_argument("--problems-per-step", type=int, default=2)
    p.add_argument("--group-size", type=int, default=2, help="TRL's num_generations: rollouts per problem")
    p.add_argument("--max-episodes", type=int, default=2, help="TTC-Math-v0 budget H")
    p.add_argument("--max-episode-tokens", type=int, default=32)
    p.add_argument("--num-prover-samples", type=int, default=4, help="K forced answers per J")
    p.add_argument("--source", default="procedural:1")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/trl")
    a = p.parse_args()

    import torch
    from trl import GRPOConfig

    from ttc_gym.integrations.trl_grpo import TTCGRPOTrainer, load_policy, problem_dataset

    torch.manual_seed(a.seed)
    model, tokenizer = load_policy(a.model)
    batch = a.problems_per_step * a.group_size
    args = GRPOConfig(
        output_dir=a.out, per_device_train_batch_size=batch, num_generations=a.group_size, max_steps=a.steps,
        learning_rate=a.lr, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True, bf16=False,
        gradient_checkpointing=False, temperature=0.8, seed=a.seed, disable_tqdm=True)
    trainer = TTCGRPOTrainer(
        model, args, train_dataset=problem_dataset(a.source, 16 * a.problems_per_step, seed=a.seed),
        processing_class=tokenizer, algo=a.algo, alpha=a.alpha, max_episodes=a.max_episodes,
        num_prover_samples=a.num_prover_samples, max_episode_tokens=a.max_episode_tokens)
    start = time.perf_counter()
    trainer.train()
    rows = [row for row in trainer.state.log_history if "loss" in row]
    keys = ("step", "loss", "reward", "rewards/outcome/mean", "rewards/progress/mean", "ttc/J_0", "ttc/J_final",
            "ttc/episodes", "ttc/exact_context", "ttc/dropped_tokens")
    for row in rows:
        print("  ".join(f"{k} {row[k]:.4g}" if isinstance(row.get(k), float) else f"{k} {row.get(k)}" for k in keys))
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "log.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    print(f"{a.steps} steps in {time.perf_counter() - start:.0f}s; log: {Path(a.out) / 'log.json'}")


if __name__ == "__main__":
    main()
