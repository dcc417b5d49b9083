"""Smoke test of the default offline model: load it, answer one question, measure tokens/s.

    python examples/engine_smoke.py [--max-new-tokens 64] [--n 8] [--device cpu]

Prints the load time, one greedy answer, and sampling throughput for one sequence and for a batch
of `n` samples of one prompt. Figures on a busy 2-core CPU are rough.
"""

from __future__ import annotations

import argparse
import time

from ttc_gym.engines import SamplingConfig, load_default_engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--n", type=int, default=8, help="samples in the batched measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--question", default="What is 2+3?")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch CPU threads; 1 is often several times faster on a CPU shared with other jobs",
    )
    args = parser.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    engine = load_default_engine(device=args.device)
    print(f"loaded {engine.name} in {time.perf_counter() - start:.1f} s")

    prompt = engine.format_chat(args.question)
    greedy = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=0.0)
    [[answer]] = engine.generate([prompt], greedy, seed=0)
    print(f"Q: {args.question}\nA: {answer.text!r} ({answer.num_tokens} tokens, {answer.finish_reason})")

    # Throughput: ask for a long answer so EOS rarely cuts it short; count the tokens produced.
    long_prompt = engine.format_chat("Write a long story about a dragon who learns arithmetic.")
    for n in (1, args.n):
        sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=0.7, n=n)
        start = time.perf_counter()
        [samples] = engine.generate([long_prompt], sampling, seed=1)
        elapsed = time.perf_counter() - start
        tokens = sum(c.num_tokens for c in samples)
        print(f"n={n}: {tokens} tokens in {elapsed:.2f} s = {tokens / elapsed:.1f} tokens/s")


if __name__ == "__main__":
    main()
