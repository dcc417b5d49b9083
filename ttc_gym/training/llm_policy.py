"""The LLM trainer's models: the policy's engine (`build_policy_engine`, trained in place), LoRA
adapters (`apply_lora`), the weights pushed into an engine that samples (`trained_weights`,
`sync_weights`)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from ttc_gym.micro.checkpoint import MICRO_CHECKPOINTS, micro_checkpoint_dir
from ttc_gym.training.llm_config import LLMTrainConfig


def _engine_kwargs(device: str, dtype: str) -> dict:
    return {"device": device, "dtype": None if dtype == "auto" else dtype}


def build_policy_engine(config: LLMTrainConfig):
    """A fresh `TransformersEngine` of `config.model`, never the shared cached default engine (the
    prover's): its weights are trained in place."""
    from ttc_gym.engines.transformers_engine import TransformersEngine

    if config.model == "default":
        from ttc_gym.engines.default_model import default_model_path

        return TransformersEngine(default_model_path(), name="policy:default", **_engine_kwargs(config.device, config.dtype))
    if config.model in MICRO_CHECKPOINTS:  # "micro", "micro-long"
        return TransformersEngine(micro_checkpoint_dir(config.model), name=f"policy:{config.model}",
                                  **_engine_kwargs(config.device, config.dtype))
    return TransformersEngine(config.model.removeprefix("transformers:"), **_engine_kwargs(config.device, config.dtype))


def apply_lora(config: LLMTrainConfig, model):
    from ttc_gym.optional import require

    peft = require("peft", extra="lora", purpose="LoRA training (lora_rank > 0)")
    lora = peft.LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                           target_modules=config.lora_target_modules, task_type="CAUSAL_LM")
    # Injects adapter layers into `model` in place: the engine keeps sampling from the same object.
    return peft.get_peft_model(model, lora)


def trained_weights(trainable: Any, lora: bool) -> dict:
    """The trained model's weights as a state dict named as in the Hugging Face checkpoint (LoRA:
    the adapters merged into a copy of the base model)."""
    if lora:
        return copy.deepcopy(trainable).merge_and_unload().state_dict()
    return trainable.state_dict()


def sync_weights(sampling_engine: Any, trainable: Any, lora: bool, version: int) -> int:
    """Push the trained weights into the engine that samples the rollouts (`load_weights`, which
    resets its prefix cache and bumps the engine's `weights_version`, the key of the env prover's
    memo: `ttc_gym.llm_prover.engine_weights_version`). Returns the number of pushes so far."""
    with torch.no_grad():
        sampling_engine.load_weights(trained_weights(trainable, lora))
    return version + 1


def stale_copy(policy_engine: Any, trainable: Any, lora: bool) -> Any:
    """A frozen `TransformersEngine` over a copy of the trained model (LoRA: the adapters merged into
    a copy of the base model), with the policy engine's tokenizer and device: `mrt`'s stale prefix
    writer, refreshed with `load_weights(trained_weights(...))`."""
    from ttc_gym.engines.transformers_engine import TransformersEngine

    model = copy.deepcopy(trainable).merge_and_unload() if lora else copy.deepcopy(policy_engine.model)
    return TransformersEngine(model.eval().requires_grad_(False), tokenizer=policy_engine.tokenizer,
                              device=policy_engine.device, name="stale-prefix-writer")
