"""What the dense reward costs: the LLM prover's speed, naive vs optimized, on the static decode loop
and on the transformers loop before it, next to the machine's roofline.

    python examples/benchmarks/bench_engine.py [--threads N] [--envs 1 8] [--k 8] [--episodes 3]

One run, on the default model (SmolLM2-135M-Instruct, `make_engine(None, max_batch_size=64)`), for
each number of envs, the traces below run twice on the same engine: with `decode_loop="hf"` (the
transformers loop, issue 28's baseline) and `decode_loop="static"` (the default); the naive path runs
on the transformers loop (today's naive reference, the same for both):

- traces: each env gets a procedural problem; for `--episodes` steps the policy writes an episode
  of `--episode-tokens` tokens (temperature 0.7, no stop string, all envs in one engine call), then
  the prover estimates J for every env (K forced answers of up to `--answer-tokens` tokens each);
- optimized prover: `LLMProver.estimate_many` over all envs in one engine call — per-row seeds,
  the K samples of a prompt decoded against one shared copy of its prefix, prompt prefixes (and the
  policy's episodes) reused from the engine's prefix store, so only new text is encoded;
- naive prover: the same kind of prefixes, but one `generate` call per prover sample (n = 1),
  every call re-encoding the full prompt (prefix store off). It is sequential, so its rate does not
  depend on the number of envs; it is measured on `--naive-estimates` J-estimates per configuration
  (spread over the trace's steps) to keep the run short;
- dense-reward cost: (policy time + prover time) / policy time over the episode steps;
- roofline: the best fp32 `torch.matmul` FLOP/s measured here (the model runs in fp32 on a CPU)
  divided by the model's FLOPs per token (2 x parameters): the most tokens/s the model can process.
  "gen tok/s" counts generated (answer) tokens; "model tok/s" counts every token the model
  processed (prompt tokens encoded + tokens generated), both per second of wall time; "% roof" is
  that rate over the roofline (model tok/s over the roofline is the model-FLOPs utilization);
- memory: a decoding step reads every weight once whatever its number of rows, so decoding a few
  rows is bounded by memory bandwidth (measured by streaming a 512 MB tensor), not by FLOPs.
  "% attain" is the time the roofline model allows for a path's work (encoded tokens at the
  matmul rate, plus its decoding steps at the larger of weight-streaming time and FLOP time)
  over the time it took: how close the path runs to what this machine can do for that work. The
  "roofline" line under each table gives the dense-reward cost if both paths took exactly that time
  (the least this work can cost here), and if the policy took twice its time, and the prover's
  speedup over the naive path (as measured) if the prover took its time; the cost rises as the
  policy gets faster, since its steps are bound by bandwidth and the prover's tokens by FLOPs. The
  forced answers are a few tokens after a ~35-token prompt suffix, so most of the prover's FLOPs
  go to encoding; generated tokens alone can never reach a large share of the roofline.

The CPU may be shared: the load average is printed with the figures. Under load, torch's default
thread count can thrash; compare `--threads 1` and `--threads 2`.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from ttc_gym.engines import SamplingConfig, make_engine
from ttc_gym.engines.base import generate_per_prompt
from ttc_gym.engines.transformers_engine import TransformersEngine
from ttc_gym.grading import answers_equivalent, normalize_answer
from ttc_gym.llm_prover import LLMProver
from ttc_gym.problems import make_source
from ttc_gym.prompts import PromptTemplate, close_boxed
from ttc_gym.seeding import prefix_seed


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def cpu_model() -> str:
    """The CPU's model name (as `lscpu` prints it), or the processor architecture when unknown."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def stream_bandwidth(megabytes: int = 512) -> float:
    """Best bytes/s of summing a float32 tensor of `megabytes` (it does not fit in any cache)."""
    x = torch.ones(megabytes * 2**20 // 4)
    x.sum()  # warm-up
    best = min(_timed(x.sum) for _ in range(5))
    return x.numel() * 4 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_flops(dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best FLOP/s of torch.matmul over a few shapes (square, and the model's layer shapes)."""
    best = 0.0
    for m, k, n in ((1024, 1024, 1024), (2048, 2048, 2048), (512, 576, 1536), (256, 1536, 576)):
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        a @ b  # warm-up
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            a @ b
            count += 1
        best = max(best, 2 * m * k * n * count / (time.perf_counter() - start))
    return best


@dataclass
class Tally:
    """Work and wall time of one path."""

    seconds: float = 0.0
    estimates: int = 0
    generated: int = 0
    encoded: int = 0  # prompt tokens encoded
    decoded: int = 0  # tokens decoded (rows x steps)
    steps: int = 0  # decoding forwards

    def add_work(self, engine: TransformersEngine, before: dict) -> None:
        stats = engine.stats
        self.encoded += stats["prefill_tokens"] - before["prefill_tokens"]
        self.decoded += stats["decode_tokens"] - before["decode_tokens"]
        self.steps += stats["decode_steps"] - before["decode_steps"]

    @property
    def processed(self) -> int:
        """Every token the model processed: prompt tokens encoded + tokens decoded."""
        return self.encoded + self.decoded

    def ideal_seconds(self, flops_per_token: float, flops: float, weight_bytes: float, bandwidth: float) -> float:
        """The time the roofline model (see the module docstring) allows for this path's work."""
        return (self.encoded * flops_per_token / flops
                + max(self.steps * weight_bytes / bandwidth, self.decoded * flops_per_token / flops))

    def attainable(self, flops_per_token: float, flops: float, weight_bytes: float, bandwidth: float) -> float:
        """The share of the roofline model's time in the time taken."""
        ideal = self.ideal_seconds(flops_per_token, flops, weight_bytes, bandwidth)
        return ideal / self.seconds if self.seconds else float("nan")

    def rate(self, value: float) -> float:
        return value / self.seconds if self.seconds else float("nan")


class CountingEngine:
    """Forwards to an engine and counts the tokens its completions generated."""

    per_prompt_seeds = True

    def __init__(self, engine):
        self.engine, self.name, self.generated = engine, engine.name, 0

    def generate(self, prompts, sampling, *, seed=None):
        rows = self.engine.generate(prompts, sampling, seed=seed)
        self.generated += sum(c.num_tokens for row in rows for c in row)
        return rows

    def count_tokens(self, text):
        return self.engine.count_tokens(text)

    def format_chat(self, *args, **kwargs):
        return self.engine.format_chat(*args, **kwargs)


def run_traces(engine: TransformersEngine, problems: list, args, template: PromptTemplate):
    """The episode loop with the optimized prover: (policy tally, prover tally, prefixes seen)."""
    engine.reset_prefix_cache()
    counter = CountingEngine(engine)
    prover = LLMProver(counter, num_samples=args.k, max_answer_tokens=args.answer_tokens, seed=args.seed)
    policy_sampling = SamplingConfig(max_new_tokens=args.episode_tokens, temperature=0.7)
    episodes: list[list[str]] = [[] for _ in problems]
    policy, optimized, prefixes = Tally(), Tally(), []
    prover.estimate_many([(p, ()) for p in problems])  # J_0 (not timed: prefixes without episodes)
    for step in range(args.episodes):
        prompts = [template.reasoning_prompt(engine, p.question, eps) for p, eps in zip(problems, episodes)]
        seeds = [prefix_seed(args.seed, "episode", p.question, *eps) for p, eps in zip(problems, episodes)]
        before, start = dict(engine.stats), time.perf_counter()
        rows = generate_per_prompt(engine, prompts, policy_sampling, seeds)
        policy.seconds += time.perf_counter() - start
        policy.add_work(engine, before)
        policy.generated += sum(row[0].num_tokens for row in rows)
        for eps, row in zip(episodes, rows):
            eps.append(row[0].text.strip() or "Let me think.")
        items = [(p, tuple(eps)) for p, eps in zip(problems, episodes)]
        generated, before, start = counter.generated, dict(engine.stats), time.perf_counter()
        prover.estimate_many(items)
        optimized.seconds += time.perf_counter() - start
        optimized.add_work(engine, before)
        optimized.generated += counter.generated - generated
        optimized.estimates += len(items)
        prefixes += items
    return policy, optimized, prefixes


def run_naive(naive: TransformersEngine, items: list, args, template: PromptTemplate) -> Tally:
    """J-estimates with one generate call per prover sample, each re-encoding the whole prompt."""
    tally = Tally()
    sampling = LLMProver(naive, num_samples=1, max_answer_tokens=args.answer_tokens).sampling  # n = 1
    for problem, episodes in items:
        prompt = template.forced_answer_prompt(naive, problem.question, episodes)
        seed = prefix_seed(args.seed, problem.id, problem.question, *episodes)
        before, start = dict(naive.stats), time.perf_counter()
        correct = []  # graded as the prover grades: part of a J-estimate's cost on both paths
        for k in range(args.k):
            [[c]] = naive.generate([prompt], sampling, seed=seed + k)
            tally.generated += c.num_tokens
            answer = normalize_answer(close_boxed(c.text))
            correct.append(bool(answer) and answers_equivalent(answer, problem.answer))
        tally.seconds += time.perf_counter() - start
        tally.add_work(naive, before)
        tally.estimates += 1
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8], help="numbers of envs to measure")
    parser.add_argument("--k", type=int, default=8, help="prover samples per J-estimate (K)")
    parser.add_argument("--episodes", type=int, default=3, help="episodes per trace (prover estimates per env)")
    parser.add_argument("--episode-tokens", type=int, default=64, help="tokens the policy writes per episode")
    parser.add_argument("--answer-tokens", type=int, default=24, help="most tokens of one forced answer")
    parser.add_argument("--naive-estimates", type=int, default=2, help="J-estimates measured on the naive path")
    parser.add_argument("--max-batch-size", type=int, default=64, help="rows decoded together (optimized path)")
    parser.add_argument("--engine", default=None, help="engine spec (default: the default model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="a tiny random model instead (smoke test of the script)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU {cpu_model()}; load average {load()}")

    start = time.perf_counter()
    if args.tiny:
        from ttc_gym.engines.testing import tiny_random_engine

        engine = tiny_random_engine(max_batch_size=args.max_batch_size)
    else:
        engine = make_engine(args.engine, max_batch_size=args.max_batch_size)
    print(f"engine {engine.name} loaded in {time.perf_counter() - start:.1f} s")
    params = sum(p.numel() for p in engine.model.parameters())
    dtype = next(engine.model.parameters()).dtype
    flops = matmul_flops(dtype)
    roofline = flops / (2 * params)
    print(f"roofline: matmul {flops / 1e9:.1f} GFLOP/s ({dtype}) / {2 * params / 1e6:.0f} MFLOP per token "
          f"(2 x {params / 1e6:.1f} M parameters) = {roofline:.1f} tokens/s; load average {load()}")
    bandwidth = stream_bandwidth()
    weight_bytes = sum(p.numel() * p.element_size() for p in engine.model.parameters())
    print(f"memory: {bandwidth / 1e9:.1f} GB/s streaming; a decoding step reads {weight_bytes / 1e6:.0f} MB of "
          f"weights: >= {1e3 * weight_bytes / bandwidth:.1f} ms, so {bandwidth / weight_bytes:.0f} steps/s at most")
    machine = dict(flops_per_token=2 * params, flops=flops, weight_bytes=weight_bytes, bandwidth=bandwidth)
    attain = functools.partial(Tally.attainable, **machine)
    ideal = functools.partial(Tally.ideal_seconds, **machine)

    naive = TransformersEngine(engine.model, tokenizer=engine.tokenizer, max_batch_size=1, prefix_cache_bytes=0,
                               name="naive")
    answers_equivalent("x + 1", "1 + x")  # start the grader's worker process before any timing
    template = PromptTemplate()
    source = make_source("procedural")
    naive.decode_loop = "hf"
    loops = ("hf", "static")
    rows = []
    for num_envs in args.envs:
        problems = [source.sample(np.random.default_rng(args.seed + i)) for i in range(num_envs)]
        paths = {}
        for loop in loops:
            engine.decode_loop = loop  # (empties the prefix store: each run starts cold)
            paths[loop] = run_traces(engine, problems, args, template)
        prefixes = paths["hf"][2]
        picks = [prefixes[(i * len(prefixes)) // args.naive_estimates] for i in range(min(args.naive_estimates, len(prefixes)))]
        slow = run_naive(naive, picks, args, template)
        rows.append((num_envs, slow, {loop: paths[loop][:2] for loop in loops}, load()))
        print(f"  {num_envs} env(s) done; load average {load()}")
    engine.decode_loop = "static"

    print()
    print(f"K = {args.k}, answers <= {args.answer_tokens} tokens, episodes of {args.episode_tokens} tokens, "
          f"{args.episodes} per trace; {torch.get_num_threads()} torch threads; roofline {roofline:.1f} tokens/s")
    header = (f"{'envs':>4} {'path':>14} {'J-est':>6} {'J-est/s':>8} {'gen tok':>8} {'gen tok/s':>10} {'% roof':>7} "
              f"{'model tok/s':>12} {'% roof':>7} {'encoded':>8} {'decoded':>8} {'steps':>6} {'% attain':>9} "
              f"{'speedup':>8}")
    print(header)
    bound = bandwidth / weight_bytes  # decoding steps/s the weight streaming allows
    for num_envs, slow, by_loop, at in rows:
        lines = [("naive", slow, None)]
        for loop, (policy, fast) in by_loop.items():
            lines += [(f"{loop}:prover", fast, "prover"), (f"{loop}:policy", policy, "policy")]
        for label, t, kind in lines:
            if kind == "policy":
                estimates, speedup = f"{'':>6} {'':>8}", ""
            else:
                estimates = f"{t.estimates:>6} {t.rate(t.estimates):>8.3f}"
                speedup = f"{t.rate(t.estimates) / slow.rate(slow.estimates):>7.1f}x"
            print(f"{num_envs:>4} {label:>14} {estimates} {t.generated:>8} "
                  f"{t.rate(t.generated):>10.1f} {100 * t.rate(t.generated) / roofline:>6.1f}% "
                  f"{t.rate(t.processed):>12.1f} {100 * t.rate(t.processed) / roofline:>6.1f}% "
                  f"{t.encoded:>8} {t.decoded:>8} {t.steps:>6} {100 * attain(t):>8.1f}% {speedup:>8}")
        for loop, (policy, fast) in by_loop.items():
            cost = (policy.seconds + fast.seconds) / policy.seconds
            print(f"{num_envs:>4} {loop:>6}: dense-reward cost (episode + prover) / episode = "
                  f"({policy.seconds:.1f} s + {fast.seconds:.1f} s) / {policy.seconds:.1f} s = {cost:.2f}; policy decoding "
                  f"{policy.rate(policy.steps):.1f} steps/s x {policy.decoded / max(1, policy.steps):.1f} rows = "
                  f"{100 * policy.rate(policy.steps) / bound:.0f}% of the bandwidth bound ({bound:.0f} steps/s; "
                  f"its prompt encoding included)")
        (hp, hf_fast), (sp, st_fast) = by_loop["hf"], by_loop["static"]
        # What the roofline allows for this work (the static loop's: its prover computes fewer idle rows).
        floor = (ideal(sp) + ideal(st_fast)) / ideal(sp)
        half = (2 * ideal(sp) + ideal(st_fast)) / (2 * ideal(sp))
        print(f"{num_envs:>4} roofline: dense-reward cost >= {floor:.2f} for this work (policy {ideal(sp):.1f} s at "
              f"its bound, prover {ideal(st_fast):.1f} s at the matmul rate); {half:.2f} with the policy at 50% of "
              f"its bound and the prover at the rate; the prover at the rate: "
              f"{st_fast.estimates / ideal(st_fast) / slow.rate(slow.estimates):.1f}x naive")
        print(f"{num_envs:>4} static vs hf: policy {hp.seconds / sp.seconds:.2f}x faster, prover "
              f"{hf_fast.seconds / st_fast.seconds:.2f}x faster; load average {at}")
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
