"""One-shot GPU check: the transformers engine, the prover and one trainer iteration on CUDA in bf16,
each next to the GPU's roofline measured in the same run. Offline: the models are randomly initialised
at real shapes, and the tokenizer is built here (see docs/gpu.md for the wheels to carry).

    python examples/benchmarks/gpu_check.py --out gpu_check_out        # a CUDA GPU, bf16; under 8 minutes on an H100
    python examples/benchmarks/gpu_check.py --dry-run --out /tmp/gc    # the same code on a CPU, tiny shapes, seconds

What it measures, in this order (a measurement that would start after `--budget-s` seconds is
skipped and listed under "skipped", so the run ends in time whatever the GPU):
1. roofline: the best bf16 `torch.matmul` FLOP/s (square products) and the memory bandwidth (a
   device-to-device copy, bytes read + written);
2. generation: the transformers engine (`TransformersEngine`, shared-prefix decoding, prefix store
   cleared before each run) sampling `--gen-tokens` tokens for 1, 8 and 64 distinct reasoning prompts
   at temperature 0.7, on Qwen2.5-0.5B / 1.5B / 7B shapes -> generated tokens/s;
3. prover: J-estimates/s with K = 8 over 8 and 64 envs (`--envs`) on the `--prover-shape` model, naive (one
   `generate` per sample, full prompt re-encoded) vs optimized (`LLMProver.estimate_many`, one call),
   with `examples/benchmarks/bench_engine.py`'s `run_traces` / `run_naive` (the CPU benchmark's own functions);
4. trainer: one iteration of the LLM trainer (`ttc_gym.training.llm_train.train`, MRT, 2
   problems x 4 rollouts, H = 2 episodes, K = 8) with a policy and a prover of the `--train-shape`,
   its wall time (setup + rollouts + update, from the trainer's own log row; the checkpoint the
   trainer writes at the end is not counted, and is deleted).

"fraction of roofline" is the time the roofline model allows for a measurement's work over the time it
took (`bench_engine.Tally.attainable`): prompt tokens encoded at the matmul rate (2 x parameters FLOPs
each) plus decoding steps at the larger of weight-streaming time (every weight read once per step) and
FLOP time; for the trainer, also 6 x parameters FLOPs per token of each training forward + backward and
16 bytes per parameter streamed by the AdamW step. 1.0 is the hardware's limit for that work.

Writes `gpu_check.json` and `gpu_check.md` (one markdown table) to `--out`. The models' text is
gibberish (random weights): only the speeds mean anything. The tokenizer is a BPE over printable ASCII
whose vocabulary has the real model's size, so embeddings, the LM head and sampling cost what they cost.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import string
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_engine, beside this file

from bench_engine import Tally, run_naive, run_traces  # noqa: E402

from ttc_gym.engines.base import SamplingConfig  # noqa: E402
from ttc_gym.engines.transformers_engine import TransformersEngine  # noqa: E402
from ttc_gym.grading import answers_equivalent  # noqa: E402
from ttc_gym.problems import make_source  # noqa: E402
from ttc_gym.prompts import PromptTemplate  # noqa: E402

# Qwen2.5 shapes (the models' config.json), randomly initialised here: no download.
QWEN25_SHAPES = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
}
# --dry-run: the same code on a CPU, with shapes small enough to run in seconds.
TINY_SHAPES = {
    "tiny-a": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, vocab_size=1024, tie_word_embeddings=True),
    "tiny-b": dict(hidden_size=96, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, vocab_size=1024, tie_word_embeddings=False),
}
COMMON = dict(max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6)
BATCHES = (1, 8, 64)
K = 8
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>")
ALPHABET = tuple(string.ascii_letters + string.digits + string.punctuation + " \n")


# -- the hardware's roofline ---------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops(device: torch.device, dtype: torch.dtype, size: int, repeats: int) -> float:
    """Best FLOP/s of `size`^3 matrix products on `device` (3 rounds of `repeats`, after a warm-up)."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=g)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=g)
    (a @ b)
    synchronize(device)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start))
    return best


def copy_bandwidth(device: torch.device, megabytes: int, repeats: int) -> float:
    """Best bytes/s (read + written) of copying a `megabytes` tensor into another on `device`."""
    x = torch.ones(megabytes * 2**20 // 4, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    synchronize(device)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            y.copy_(x)
        synchronize(device)
        best = max(best, 2 * x.numel() * 4 * repeats / (time.perf_counter() - start))
    return best


@dataclass(frozen=True)
class Roofline:
    flops: float  # matmul FLOP/s in the model's dtype
    bandwidth: float  # bytes/s

    def fraction(self, tally: Tally, params: int, weight_bytes: int) -> float:
        """`Tally.attainable`: the roofline model's time for the tally's work over its time."""
        return tally.attainable(flops_per_token=2 * params, flops=self.flops, weight_bytes=weight_bytes,
                                bandwidth=self.bandwidth)

    def seconds(self, tally: Tally, params: int, weight_bytes: int) -> float:
        """The roofline model's time for the tally's work (whatever time it took)."""
        return self.fraction(replace(tally, seconds=1.0), params, weight_bytes)


# -- models and tokenizer, built here ------------------------------------------------------------------


def build_tokenizer(vocab_size: int) -> Any:
    """A fast BPE tokenizer over printable ASCII with exactly `vocab_size` tokens: the special tokens
    (ChatML's, an unknown-character token), the characters, then pairs and triples of them, each made
    by one merge. Every id decodes to text, so a random model's samples are valid token ids."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(SPECIALS + ALPHABET)}
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size must be at least {len(vocab)}, got {vocab_size}.")
    merges = []
    pieces = list(ALPHABET)
    while len(vocab) < vocab_size:
        longer = []
        for head in pieces:
            for c in ALPHABET:
                if len(vocab) == vocab_size:
                    break
                vocab[head + c] = len(vocab)
                merges.append((head, c))
                longer.append(head + c)
        pieces = longer
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIALS))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>")


def build_model(shape: dict, tokenizer: Any, device: torch.device, dtype: torch.dtype, seed: int) -> Any:
    """A randomly initialised Qwen2 causal LM of `shape`, built directly on `device` in `dtype`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(**shape, **COMMON, bos_token_id=None, eos_token_id=eos, pad_token_id=pad)
    previous = torch.get_default_dtype()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.device(device):
        torch.manual_seed(seed)
        torch.set_default_dtype(dtype)
        try:
            model = Qwen2ForCausalLM(config)
        finally:
            torch.set_default_dtype(previous)
    model = model.to(device=device, dtype=dtype).eval()
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad
    return model


def sizes(model: Any) -> tuple[int, int]:
    """(parameters, weight bytes) of `model` (tied weights counted once)."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- the measurements ----------------------------------------------------------------------------------


def measure_generation(engine: TransformersEngine, prompts: list[str], batch: int, new_tokens: int,
                       roof: Roofline, params: int, weight_bytes: int) -> dict:
    """One timed `generate` of `batch` distinct prompts (after a short warm-up), cold prefix store."""
    sampling = SamplingConfig(max_new_tokens=new_tokens, temperature=0.7)
    engine.generate(prompts[:batch], SamplingConfig(max_new_tokens=2, temperature=0.7), seed=1)  # warm-up
    engine.reset_prefix_cache()
    tally, before = Tally(), dict(engine.stats)
    synchronize(engine.device)
    start = time.perf_counter()
    rows = engine.generate(prompts[:batch], sampling, seed=0)
    synchronize(engine.device)
    tally.seconds = time.perf_counter() - start
    tally.add_work(engine, before)
    tally.generated = sum(c.num_tokens for row in rows for c in row)
    return {"batch": batch, "new_tokens": new_tokens, "seconds": tally.seconds, "generated_tokens": tally.generated,
            "gen_tokens_per_s": tally.rate(tally.generated), "model_tokens_per_s": tally.rate(tally.processed),
            "decode_steps": tally.steps, "fraction_of_roofline": roof.fraction(tally, params, weight_bytes)}


def measure_prover(engine: TransformersEngine, naive: TransformersEngine, num_envs: int, args: Any,
                   roof: Roofline, params: int, weight_bytes: int) -> list[dict]:
    """Optimized vs naive J-estimates over `num_envs` envs (bench_engine's `run_traces` / `run_naive`)."""
    source = make_source("procedural")
    problems = [source.sample(np.random.default_rng(args.seed + i)) for i in range(num_envs)]
    template = PromptTemplate()
    _, optimized, prefixes = run_traces(engine, problems, args, template)
    picks = [prefixes[(i * len(prefixes)) // args.naive_estimates] for i in range(min(args.naive_estimates, len(prefixes)))]
    slow = run_naive(naive, picks, args, template)
    speedup = optimized.rate(optimized.estimates) / slow.rate(slow.estimates)
    return [{"envs": num_envs, "k": args.k, "path": path, "j_estimates": t.estimates, "seconds": t.seconds,
             "j_estimates_per_s": t.rate(t.estimates), "gen_tokens_per_s": t.rate(t.generated),
             "fraction_of_roofline": roof.fraction(t, params, weight_bytes),
             "speedup": speedup if path == "optimized" else 1.0}
            for path, t in (("naive", slow), ("optimized", optimized))]


class TrainingTokens:
    """Counts the tokens of `model`'s forwards run with gradients on (the trainer's loss passes)."""

    def __init__(self, model: Any):
        self.tokens = 0
        self.handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if torch.is_grad_enabled() and isinstance(ids, torch.Tensor):
            self.tokens += ids.numel()


def measure_trainer(policy: TransformersEngine, prover: TransformersEngine, shape_name: str, episode_tokens: int,
                    roof: Roofline, params: int, weight_bytes: int, device: torch.device) -> dict:
    """One MRT iteration of the LLM trainer with these engines, through its public `train`."""
    from ttc_gym.training.llm_config import LLMTrainConfig
    from ttc_gym.training.llm_train import train

    out = Path(tempfile.mkdtemp(prefix="gpu_check_train_"))
    spec = f"transformers:random/{shape_name}"  # names the shape; the engines are passed in, nothing is loaded
    config = LLMTrainConfig(algo="mrt-online", model=spec, prover_model=spec, device=str(device), iterations=1,
                            problems_per_iter=2, group_size=4, micro_batch_size=4, max_episodes=2,
                            max_episode_tokens=episode_tokens, num_prover_samples=K, out=str(out),
                            tensorboard=False, seed=0)
    counter = TrainingTokens(policy.model)
    policy_before, prover_before = dict(policy.stats), dict(prover.stats)
    try:
        synchronize(device)
        start = time.perf_counter()
        result = train(config, policy_engine=policy, prover_engine=prover)
        synchronize(device)
        total = time.perf_counter() - start
    finally:
        counter.handle.remove()
        shutil.rmtree(out, ignore_errors=True)
    row = result.history[0]
    rollouts, scored = Tally(), Tally()
    rollouts.add_work(policy, policy_before)
    scored.add_work(prover, prover_before)
    ideal = (roof.seconds(rollouts, params, weight_bytes) + roof.seconds(scored, params, weight_bytes)
             + 6 * params * counter.tokens / roof.flops + 16 * params / roof.bandwidth)
    return {"rollouts": config.batch_size, "episodes_per_rollout": row["episodes"], "iteration_wall_s": row["wall_s"],
            "train_call_s": total, "training_tokens": counter.tokens, "roofline_s": ideal,
            "fraction_of_roofline": ideal / row["wall_s"]}


# -- the run -------------------------------------------------------------------------------------------


class Budget:
    """Runs measurements in order while time is left; a measurement that would start after `seconds`
    is recorded as skipped. After each one, `report` gets the skipped list and the time so far and
    `save(report)` runs, so a run stopped from outside still leaves what it measured."""

    def __init__(self, seconds: float, report: dict, save: Callable[[dict], None]):
        self.seconds, self.start, self.skipped = seconds, time.perf_counter(), []
        self.report, self.save = report, save

    def run(self, label: str, fn: Callable[[], Any]) -> Any:
        if time.perf_counter() - self.start > self.seconds:
            self.skipped.append(label)
            result = None
        else:
            print(f"[{time.perf_counter() - self.start:6.1f} s] {label}", flush=True)
            result = fn()
        self.report["skipped"] = self.skipped
        self.report["total_s"] = time.perf_counter() - self.start
        self.save(self.report)
        return result


def run(args: argparse.Namespace, save: Callable[[dict], None]) -> dict:
    """Every measurement in order (see the module docstring); `save(report)` after each."""
    if args.dry_run:
        device, dtype, shapes = torch.device("cpu"), torch.float32, TINY_SHAPES  # bf16 matmuls crawl on a CPU
        gen_shapes, prover_shape, train_shape = list(shapes), "tiny-b", "tiny-a"
        mm_size, mm_repeats, bw_mb, bw_repeats = 256, 5, 16, 5
    else:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_check: no CUDA device is visible to torch (torch.cuda.is_available() is False). "
                             "Run it on a GPU machine, or with --dry-run on a CPU.")
        device, dtype, shapes = torch.device("cuda"), torch.bfloat16, QWEN25_SHAPES
        gen_shapes, prover_shape, train_shape = args.gen_shapes, args.prover_shape, args.train_shape
        mm_size, mm_repeats, bw_mb, bw_repeats = 8192, 20, 2048, 20
    for name in [*gen_shapes, prover_shape, train_shape]:
        if name not in shapes:
            raise SystemExit(f"gpu_check: unknown shape {name!r}; expected one of {sorted(shapes)}.")
    report: dict = {
        "dry_run": bool(args.dry_run), "device": str(device), "dtype": str(dtype).removeprefix("torch."),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "python": platform.python_version(), "k": K, "shapes": {n: shapes[n] for n in dict.fromkeys(
            [*gen_shapes, prover_shape, train_shape])},
        "generation": [], "prover": [], "trainer": None, "skipped": [], "total_s": 0.0,
    }
    budget = Budget(args.budget_s, report, save)
    roof = Roofline(matmul_flops(device, dtype, mm_size, mm_repeats), copy_bandwidth(device, bw_mb, bw_repeats))
    report["roofline"] = {"matmul_flops": roof.flops, "bandwidth_bytes_per_s": roof.bandwidth,
                          "matmul_size": mm_size, "copy_megabytes": bw_mb}
    tokenizers: dict[int, Any] = {}

    def engine_for(name: str, seed: int, **kwargs: Any) -> TransformersEngine:
        vocab = shapes[name]["vocab_size"]
        if vocab not in tokenizers:
            tokenizers[vocab] = build_tokenizer(vocab)
        model = build_model(shapes[name], tokenizers[vocab], device, dtype, seed)
        # small_row_matmul=False: the dry run runs what the GPU runs (there the CPU-only patch is off anyway)
        return TransformersEngine(model, tokenizer=tokenizers[vocab], device=device, name=f"{name}:{seed}",
                                  small_row_matmul=False, **kwargs)

    source, template = make_source("procedural"), PromptTemplate()
    questions = [source.sample(np.random.default_rng(i)).question for i in range(max(BATCHES))]
    for name in gen_shapes:
        def gen(name=name):
            engine = engine_for(name, seed=0, max_batch_size=max(BATCHES))
            params, weight_bytes = sizes(engine.model)
            prompts = [template.reasoning_prompt(engine, q, []) for q in questions]
            for batch in BATCHES:
                row = budget.run(f"generation {name} batch {batch}", lambda b=batch: measure_generation(
                    engine, prompts, b, args.gen_tokens, roof, params, weight_bytes))
                if row is not None:
                    report["generation"].append({"shape": name, "params": params, **row})
            del engine
            free(device)
        budget.run(f"generation {name}", gen)

    def prover() -> None:
        engine = engine_for(prover_shape, seed=0, max_batch_size=64)
        naive = TransformersEngine(engine.model, tokenizer=engine.tokenizer, device=device, max_batch_size=1,
                                   prefix_cache_bytes=0, small_row_matmul=False, name="naive")
        params, weight_bytes = sizes(engine.model)
        bench_args = SimpleNamespace(k=K, answer_tokens=args.answer_tokens, seed=0, episode_tokens=args.episode_tokens,
                                     episodes=args.episodes, naive_estimates=args.naive_estimates)
        answers_equivalent("x + 1", "1 + x")  # start the grader's worker process before any timing
        for num_envs in args.envs:
            rows = budget.run(f"prover {prover_shape} {num_envs} envs", lambda n=num_envs: measure_prover(
                engine, naive, n, bench_args, roof, params, weight_bytes))
            for row in rows or []:
                report["prover"].append({"shape": prover_shape, "params": params, **row})
        del engine, naive
        free(device)

    budget.run(f"prover {prover_shape}", prover)

    def trainer() -> None:
        policy = engine_for(train_shape, seed=0, max_batch_size=64)
        prover_engine = engine_for(train_shape, seed=1, max_batch_size=64)
        params, weight_bytes = sizes(policy.model)
        row = measure_trainer(policy, prover_engine, train_shape, args.episode_tokens, roof, params, weight_bytes,
                              device)
        report["trainer"] = {"shape": train_shape, "params": params, **row}
        del policy, prover_engine
        free(device)

    budget.run(f"trainer {train_shape}", trainer)
    return report


def markdown(report: dict) -> str:
    """The report as one markdown table (one row per measurement), under a line naming the run."""
    roof = report["roofline"]
    head = (f"{report['gpu']} ({report['device']}, {report['dtype']}; torch {report['torch']}, transformers "
            f"{report['transformers']}{', DRY RUN: tiny shapes on a CPU' if report['dry_run'] else ''}): "
            f"matmul {roof['matmul_flops'] / 1e12:.3g} TFLOP/s, copy {roof['bandwidth_bytes_per_s'] / 1e9:.4g} GB/s; "
            f"{report['total_s']:.0f} s in all")
    lines = [head, "", "| measurement | shape | setting | rate | fraction of roofline |", "|---|---|---|---|---|"]
    for r in report["generation"]:
        lines.append(f"| generation | {r['shape']} | batch {r['batch']}, {r['new_tokens']} new tokens | "
                     f"{r['gen_tokens_per_s']:,.0f} tokens/s | {r['fraction_of_roofline']:.3f} |")
    for r in report["prover"]:
        extra = f" ({r['speedup']:.1f}x naive)" if r["path"] == "optimized" else ""
        lines.append(f"| prover {r['path']} | {r['shape']} | {r['envs']} envs, K = {r['k']} | "
                     f"{r['j_estimates_per_s']:.2f} J-estimates/s{extra} | {r['fraction_of_roofline']:.3f} |")
    t = report["trainer"]
    if t is not None:
        lines.append(f"| trainer iteration | {t['shape']} | MRT, {t['rollouts']} rollouts, K = {report['k']} | "
                     f"{t['iteration_wall_s']:.1f} s wall | {t['fraction_of_roofline']:.3f} |")
    for label in report["skipped"]:
        lines.append(f"| {label} | | skipped: time budget | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU (seconds): checks the script")
    parser.add_argument("--gen-shapes", nargs="+", default=list(QWEN25_SHAPES), help="shapes of the generation runs")
    parser.add_argument("--prover-shape", default="qwen2.5-1.5b", help="shape of the prover's model")
    parser.add_argument("--train-shape", default="qwen2.5-0.5b", help="shape of the trainer's policy and prover")
    parser.add_argument("--gen-tokens", type=int, default=None, help="new tokens per generation run (default 128; dry run 8)")
    parser.add_argument("--episode-tokens", type=int, default=None, help="tokens per policy episode (default 64; dry run 8)")
    parser.add_argument("--answer-tokens", type=int, default=None, help="most tokens of a forced answer (default 24; dry run 6)")
    parser.add_argument("--envs", type=int, nargs="+", default=None, help="env counts of the prover runs (default 8 64; dry run 2 8)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per trace in the prover runs (default 2; dry run 1)")
    parser.add_argument("--naive-estimates", type=int, default=2, help="J-estimates timed on the naive path")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own; dry run 1, as CI's CPUs are shared)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="no measurement starts after this many seconds (default 390; dry run 120)")
    args = parser.parse_args(argv)
    small = args.dry_run
    for name, full, tiny in (("gen_tokens", 128, 8), ("episode_tokens", 64, 8), ("answer_tokens", 24, 6),
                             ("envs", [8, 64], [2, 8]), ("episodes", 2, 1), ("budget_s", 390.0, 120.0)):
        if getattr(args, name) is None:
            setattr(args, name, tiny if small else full)
    if args.threads is None and small:
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save(report: dict) -> None:
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
        (out / "gpu_check.md").write_text(markdown(report))

    report = run(args, save)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
