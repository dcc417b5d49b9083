"""Where the micro-reasoner's base checkpoint lives, and the engine on it (engine spec "micro").

The checkpoint (a ~1 M-parameter `LlamaForCausalLM`, safetensors + config + tokenizer) ships in the
package under `ttc_gym/data/micro/`; `python -m ttc_gym.micro.pretrain --out DIR --seed 0`
reproduces it (`ttc_gym.micro.pretrain`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MICRO_DIR = Path(__file__).resolve().parent.parent / "data" / "micro"
MICRO_ENGINE_NAME = "micro"


def micro_checkpoint_dir() -> Path:
    """The shipped checkpoint's folder (FileNotFoundError naming the command that rebuilds it when
    its files are missing)."""
    if not (MICRO_DIR / "config.json").is_file() or not (MICRO_DIR / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the micro-reasoner checkpoint is missing from {MICRO_DIR}; rebuild it with "
            f"`python -m ttc_gym.micro.pretrain --out {MICRO_DIR} --seed 0`.")
    return MICRO_DIR


def micro_context(checkpoint: str | Path | None = None) -> int:
    """The model's context in tokens (`max_position_embeddings` of the checkpoint's config.json;
    default: the shipped checkpoint's), read without loading torch."""
    folder = micro_checkpoint_dir() if checkpoint is None else Path(checkpoint)
    return int(json.loads((folder / "config.json").read_text())["max_position_embeddings"])


def load_micro_engine(*, device: str = "cpu", dtype: Any = None, max_batch_size: int = 64,
                      name: str = MICRO_ENGINE_NAME, **kwargs: Any) -> Any:
    """A fresh `TransformersEngine` on the shipped micro checkpoint (float32 on a CPU by default):
    `make_engine("micro")`. Each call loads its own copy (a trainer may update it in place); loading
    takes well under a second."""
    from ttc_gym.engines.transformers_engine import TransformersEngine

    return TransformersEngine(str(micro_checkpoint_dir()), device=device, dtype=dtype,
                              max_batch_size=max_batch_size, name=name, **kwargs)
