"""The micro-reasoner checkpoints shipped in the package, and the engine on each (engine specs "micro"
and "micro-long").

Each checkpoint (a ~1.1 M-parameter `LlamaForCausalLM`, safetensors + config + tokenizer +
pretrain_config.json) ships under `ttc_gym/data/<folder>/`. `MICRO_CHECKPOINTS` is the one table of
them: its engine spec, its folder, and the `ttc_gym.micro.pretrain` options that rebuild it.

- "micro" (`ttc_gym/data/micro/`): the base, 1,200 steps of 32 examples. Every micro study so far
  before the pre-registered one (examples/studies/micro_study_v1.md, micro_calibration.md) and `TTC-Micro-v0`'s default use it.
- "micro-long" (`ttc_gym/data/micro_long/`): the same recipe with batches of 16 for 4,800 steps (four
  times the updates, twice the examples): held-out accuracy at H = 4 of 0.693 / 0.532 / 0.172 at levels
  1 / 2 / 3, so `micro:2-3` lies in [0.1, 0.6] on every level (the base's level 3: 0.030);
  examples/studies/micro_headroom.md, section 6, has the measurement and the reproducibility check.

Both have the same architecture, tokenizer and context (1,024 tokens).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttc_gym.validation import did_you_mean

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class MicroCheckpoint:
    """One shipped checkpoint.

    Attributes:
        name: its engine spec (`make_engine(name)`) and the engine's name.
        folder: its folder under `ttc_gym/data/`.
        pretrain_args: the options of `python -m ttc_gym.micro.pretrain`, besides `--out`, that rebuild
            it (tests/core/test_micro_checkpoint.py checks them against its pretrain_config.json).
    """

    name: str
    folder: str
    pretrain_args: str

    @property
    def path(self) -> Path:
        return DATA_DIR / self.folder

    def rebuild_command(self, out: str | Path | None = None) -> str:
        """The command that rebuilds it into `out` (default: its own folder)."""
        return f"python -m ttc_gym.micro.pretrain --out {self.path if out is None else out} {self.pretrain_args}"


#: The shipped checkpoints, by engine spec (the engine registry registers one spec per row).
MICRO_CHECKPOINTS: dict[str, MicroCheckpoint] = {row.name: row for row in (
    MicroCheckpoint("micro", "micro", "--seed 0"),
    MicroCheckpoint("micro-long", "micro_long", "--seed 0 --batch-size 16 --steps 4800 --warmup 100 --threads 1"),
)}
MICRO_ENGINE_NAME = "micro"  # the base, the default of every function here
MICRO_DIR = MICRO_CHECKPOINTS[MICRO_ENGINE_NAME].path


def micro_checkpoint(name: str = MICRO_ENGINE_NAME) -> MicroCheckpoint:
    """The table's row `name` (ValueError naming the shipped ones, "did you mean", when unknown)."""
    row = MICRO_CHECKPOINTS.get(name) if isinstance(name, str) else None
    if row is None:
        raise ValueError(
            f"unknown micro-reasoner checkpoint {name!r}.{did_you_mean(str(name), MICRO_CHECKPOINTS)} The shipped "
            f"ones are {', '.join(repr(n) for n in MICRO_CHECKPOINTS)}.")
    return row


def micro_checkpoint_dir(name: str = MICRO_ENGINE_NAME) -> Path:
    """The folder of the shipped checkpoint `name` (FileNotFoundError naming the command that rebuilds
    that checkpoint when its files are missing)."""
    row = micro_checkpoint(name)
    folder = row.path
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the micro-reasoner checkpoint {name!r} is missing from {folder}; rebuild it with "
            f"`{row.rebuild_command()}`.")
    return folder


def micro_context(checkpoint: str | Path | None = None) -> int:
    """The model's context in tokens (`max_position_embeddings` of the checkpoint's config.json), read
    without loading torch. `checkpoint`: a shipped checkpoint's name ("micro", the default, or
    "micro-long") or a checkpoint folder."""
    if checkpoint is None or (isinstance(checkpoint, str) and checkpoint in MICRO_CHECKPOINTS):
        folder = micro_checkpoint_dir(checkpoint or MICRO_ENGINE_NAME)
    else:
        folder = Path(checkpoint)
    return int(json.loads((folder / "config.json").read_text())["max_position_embeddings"])


def load_micro_engine(checkpoint: str = MICRO_ENGINE_NAME, *, device: str = "cpu", dtype: Any = None,
                      max_batch_size: int = 64, name: str | None = None, **kwargs: Any) -> Any:
    """A fresh `TransformersEngine` on the shipped checkpoint `checkpoint` (float32 on a CPU by default),
    named after it unless `name` is given: `make_engine("micro")`, `make_engine("micro-long")`. Each call
    loads its own copy (a trainer may update it in place); loading takes well under a second."""
    from ttc_gym.engines.transformers_engine import TransformersEngine

    return TransformersEngine(str(micro_checkpoint_dir(checkpoint)), device=device, dtype=dtype,
                              max_batch_size=max_batch_size, name=checkpoint if name is None else name, **kwargs)


def micro_engine_factory(checkpoint: str):
    """The engine registry's factory of the spec `checkpoint` (no model name; kwargs go to
    `load_micro_engine`)."""
    micro_checkpoint(checkpoint)

    def factory(**kwargs: Any) -> Any:
        return load_micro_engine(checkpoint, **kwargs)

    factory.__qualname__ = f"micro_engine_factory({checkpoint!r})"
    return factory
