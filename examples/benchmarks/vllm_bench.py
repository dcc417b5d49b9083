"""TTC-Math-v0 on a GPU with the vLLM engine: generation tokens/s and prover J-estimates/s.

UNTESTED ON A GPU: this script was written without access to a GPU machine (vLLM's wheel is GPU-only);
the engine's request building and result parsing are tested on a CPU against vLLM-shaped output
objects (tests/core/test_vllm_engine.py), but this end-to-end run has not been executed. Report what it
prints, or what fails, in an issue.

    pip install -e '.[vllm]'     # on a machine with an NVIDIA GPU and a CUDA build of torch
    python examples/benchmarks/vllm_bench.py --model Qwen/Qwen2.5-Math-1.5B-Instruct
    python examples/benchmarks/vllm_bench.py --model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --max-model-len 8192
    python examples/benchmarks/vllm_bench.py --engine default --problems 2 --budget 2   # the same on a CPU (slow)

Three measurements, each printed as it finishes:
1. generation: one batched `generate` of the reasoning prompts of `--problems` problems, `--n` samples
   each (`--max-new-tokens` per sample) -> tokens/s;
2. prover: K forced answers for each problem's prompt, one prompt per call (a prover asked one prefix
   at a time), and `LLMProver.estimate_many` over all of them (one call, a seed per request: what the
   vectorized env asks for) -> J-estimates/s, and how many estimates the two ways agree on;
3. the env: `--problems` rollouts of TTC-Math-v0 at budget H = `--budget`, the episodes written by the
   same model (one paragraph per step), the prover after every episode -> accuracy, episodes, and
   tokens/s and J-estimates/s of the whole loop.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

import ttc_gym  # noqa: F401  (registers the envs)
from ttc_gym.engines import SamplingConfig, make_engine
from ttc_gym.llm_prover import LLMProver
from ttc_gym.problems import make_source
from ttc_gym.prompts import PromptTemplate


class CountingEngine:
    """Passes every call to `engine` and counts generated tokens and generate calls. It takes one seed
    per prompt when `engine` does (`per_prompt_seeds`), so the prover still batches through it."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.name = engine.name
        self.per_prompt_seeds = getattr(engine, "per_prompt_seeds", False)
        self.tokens = 0
        self.calls = 0

    def generate(self, prompts: Sequence[str], sampling: SamplingConfig, *,
                 seed: int | Sequence[int] | None = None):
        rows = self.engine.generate(prompts, sampling, seed=seed)
        self.calls += 1
        self.tokens += sum(c.num_tokens for row in rows for c in row)
        return rows

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    def format_chat(self, user: str, assistant_prefix: str = "", system: str | None = None) -> str:
        return self.engine.format_chat(user, assistant_prefix, system=system)


def measure_generation(engine: Any, questions: list[str], args: argparse.Namespace) -> None:
    template = PromptTemplate()
    prompts = [template.reasoning_prompt(engine, q, []) for q in questions]
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=0.7, n=args.n)
    start = time.perf_counter()
    rows = engine.generate(prompts, sampling, seed=0)
    elapsed = time.perf_counter() - start
    tokens = sum(c.num_tokens for row in rows for c in row)
    print(f"generation: {len(prompts)} prompts x {args.n} samples, {tokens} tokens in {elapsed:.2f} s "
          f"= {tokens / elapsed:,.0f} tokens/s")


def measure_prover(engine: Any, problems: list[Any], args: argparse.Namespace) -> None:
    """J_0 of every problem two ways: one prefix per call (a prover asked one prefix at a time), and
    `estimate_many` over all of them (ONE engine call, one seed per request). Same seeds, so the two
    give the same estimates (up to the float rounding of batched kernels on a GPU)."""
    alone_engine = CountingEngine(engine)
    alone = LLMProver(alone_engine, num_samples=args.k, max_answer_tokens=args.max_answer_tokens)
    start = time.perf_counter()
    one_by_one = [alone.estimate(p, []) for p in problems]
    elapsed = time.perf_counter() - start
    mean_j = sum(e.j for e in one_by_one) / len(one_by_one)
    print(f"prover, one prefix per call: {len(one_by_one)} J-estimates (K={args.k}) in {alone_engine.calls} calls, "
          f"{elapsed:.2f} s = {len(one_by_one) / elapsed:.2f} J-estimates/s (mean J_0 = {mean_j:.3f})")

    batch_engine = CountingEngine(engine)
    batched = LLMProver(batch_engine, num_samples=args.k, max_answer_tokens=args.max_answer_tokens)
    start = time.perf_counter()
    estimates = batched.estimate_many([(p, []) for p in problems])
    elapsed = time.perf_counter() - start
    same = sum(a.answers == b.answers for a, b in zip(estimates, one_by_one))
    print(f"prover, estimate_many: {len(estimates)} J-estimates in {batch_engine.calls} call(s), {elapsed:.2f} s "
          f"= {len(estimates) / elapsed:.2f} J-estimates/s; {same}/{len(estimates)} with the same answers as one by one")


def next_episode(engine: Any, template: PromptTemplate, obs: dict, info: dict, args: argparse.Namespace,
                 seed: int) -> str:
    """One paragraph of reasoning continuing the trace; the forced answer when the model writes nothing."""
    left = info.get("tokens_left")
    cap = args.episode_tokens if left is None else max(1, min(args.episode_tokens, int(left)))
    prompt = template.reasoning_prompt(engine, obs["problem"], list(obs["episodes"]))
    sampling = SamplingConfig(max_new_tokens=cap, temperature=0.7, stop=(template.separator,))
    text = engine.generate([prompt], sampling, seed=seed)[0][0].text
    if text.strip():
        return text
    answers = info.get("prover_answers") or ("0",)
    return f"The final answer is $\\boxed{{{answers[0] or '0'}}}$."


def measure_env(engine: Any, args: argparse.Namespace) -> None:
    counting = CountingEngine(engine)
    env = gym.make(
        "TTC-Math-v0", engine=counting, source=args.source, max_episodes=args.budget,
        num_prover_samples=args.k, max_answer_tokens=args.max_answer_tokens,
    )
    template = env.unwrapped.template  # the env's documented accessors: template, prover
    correct = episodes = 0
    start = time.perf_counter()
    for i in range(args.problems):
        obs, info = env.reset(seed=i)
        done = False
        while not done:
            action = next_episode(counting, template, obs, info, args, seed=1000 * i + info["episodes_used"])
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        correct += int(info["outcome"] > 0)
        episodes += info["episodes_used"]
    elapsed = time.perf_counter() - start
    estimates = env.unwrapped.prover.calls
    env.close()
    print(f"TTC-Math-v0, H={args.budget}, K={args.k}: {args.problems} problems in {elapsed:.1f} s; "
          f"accuracy {correct / args.problems:.2f}, {episodes / args.problems:.1f} episodes per problem; "
          f"{counting.tokens} tokens generated = {counting.tokens / elapsed:,.0f} tokens/s; "
          f"{estimates} J-estimates = {estimates / elapsed:.2f} J-estimates/s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Qwen/Qwen2.5-Math-1.5B-Instruct", help="HF model dir or hub id")
    parser.add_argument("--engine", default=None,
                        help="engine spec instead of vllm:MODEL (e.g. 'default' or 'transformers:DIR')")
    parser.add_argument("--max-model-len", type=int, default=4096, help="vLLM max_model_len")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    parser.add_argument("--source", default="procedural", help="problem source (e.g. procedural, a JSONL file)")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--n", type=int, default=8, help="samples per prompt in the generation measurement")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--k", type=int, default=8, help="prover samples per J-estimate (MRT: 8)")
    parser.add_argument("--max-answer-tokens", type=int, default=24)
    parser.add_argument("--budget", type=int, default=4, help="episode budget H of the env rollouts")
    parser.add_argument("--episode-tokens", type=int, default=256, help="token cap of one episode")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    if args.engine is None:
        engine = make_engine(f"vllm:{args.model}", max_model_len=args.max_model_len,
                             gpu_memory_utilization=args.gpu_memory_utilization)
    else:
        engine = make_engine(args.engine)
    print(f"loaded {engine.name} in {time.perf_counter() - start:.1f} s")

    source, rng = make_source(args.source), np.random.default_rng(0)
    problems = [source.sample(rng) for _ in range(args.problems)]
    measure_generation(engine, [p.question for p in problems], args)
    measure_prover(engine, problems, args)
    measure_env(engine, args)


if __name__ == "__main__":
    main()
