"""`TransformersEngine`: batched sampling with a Hugging Face causal LM (CPU or CUDA).

Accepts an HF model directory, a hub id, a `.gguf` file (transformers 5.x dequantizes llama-family
GGUF to dense tensors; needs `accelerate`), or an already-built (model, tokenizer) pair.

How `generate` works:
- prompts are tokenized without added special tokens when they already start with the BOS text
  (chat-template output), and left-padded by hand (the tokenizer is never mutated);
- the `n` samples of a prompt are rows of the batch; rows are processed in chunks of at most
  `max_batch_size`; when a chunk holds several samples of one prompt, the prompt is prefilled once
  into a KV cache that is then repeated across those rows;
- stop strings end a row early through a stopping criterion; the final text is cut before the
  earliest stop and `num_tokens` counts tokens up to and including the one that completed it;
- sampling draws from torch's CPU (and CUDA) generators inside `torch.random.fork_rng`, seeded from
  `seed`, so global RNG state is left untouched.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    StoppingCriteria,
    StoppingCriteriaList,
)

from ttc_gym.engines.base import Completion, SamplingConfig
from ttc_gym.validation import check_int

# SmolLM2's (ChatML) layout, used when a tokenizer carries no chat template.
CHATML_SYSTEM = "<|im_start|>system\n{content}<|im_end|>\n"
CHATML_USER = "<|im_start|>user\n{content}<|im_end|>\n"
CHATML_ASSISTANT = "<|im_start|>assistant\n"

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@functools.lru_cache(maxsize=4)
def load_gguf_tokenizer(path: str | os.PathLike) -> Any:
    """The tokenizer stored in a GGUF file, cached per process (parsing the GGUF takes seconds).

    The returned tokenizer is shared: do not mutate it (engines never do).
    """
    path = Path(path).resolve()
    with _shared_gguf_parsing():
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


_GGUF_PATCH_LOCK = threading.RLock()


@contextlib.contextmanager
def _shared_gguf_parsing():
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


def _resolve_dtype(dtype: Any, device: torch.device) -> torch.dtype:
    if dtype is None or dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise ValueError(
        f"dtype must be None, 'auto', a torch.dtype or one of {sorted(_DTYPES)}, got {dtype!r}."
    )


def _split_gguf(model: str, gguf_file: str | None) -> tuple[str, str | None]:
    """('dir or hub id', 'file.gguf' or None) from a model argument."""
    if gguf_file is None and model.lower().endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"GGUF model file not found: {model!r}.")
        path = path.resolve()
        return str(path.parent), path.name
    return model, gguf_file


class _StopOnStrings(StoppingCriteria):
    """Stops each row once its new text contains one of `stops`.

    Decodes only a tail window of the new tokens each step (the newest token can only complete a
    stop string ending inside that window), and records the generated length at which each row was
    first stopped. It is an early exit only: the final cut is made on the fully decoded text.
    """

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_len: int, batch: int):
        self.tokenizer = tokenizer
        self.stops = stops
        self.prompt_len = prompt_len
        self.window = 2 * max(len(s) for s in stops) + 8
        self.stopped_at: list[int | None] = [None] * batch

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        new = input_ids[:, self.prompt_len :]
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        tails = new[:, -self.window :].tolist()
        for row, tail in enumerate(tails):
            if self.stopped_at[row] is not None:
                done[row] = True
                continue
            text = self.tokenizer.decode(tail, skip_special_tokens=True)
            if any(s in text for s in self.stops):
                self.stopped_at[row] = new.shape[1]
                done[row] = True
        return done


class TransformersEngine:
    """An `Engine` backed by a Hugging Face causal language model.

    Args:
        model: an HF model directory, a hub id, a path to a `.gguf` file, or an already-built
            `PreTrainedModel` (then `tokenizer` is required).
        gguf_file: the GGUF file name inside `model` (a directory or hub repo), if any.
        device: "cpu", "cuda", "cuda:1" or a torch.device.
        dtype: None/"auto" (bfloat16 on a CUDA GPU that supports it, else float32), a torch.dtype,
            or "float32" / "bfloat16" / "float16". Ignored for an already-built model.
        tokenizer: a tokenizer; loaded from `model` when omitted.
        max_batch_size: most sequences (prompts x samples) decoded together.
        name: the engine's name; derived from the model when omitted.

    Attributes `model`, `tokenizer` and `device` are public (trainers may update the weights).
    `generate` is not thread-safe: it seeds torch's generators inside `fork_rng`. CPU speed note:
    on a CPU shared with other busy processes, torch's default thread count oversubscribes the
    cores and decoding can slow down several-fold; `torch.set_num_threads(1)` then helps.
    """

    def __init__(
        self,
        model: Any,
        *,
        gguf_file: str | None = None,
        device: str | torch.device = "cpu",
        dtype: Any = None,
        tokenizer: Any = None,
        max_batch_size: int = 16,
        name: str | None = None,
    ):
        self.max_batch_size = check_int("max_batch_size", max_batch_size, minimum=1)
        self.device = torch.device(device)
        if isinstance(model, torch.nn.Module):
            if tokenizer is None:
                raise TypeError(
                    "TransformersEngine got a built model but no tokenizer; pass tokenizer=..."
                )
            if not hasattr(model, "generate"):
                raise TypeError(
                    f"model must be a causal LM with .generate(), got {type(model).__name__}."
                )
            self.model = model.to(self.device)
            default_name = getattr(model.config, "_name_or_path", "") or type(model).__name__
        else:
            if isinstance(model, os.PathLike):
                model = os.fspath(model)
            if not isinstance(model, str) or not model:
                raise TypeError(
                    "model must be a model directory, hub id, .gguf path or a PreTrainedModel, "
                    f"got {model!r} ({type(model).__name__})."
                )
            source, gguf_file = _split_gguf(model, gguf_file)
            torch_dtype = _resolve_dtype(dtype, self.device)
            with _shared_gguf_parsing():
                if tokenizer is None:
                    if gguf_file is not None and Path(source, gguf_file).is_file():
                        tokenizer = load_gguf_tokenizer(Path(source, gguf_file))
                    else:
                        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
                self.model = AutoModelForCausalLM.from_pretrained(
                    source, gguf_file=gguf_file, dtype=torch_dtype
                ).to(self.device)
            default_name = gguf_file or source
        self.model.eval()
        self.tokenizer = tokenizer
        self.name = name if name is not None else f"transformers:{default_name}"
        self._eos_ids = self._find_eos_ids()
        if not self._eos_ids:
            raise ValueError(
                f"{self.name}: neither the tokenizer nor the model's generation config names an "
                "end-of-sequence token."
            )
        # transformers 5.x names the KV-cache argument `cache`; 4.x named it `past_key_values`.
        params = inspect.signature(self.model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        # Prefilling a shared prompt needs no logits; skip the (positions x vocabulary) matrix.
        self._prefill_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = getattr(self.model.generation_config, "pad_token_id", None)
        self._pad_id = int(pad) if pad is not None else self._eos_ids[0]

    # -- Engine interface ------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}.")
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def format_chat(self, user: str, assistant_prefix: str = "", system: str | None = None) -> str:
        for arg, value in (("user", user), ("assistant_prefix", assistant_prefix)):
            if not isinstance(value, str):
                raise TypeError(f"{arg} must be a string, got {type(value).__name__}.")
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be a string or None, got {type(system).__name__}.")
        messages = [] if system is None else [{"role": "system", "content": system}]
        messages.append({"role": "user", "content": user})
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            prompt = "".join(
                (CHATML_SYSTEM if m["role"] == "system" else CHATML_USER).format(content=m["content"])
                for m in messages
            ) + CHATML_ASSISTANT
        return prompt + assistant_prefix

    def generate(
        self, prompts: Sequence[str], sampling: SamplingConfig, *, seed: int | None = None
    ) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a sequence of strings, got a single string; wrap it in a list.")
        prompts = list(prompts)
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise TypeError(f"prompts[{i}] must be a string, got {type(p).__name__}.")
        if not isinstance(sampling, SamplingConfig):
            raise TypeError(f"sampling must be a SamplingConfig, got {type(sampling).__name__}.")
        if seed is None:
            seed = secrets.randbits(63)
        seed = check_int("seed", seed, minimum=0)
        if not prompts:
            return []

        encoded = [self._encode(p) for p in prompts]
        # Greedy decoding gives every sample the same text: decode each prompt once.
        samples = 1 if sampling.greedy else sampling.n
        # Rows are (prompt index, sample index), prompt-major.
        rows = [(i, j) for i in range(len(prompts)) for j in range(samples)]
        results: list[list[Completion]] = [[] for _ in prompts]
        with self._private_rng(seed), torch.inference_mode():
            for start in range(0, len(rows), self.max_batch_size):
                chunk = rows[start : start + self.max_batch_size]
                for (i, _), completion in zip(chunk, self._generate_chunk(encoded, chunk, sampling)):
                    results[i].append(completion)
        if samples != sampling.n:
            results = [row * sampling.n for row in results]
        return results

    # -- internals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _private_rng(self, seed: int):
        """Seed the generators sampling uses (CPU, and this engine's GPU), restoring them after."""
        if self.device.type == "cuda":
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            with torch.random.fork_rng(devices=[index]):
                torch.default_generator.manual_seed(seed)
                torch.cuda.default_generators[index].manual_seed(seed)
                yield
        else:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)
                yield

    def _find_eos_ids(self) -> list[int]:
        ids: list[int] = []
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (gen_eos, self.tokenizer.eos_token_id):
            if value is None:
                continue
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if int(v) not in ids:
                    ids.append(int(v))
        return ids

    def _encode(self, prompt: str) -> list[int]:
        bos = getattr(self.tokenizer, "bos_token", None)
        add_special = not (bos and prompt.startswith(bos))
        ids = self.tokenizer(prompt, add_special_tokens=add_special)["input_ids"]
        if not ids:
            # An empty prompt: condition on BOS (or EOS) so that there is something to attend to.
            start = self.tokenizer.bos_token_id
            ids = [start if start is not None else self._eos_ids[0]]
        return list(ids)

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _generation_config(self, sampling: SamplingConfig) -> GenerationConfig:
        # Every knob is set explicitly: generate() fills unset ones from the model's own
        # generation_config (a hub model may ship top_k=20 or repetition_penalty=1.1), and only
        # what SamplingConfig says should apply.
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "min_new_tokens": 0,
            "eos_token_id": self._eos_ids,
            "pad_token_id": self._pad_id,
            "use_cache": True,
            "num_beams": 1,
            "num_return_sequences": 1,
            "repetition_penalty": 1.0,
            "no_repeat_ngram_size": 0,
            "typical_p": 1.0,
            "epsilon_cutoff": 0.0,
            "eta_cutoff": 0.0,
        }
        if sampling.greedy:
            kwargs.update(do_sample=False, temperature=1.0, top_p=1.0, top_k=50)
        else:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        return GenerationConfig(**kwargs)

    def _generate_chunk(
        self, encoded: list[list[int]], chunk: list[tuple[int, int]], sampling: SamplingConfig
    ) -> list[Completion]:
        uniq = sorted({i for i, _ in chunk})
        pos = {i: k for k, i in enumerate(uniq)}
        ids_u, mask_u = self._left_pad([encoded[i] for i in uniq])
        select = torch.tensor([pos[i] for i, _ in chunk], device=self.device)
        input_ids, attention_mask = ids_u[select], mask_u[select]
        prompt_len = input_ids.shape[1]

        extra: dict[str, Any] = {}
        if len(chunk) > len(uniq) and prompt_len > 1:
            # Several samples of the same prompt: prefill each distinct prompt once, then share it.
            try:
                cache = DynamicCache(config=self.model.config)
            except TypeError:  # older transformers
                cache = DynamicCache()
            prefix_mask = mask_u[:, :-1]
            position_ids = (prefix_mask.cumsum(-1) - 1).clamp(min=0)
            self.model(
                input_ids=ids_u[:, :-1],
                attention_mask=prefix_mask,
                position_ids=position_ids,
                use_cache=True,
                **{self._cache_kwarg: cache},
                **self._prefill_kwargs,
            )
            cache.batch_select_indices(select)
            extra[self._cache_kwarg] = cache

        stopper = None
        criteria = StoppingCriteriaList()
        if sampling.stop:
            stopper = _StopOnStrings(self.tokenizer, sampling.stop, prompt_len, len(chunk))
            criteria.append(stopper)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=self._generation_config(sampling),
            stopping_criteria=criteria,
            **extra,
        )
        new_tokens = out[:, prompt_len:].tolist()
        return [
            self._finish(tokens, sampling, stopper.stopped_at[r] if stopper else None)
            for r, tokens in enumerate(new_tokens)
        ]

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _finish(self, tokens: list[int], sampling: SamplingConfig, stopped_at: int | None) -> Completion:
        if stopped_at is not None:
            tokens = tokens[:stopped_at]
        eos_pos = next((k for k, t in enumerate(tokens) if t in self._eos_ids), None)
        body = tokens if eos_pos is None else tokens[:eos_pos]
        text = self._decode(body)
        match = _earliest_stop(text, sampling.stop)
        if match is not None:
            index, stop = match
            return Completion(
                text=text[:index],
                num_tokens=self._tokens_to_stop(body, sampling.stop),
                finish_reason="stop",
                stop_reason=stop,
            )
        if eos_pos is not None:
            return Completion(text=text, num_tokens=eos_pos + 1, finish_reason="stop")
        return Completion(text=text, num_tokens=len(body), finish_reason="length")

    def _tokens_to_stop(self, body: list[int], stops: tuple[str, ...]) -> int:
        """Fewest leading tokens of `body` whose text contains a stop string (binary search)."""
        lo, hi = 1, len(body)
        while lo < hi:
            mid = (lo + hi) // 2
            if _earliest_stop(self._decode(body[:mid]), stops) is not None:
                hi = mid
            else:
                lo = mid + 1
        return hi


def _earliest_stop(text: str, stops: tuple[str, ...]) -> tuple[int, str] | None:
    """(index, stop) of the stop string occurring earliest in `text` (longest on a tie)."""
    best: tuple[int, str] | None = None
    for s in stops:
        k = text.find(s)
        if k >= 0 and (best is None or k < best[0] or (k == best[0] and len(s) > len(best[1]))):
            best = (k, s)
    return best
