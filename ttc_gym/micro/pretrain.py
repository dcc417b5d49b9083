"""Supervised pretraining of the micro-reasoner from scratch (issue 15).

    python -m ttc_gym.micro.pretrain --out ttc_gym/data/micro --seed 0 --threads 2   # the base checkpoint, "micro"
    python -m ttc_gym.micro.pretrain --out ttc_gym/data/micro_long --seed 0 --batch-size 16 --steps 4800 --warmup 100 --threads 1   # "micro-long"

The base: 9.5 min on 2 quiet CPU cores with `--threads 2`, about 18 min with one thread; both give the
shipped `model.safetensors` byte for byte with torch 2.13.0 on this CPU. "micro-long" (the same recipe,
four times the updates: held-out accuracy 0.693 / 0.532 / 0.172 at levels 1 / 2 / 3 at H = 4,
examples/studies/micro_headroom.md section 6): 2,445 s (41 min) on one thread of a loaded 2-core AMD
EPYC; a second run (3,647 s, busier CPU) gave the same `model.safetensors` byte for byte (section 7).
The command that rebuilds each shipped checkpoint is in `ttc_gym.micro.checkpoint.MICRO_CHECKPOINTS`.

Steps: draw problems of every level (`--levels 1-3` or "1,2,4": of those only; uniformly either way;
`ttc_gym.micro.task.MicroSource`) and one procedural trace of
each (`ttc_gym.micro.traces.generate_trace`); build the byte-level BPE tokenizer from their texts
(`ttc_gym.micro.tokenizer`); train a small `LlamaForCausalLM` from random weights on two kinds of
examples, each the exact prompt the envs send followed by its target (loss on the target only):
- the whole trace after the reasoning prompt (`traces.trace_example`): the policy's episodes;
- the forced answer after a random prefix of the trace (`traces.forced_example`): the prover's
  answer after MRT's "Time is up ..." suffix, i.e. the number the prefix stands at carried through
  the steps not written yet.
Every batch is drawn from a generator seeded by (seed, step) and torch is seeded and run with a
fixed thread count (`--threads`, default 1: one thread is also the fastest on a CPU that other
processes share), so the same seed gives the same checkpoint on the same machine and torch build
(1 and 2 threads were measured to give identical weights).
Writes model.safetensors, config.json, generation_config.json, the tokenizer files and
pretrain_config.json to `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttc_gym.micro.task import LEVELS, MicroSource
from ttc_gym.micro.tokenizer import DEFAULT_VOCAB_SIZE, build_tokenizer
from ttc_gym.micro.traces import TraceStyle, forced_example, generate_trace, trace_example


@dataclass
class PretrainConfig:
    """What `pretrain` trains (every field is a command-line option)."""

    seed: int = 0
    steps: int = 1200
    batch_size: int = 32
    micro_batches: int = 2  # the batch, sorted by length, in this many forward passes
    forced_share: float = 0.35  # share of a batch's examples that are forced answers
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 512
    context: int = 1024
    vocab_size: int = DEFAULT_VOCAB_SIZE
    tokenizer_problems: int = 2000
    threads: int = 1
    levels: tuple[int, ...] = LEVELS
    style: TraceStyle = field(default_factory=TraceStyle)


def draw_examples(rng: np.random.Generator, n: int, config: PretrainConfig,
                  source: MicroSource) -> list[tuple[str, str]]:
    """`n` (prompt, target) examples: a trace or, with probability `forced_share`, a forced answer
    after a uniformly drawn prefix of a trace (0 .. all its episodes)."""
    examples = []
    for _ in range(n):
        trace = generate_trace(source.sample(rng), rng, config.style)
        if rng.random() < config.forced_share:
            examples.append(forced_example(trace, int(rng.integers(len(trace.episodes) + 1))))
        else:
            examples.append(trace_example(trace))
    return examples


def encode_examples(tokenizer: Any, examples: list[tuple[str, str]]) -> tuple[Any, Any, Any]:
    """(input_ids, attention_mask, labels) tensors, right-padded; labels are -100 except on the
    target's tokens (the tokens of prompt + target whose text starts at or after the prompt's end)."""
    import torch

    rows, masks = [], []
    for prompt, target in examples:
        enc = tokenizer(prompt + target, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        start = next(k for k, (a, _) in enumerate(enc["offset_mapping"]) if a >= len(prompt))
        rows.append(ids)
        masks.append([False] * start + [True] * (len(ids) - start))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for k, (ids, mask) in enumerate(zip(rows, masks)):
        input_ids[k, : len(ids)] = torch.tensor(ids)
        attention[k, : len(ids)] = 1
        labels[k, : len(ids)] = torch.where(torch.tensor(mask), torch.tensor(ids), torch.tensor(-100))
    return input_ids, attention, labels


def build_model(config: PretrainConfig, tokenizer: Any) -> Any:
    """A randomly initialised `LlamaForCausalLM` of `config`'s size (seeded by `config.seed`)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.heads,
        max_position_embeddings=config.context, tie_word_embeddings=True, rope_theta=10000.0,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(llama)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    return model


def pretrain(config: PretrainConfig, out: str | Path, log: Any = print) -> dict:
    """Train as `config` says and save the checkpoint to `out`; returns a summary (loss curve, wall time)."""
    import torch

    begin = time.perf_counter()
    torch.set_num_threads(config.threads)
    source = MicroSource(list(config.levels))
    corpus_rng = np.random.default_rng([config.seed, 2**31 - 1])
    corpus = [p + t for p, t in draw_examples(corpus_rng, config.tokenizer_problems, config, source)]
    tokenizer = build_tokenizer(corpus, vocab_size=config.vocab_size)
    model = build_model(config, tokenizer)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        frac = (step - config.warmup) / max(1, config.steps - config.warmup)
        return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    losses = []
    model.train()
    for step in range(config.steps):
        rng = np.random.default_rng([config.seed, step])
        examples = sorted(draw_examples(rng, config.batch_size, config, source), key=lambda e: len(e[0]) + len(e[1]))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        optimizer.zero_grad(set_to_none=True)
        # Examples sorted by length, in `micro_batches` chunks (less padding); the loss is the mean
        # over every target token of the batch.
        bounds = np.linspace(0, len(examples), config.micro_batches + 1).astype(int)
        chunks = [encode_examples(tokenizer, examples[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        total = sum(int((labels[:, 1:] != -100).sum()) for _, _, labels in chunks)
        loss_sum = 0.0
        for input_ids, attention, labels in chunks:
            logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                     ignore_index=-100, reduction="sum") / total
            loss.backward()
            loss_sum += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss_sum)
        if log and (step % 50 == 0 or step == config.steps - 1):
            log(f"step {step:5d}  loss {np.mean(losses[-50:]):.4f}  lr {lr_at(step):.2e}  "
                f"{time.perf_counter() - begin:.0f}s")
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary = {"config": jsonable(asdict(config)), "params": sum(p.numel() for p in model.parameters()),
               "final_loss": float(np.mean(losses[-50:])), "wall_s": time.perf_counter() - begin,
               "losses_every_50": [float(np.mean(losses[k:k + 50])) for k in range(0, len(losses), 50)],
               "torch": torch.__version__}
    (out / "pretrain_config.json").write_text(json.dumps(summary, indent=2))
    return summary


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def parse_levels(text: str) -> tuple[int, ...]:
    """The levels of a `--levels` argument, as the source spec "micro:<levels>" reads them ("1-3", "1,2,4", "2")."""
    from ttc_gym.micro.task import source_from_spec

    try:
        return tuple(source_from_spec(text).difficulty)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).replace("source spec 'micro:", "levels '")) from None


def parse_command(argv: list[str] | None = None) -> tuple[str, PretrainConfig]:
    """(`--out`, the config) of a command line (argparse errors and exits on a bad one)."""
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(prog="python -m ttc_gym.micro.pretrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the checkpoint to")
    for name in ("seed", "steps", "batch_size", "micro_batches", "warmup", "hidden_size", "layers", "heads", "intermediate_size",
                 "context", "vocab_size", "tokenizer_problems", "threads"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("lr", "weight_decay", "forced_share"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    parser.add_argument("--levels", type=parse_levels, default=defaults.levels,
                        help="the problem levels drawn, uniformly: '1-5' (default), '1-3' or '1,2,4'")
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    return out, PretrainConfig(**args)


def main(argv: list[str] | None = None) -> int:
    out, config = parse_command(argv)
    summary = pretrain(config, out, log=lambda line: print(line, flush=True))
    print(f"saved {summary['params']:,} parameters to {out} in {summary['wall_s']:.0f}s "
          f"(final loss {summary['final_loss']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
