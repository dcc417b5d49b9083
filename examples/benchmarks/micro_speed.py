"""Speed of the micro-reasoner on this CPU (issues 15 and 28): batched generation throughput
(tokens/s), its roofline fraction (achieved FLOP/s at ~2 x parameters FLOPs per token, over the
measured peak of a large float32 matmul), and the wall time of one training iteration of the LLM
trainer at the micro study's shape — each on three decode paths, in turn in one process, so that
their ratios hold whatever else the machine is doing:
- the transformers loop (`decode_loop="hf"`), the loop before issue 28 ("today's" of the issue);
- the static loop with its torch forward (`decode_loop="static", compiled_step=False`);
- the static loop with the compiled step (`ttc_gym.engines.compiled_step`, the default where a C
  compiler is present). Writes a markdown table.

    python examples/benchmarks/micro_speed.py --out examples/benchmarks/micro_speed.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_matmul_flops(threads: int, n: int = 1024, repeats: int = 8) -> float:
    """Best FLOP/s of an n x n float32 matmul with `threads` torch threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def generation_throughput(engine, batch: int, new_tokens: int = 32, rounds: int = 3) -> float:
    """Decoded tokens per second for `batch` rows (prompts x samples) sampled together."""
    from ttc_gym.engines.base import SamplingConfig
    from ttc_gym.micro.task import MicroSource
    from ttc_gym.prompts import PromptTemplate

    template = PromptTemplate()
    problems = MicroSource().problems(max(1, batch // 8), 0)
    prompts = [template.reasoning_prompt(engine, p.question, []) for p in problems]
    n = max(1, batch // len(prompts))
    sampling = SamplingConfig(max_new_tokens=new_tokens, temperature=1.0, n=n)
    engine.generate(prompts, sampling, seed=0)  # warm-up
    best = 0.0
    for r in range(rounds):
        before = engine.stats["decode_tokens"]
        t = time.perf_counter()
        engine.generate(prompts, sampling, seed=r + 1)
        best = max(best, (engine.stats["decode_tokens"] - before) / (time.perf_counter() - t))
    return best


# The decode paths compared: name -> (decode_loop, compiled_step).
PATHS = {"hf": ("hf", False), "static, torch step": ("static", False), "static, compiled step": ("static", True)}


def use_path(engine, path: str) -> None:
    engine.decode_loop, engine.compiled_step = PATHS[path]
    if path == "static, compiled step" and engine.compiled_step_reason is not None:
        raise SystemExit(f"the compiled step does not run here: {engine.compiled_step_reason}")


# Trainer shapes timed: the micro study's (examples/studies/micro_study.py: MRT, the paper's recipe, on
# micro-long / micro:2-3, 8 problems x 4 rollouts, K = 16) and the one issue 28 set its target on
# (the first micro study's: MRT-online on the base checkpoint, 4 problems x 4 rollouts, K = 4).
# Both: H = 4, 48-token episodes, one update per iteration, the policy as its own prover.
SHAPES = {
    "micro study (8 x 4, K = 16, mrt, micro-long, micro:2-3)":
        dict(algo="mrt", checkpoint="micro-long", source="micro:2-3", problems_per_iter=8, num_prover_samples=16),
    "issue 28's (4 x 4, K = 4, mrt-online, micro, micro:1-3)":
        dict(algo="mrt-online", checkpoint="micro", source="micro:1-3", problems_per_iter=4, num_prover_samples=4),
}


def training_iteration_s(threads: int, path: str, shape: dict, iterations: int = 3) -> tuple[float, dict]:
    """Median wall time of an LLM-trainer iteration of `shape` (one of SHAPES) with the policy engine
    on `path`; the first iteration is dropped (it builds the compiled step and warms the caches)."""
    from ttc_gym.micro.checkpoint import micro_checkpoint_dir
    from ttc_gym.training.llm_config import LLMTrainConfig
    from ttc_gym.training.llm_policy import build_policy_engine
    from ttc_gym.training.llm_train import train

    shape = dict(shape)
    checkpoint = shape.pop("checkpoint")
    with tempfile.TemporaryDirectory() as out:
        config = LLMTrainConfig(model=str(micro_checkpoint_dir(checkpoint)), iterations=iterations + 1, group_size=4,
                                micro_batch_size=4 * shape["problems_per_iter"], max_episodes=4, max_episode_tokens=48,
                                temperature=1.0, lr=1e-4, out=out, tensorboard=False, torch_threads=threads, **shape)
        policy = build_policy_engine(config)  # the trainer's own engine, on the path measured
        use_path(policy, path)
        result = train(config, policy_engine=policy)
    walls = [row["wall_s"] for row in result.history]
    steps = np.diff([0.0] + walls)[1:]
    return float(np.median(steps)), result.history[-1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import torch

    from bench_engine import cpu_model, stream_bandwidth
    from ttc_gym.engines import make_engine

    begin = time.perf_counter()
    load = os.getloadavg()[0]
    t = time.perf_counter()
    engine = make_engine("micro")
    load_s = time.perf_counter() - t
    params = sum(p.numel() for p in engine.model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in engine.model.parameters())
    flops_per_token = 2 * params
    peaks = {k: peak_matmul_flops(k) for k in sorted({1, args.threads, os.cpu_count() or 1})}
    torch.set_num_threads(args.threads)
    bandwidth = stream_bandwidth()
    peak = peaks[args.threads]
    rows = []
    for batch in (1, 8, 64):
        tps = {}
        for path in PATHS:  # the same engine, the same prompts and seeds
            use_path(engine, path)
            tps[path] = generation_throughput(engine, batch)
        rows.append((batch, tps))
    iters = {(shape, path): training_iteration_s(args.threads, path, SHAPES[shape]) for shape in SHAPES for path in PATHS}
    command = "python examples/benchmarks/micro_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    frac = lambda tps: tps * flops_per_token / peak  # noqa: E731
    names = list(PATHS)
    lines = [
        "# Micro-reasoner speed on this CPU\n",
        f"`{command}` — {time.perf_counter() - begin:.0f} s wall; load average at start {load:.1f} on "
        f"{os.cpu_count()} cores, CPU {cpu_model()} (when other jobs run, the absolute figures are lower bounds of a quiet machine; "
        "the three paths run in turn in the same process, so their ratios are the comparison).\n",
        f"Model: {params:,} parameters (LlamaForCausalLM, float32, {weight_bytes / 1e6:.1f} MB); loading "
        f"`make_engine(\"micro\")` took {load_s:.2f} s (the process's first load, transformers' lazy imports included). "
        f"FLOPs per generated token ≈ 2 x parameters = {flops_per_token / 1e6:.1f} MFLOP. Peak: best "
        "float32 1024x1024 matmul, " + ", ".join(f"{k} thread(s): {v / 1e9:.1f} GFLOP/s" for k, v in peaks.items())
        + f"; the roofline fraction uses the {args.threads}-thread peak. Memory streams at {bandwidth / 1e9:.1f} GB/s "
        f"(a 512 MB tensor summed); the weights fit in the caches, so decoding is not bandwidth-bound.\n",
        "Tokens/s (roofline fraction), sampling and stop checks included; x = vs the transformers loop:\n",
        "| rows sampled together | " + " | ".join(f"{name}" for name in names) + " | compiled vs hf | compiled vs torch step |",
        "|---|" + "---|" * (len(names) + 2),
        *[f"| {b} | " + " | ".join(f"{tps[name]:.0f} ({frac(tps[name]):.1%})" for name in names)
          + f" | {tps['static, compiled step'] / tps['hf']:.1f}x | {tps['static, compiled step'] / tps['static, torch step']:.1f}x |"
          for b, tps in rows],
        "",
        f"One training iteration of the LLM trainer ({args.threads} thread(s), H = 4, the policy as its own prover), "
        "median over 3 iterations after a first one, seconds:\n",
        "| shape | " + " | ".join(names) + " | compiled vs hf |",
        "|---|" + "---|" * (len(names) + 1),
        *[f"| {shape} | " + " | ".join(f"{iters[shape, name][0]:.2f}" for name in names)
          + f" | {iters[shape, 'hf'][0] / iters[shape, 'static, compiled step'][0]:.2f}x |" for shape in SHAPES],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
