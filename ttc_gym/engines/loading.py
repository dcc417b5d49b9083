"""Loading a Hugging Face causal LM and its tokenizer for `TransformersEngine`: from a model folder, a
hub id or a `.gguf` file (transformers 5.x dequantizes llama-family GGUF to dense tensors; needs
`accelerate`), or an already-built model; dtype and device resolution; the end-of-sequence ids.

The model is located first (`ttc_gym.engines.model_source.check_model_source`), so a missing path or
an uncached hub id on an offline machine fails at once with one line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ttc_gym.engines.model_source import check_model_source

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def load_model(
    model: Any, *, gguf_file: str | None, device: torch.device, dtype: Any, tokenizer: Any
) -> tuple[Any, Any, str]:
    """(model on `device` in eval mode, tokenizer, a default name) for `TransformersEngine`'s
    arguments: `model` is a folder, hub id or `.gguf` path (the tokenizer is loaded from it when
    None), or an already-built causal LM (then `tokenizer` is required and `dtype` ignored)."""
    if isinstance(model, torch.nn.Module):
        if tokenizer is None:
            raise TypeError("TransformersEngine got a built model but no tokenizer; pass tokenizer=...")
        if not hasattr(model, "generate"):
            raise TypeError(f"model must be a causal LM with .generate(), got {type(model).__name__}.")
        name = getattr(model.config, "_name_or_path", "") or type(model).__name__
        return model.to(device).eval(), tokenizer, name
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if not isinstance(model, str) or not model:
        raise TypeError(
            "model must be a model directory, hub id, .gguf path or a PreTrainedModel, "
            f"got {model!r} ({type(model).__name__})."
        )
    source, gguf_file = split_gguf(model, gguf_file)
    check_model_source(source, gguf_file=gguf_file)
    torch_dtype = resolve_dtype(dtype, device)
    with shared_gguf_parsing():
        if tokenizer is None:
            if gguf_file is not None and Path(source, gguf_file).is_file():
                tokenizer = load_gguf_tokenizer(Path(source, gguf_file))
            else:
                tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
        loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file, dtype=torch_dtype)
    return loaded.to(device).eval(), tokenizer, gguf_file or source


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The end-of-sequence ids: the model's generation config's, then the tokenizer's (no repeats)."""
    ids: list[int] = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if value is None:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if int(v) not in ids:
                ids.append(int(v))
    return ids


def resolve_dtype(dtype: Any, device: torch.device) -> torch.dtype:
    """None/"auto" (bfloat16 on a CUDA GPU that supports it, else float32), a torch.dtype, or a name
    in `DTYPES`."""
    if dtype is None or dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in DTYPES:
        return DTYPES[dtype.lower()]
    raise ValueError(
        f"dtype must be None, 'auto', a torch.dtype or one of {sorted(DTYPES)}, got {dtype!r}."
    )


def split_gguf(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """('dir or hub id', 'file.gguf' or None) from a model argument."""
    if gguf_file is None and model.lower().endswith(".gguf"):
        check_model_source(model)
        path = Path(model).expanduser().resolve()
        return str(path.parent), path.name
    return model, gguf_file


@functools.lru_cache(maxsize=4)
def load_gguf_tokenizer(path: str | os.PathLike) -> Any:
    """The tokenizer stored in a GGUF file, cached per process (parsing the GGUF takes seconds).

    The returned tokenizer is shared: do not mutate it (engines never do).
    """
    path = Path(path).resolve()
    with shared_gguf_parsing():
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


_GGUF_PATCH_LOCK = threading.RLock()


@contextlib.contextmanager
def shared_gguf_parsing():
    """Within the block, parse each GGUF file once and build each tensor-name map once.

    transformers 5.x builds a fresh `gguf.GGUFReader` for the tokenizer, for the config and again
    for the weights (each parse of SmolLM2's 49k-token vocabulary takes ~8 s on a small CPU), and
    rebuilds `gguf.get_tensor_name_map` for every module. transformers imports both from `gguf`
    inside its loader functions, so memoizing them on the `gguf` module for the duration of a load
    removes the repeats; should transformers import them differently, this is simply a no-op.
    """
    import gguf

    with _GGUF_PATCH_LOCK:
        original_reader = getattr(gguf, "GGUFReader", None)
        original_map = getattr(gguf, "get_tensor_name_map", None)
        if original_reader is None or original_map is None:
            yield
            return
        readers: dict[tuple[str, str], Any] = {}

        def shared_reader(path: Any, mode: str = "r") -> Any:
            key = (os.path.realpath(os.fspath(path)), mode)
            if key not in readers:
                readers[key] = original_reader(path, mode)
            return readers[key]

        gguf.GGUFReader = shared_reader
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original_map)
        try:
            yield
        finally:
            gguf.GGUFReader = original_reader
            gguf.get_tensor_name_map = original_map
