"""Checkpoints of the LLM trainer: `out/checkpoint-N/` holds the HF model and tokenizer (loadable by
`TransformersEngine(path)` and `ttc-gym bench --agents llm-checkpoint:PATH`), `train_config.json` and
`trainer_state.pt` (step, optimizer) for `--resume`; written to a temporary folder, then renamed."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import asdict
from pathlib import Path

import torch

STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "train_config.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def find_checkpoints(out: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in `out`, by step."""
    out = Path(out)
    found = []
    if out.is_dir():
        for p in out.iterdir():
            m = _CHECKPOINT.fullmatch(p.name)
            if m and (p / STATE_FILE).is_file():
                found.append((int(m.group(1)), p))
    return sorted(found)


def save_dense(model, path: Path) -> None:
    """`save_pretrained` for a model loaded from GGUF: transformers dequantizes GGUF weights to dense
    tensors but keeps a GGUF quantizer marker, and refuses to save a model with it. The weights are
    plain tensors, so they are saved without the marker (restored afterwards)."""
    quantizer = getattr(model, "hf_quantizer", None)
    qconfig = getattr(model.config, "quantization_config", None)
    try:
        model.hf_quantizer = None
        if qconfig is not None:
            delattr(model.config, "quantization_config")
        model.save_pretrained(path)
    finally:
        model.hf_quantizer = quantizer
        if qconfig is not None:
            model.config.quantization_config = qconfig


def save_checkpoint(config, step, trainable, engine, optimizer, out: Path, extra: dict | None = None) -> Path:
    """Write `out/checkpoint-<step>/` (atomically: a temporary folder renamed); `extra` (e.g. mrt's
    stale prefix writer's weights) is kept in trainer_state.pt for `trainer_extra`."""
    path = out / f"checkpoint-{step}"
    tmp = out / f".checkpoint-{step}.tmp"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if config.lora_rank:
        trainable.save_pretrained(tmp / "adapter")
        merged = copy.deepcopy(trainable).merge_and_unload()
        save_dense(merged, tmp)
    else:
        save_dense(engine.model, tmp)
    engine.tokenizer.save_pretrained(tmp)
    (tmp / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "extra": extra or {}}, tmp / STATE_FILE)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    tmp.rename(path)
    return path


def load_checkpoint(config, trainable, engine, optimizer, path: Path) -> int:
    if config.lora_rank:
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        set_peft_model_state_dict(trainable, load_peft_weights(str(path / "adapter"), device=str(config.device)))
    else:
        from transformers import AutoModelForCausalLM

        loaded = AutoModelForCausalLM.from_pretrained(path, dtype=next(engine.model.parameters()).dtype)
        engine.model.load_state_dict(loaded.state_dict())
        del loaded
    state = torch.load(path / STATE_FILE, map_location=config.device, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def trainer_extra(config, path: Path) -> dict:
    """What `save_checkpoint(..., extra=...)` kept beside the trainer's state ({} for older checkpoints)."""
    return torch.load(path / STATE_FILE, map_location=config.device, weights_only=False).get("extra", {})
