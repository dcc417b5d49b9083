"""`TransformersEngine`: batched sampling with a Hugging Face causal LM (CPU or CUDA).

Accepts an HF model directory, a hub id, a `.gguf` file (transformers 5.x dequantizes llama-family
GGUF to dense tensors; needs `accelerate`), or an already-built (model, tokenizer) pair.

How `generate` works (its own decoding loop; `model.generate` is not used):
- prompts are tokenized without added special tokens when they already start with the BOS text
  (chat-template output); the tokenizer is never mutated;
- each distinct prompt but its last token is prefilled once, batch 1, starting from the longest
  prefix found in the engine's prefix store (`prefix_cache_bytes`): across the steps of a
  reasoning trace only the new text is encoded. The store is dropped when the weights change;
- the `n` samples of a prompt are rows of one batch (chunks of at most `max_batch_size` rows) that
  share the prompt's keys and values: with `shared_prefix` (default, llama-style models whose
  attention goes through transformers' AttentionInterface) the prefix is stored once per prompt
  and attention reads it once per step for all its rows (`ttc_gym.engines.kv_cache`); otherwise
  each prompt's rows decode with the prefix cache repeated across them (`DynamicCache`);
- every row samples with its own `torch.Generator`, seeded from its prompt's seed and its sample
  index, from softmax(logits / T) (nucleus-filtered when top_p < 1) by a two-level draw (a block
  of the vocabulary by inverse CDF, then a token of the block by Gumbel-max; see `_draw`), so a
  row's text does not depend on the other rows of the batch: prompts sampled together give the
  texts each gives alone with its seed. The only caveat is float rounding: if batched matrix
  products round differently from unbatched ones (~1e-7 relative), a draw lying that close to a
  tie could flip; the two-level draw keeps that chance around 1e-6 per token even for flat
  distributions. Greedy rows take the argmax. Global RNG state is never touched;
- rows that finish (EOS, stop string, closing brace, `max_new_tokens`) leave the batch; the final
  text is cut before the earliest stop (`ttc_gym.engines.base.find_stop`) and `num_tokens`
  counts tokens up to and including the one that completed it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import inspect
import os
import secrets
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from ttc_gym.engines.base import (
    CLOSING_BRACE, Completion, SamplingConfig, chat_prompt, check_generate_args, closing_brace, find_stop,
    tokens_to_stop,
)
from ttc_gym.engines.kv_cache import ATTENTION_NAME, STATE_KWARG, PrefixStore, SharedPrefixCache, register_attention
from ttc_gym.engines.small_rows import applies, small_row_linears
from ttc_gym.validation import check_int

# SmolLM2's (ChatML) layout, used when a tokenizer carries no chat template.

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
        max_batch_size: most sequences (prompts x samples) decoded together. With shared-prefix
            decoding a row costs little memory (the prompt is stored once), and on a CPU bigger
            batches use the matrix units better: 64 suits K = 8 forced answers for 8 envs.
        name: the engine's name; derived from the model when omitted.
        prefix_cache_bytes: memory for stored prompt prefixes (keys and values) reused by later
            prompts that extend them; 0 disables the store (every prompt is encoded in full).
        shared_prefix: decode the samples of a prompt against one shared copy of its prefix (see
            `ttc_gym.engines.kv_cache`); False, or a model whose attention cannot be routed through
            transformers' AttentionInterface, repeats the prefix cache across the rows instead.
        small_row_matmul: for a float32 model on a CPU, compute the linear layers of forwards with
            at most 8 rows (decoding a few sequences) in the form MKL streams fastest (see
            `ttc_gym.engines.small_rows`; same products up to float rounding; the model's
            `nn.Linear` layers get an instance-level forward during `generate`). False turns it off.

    `generate(prompts, sampling, seed=...)` takes one seed for the call or one seed per prompt
    (see `ttc_gym.engines.base.Engine.generate`); `per_prompt_seeds` is True.

    Attributes `model`, `tokenizer` and `device` are public (trainers may update the weights: the
    prefix store notices in-place updates and replaced parameters and drops itself; call
    `clear_prefix_cache()` after any other change, e.g. toggling adapters). `stats` counts prompt
    tokens encoded, prompt tokens reused from the store, tokens decoded (rows x steps) and
    decoding forwards (steps);
    `prefill_chunk` (2048) bounds the prompt tokens encoded in one forward. `generate` is not
    thread-safe (during decoding it routes the model's attention through its own function). CPU speed note:
    on a CPU shared with other busy processes, torch's default thread count oversubscribes the
    cores and decoding can slow down several-fold; `torch.set_num_threads(1)` then helps.
    """

    per_prompt_seeds = True

    def __init__(
        self,
        model: Any,
        *,
        gguf_file: str | None = None,
        device: str | torch.device = "cpu",
        dtype: Any = None,
        tokenizer: Any = None,
        max_batch_size: int = 64,
        name: str | None = None,
        prefix_cache_bytes: int = 512 * 2**20,
        shared_prefix: bool = True,
        small_row_matmul: bool = True,
    ):
        self.max_batch_size = check_int("max_batch_size", max_batch_size, minimum=1)
        self.prefix_store = PrefixStore(check_int("prefix_cache_bytes", prefix_cache_bytes, minimum=0))
        if not isinstance(shared_prefix, bool):
            raise TypeError(f"shared_prefix must be a bool, got {shared_prefix!r}.")
        if not isinstance(small_row_matmul, bool):
            raise TypeError(f"small_row_matmul must be a bool, got {small_row_matmul!r}.")
        self.small_row_matmul = small_row_matmul
        # None: not yet tried on this model; the first shared-prefix decode checks that it works.
        self._shared_prefix: bool | None = None if shared_prefix else False
        self._weights_signature: tuple | None = None
        # Most prompt tokens encoded in one packed forward (shared-prefix path).
        self.prefill_chunk = 2048
        # Work done so far, in tokens: prompt tokens encoded, prompt tokens reused from stored
        # prefixes, decoding work (one per generated token of each row) and decoding forwards
        # (one per step of a batch, whatever its number of rows: each reads all the weights).
        self.stats = {"prefill_tokens": 0, "reused_tokens": 0, "decode_tokens": 0, "decode_steps": 0}
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
        # Only the last position's logits are ever needed; skip the (positions x vocabulary) matrix.
        self._logits_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        # The prefix store and shared-prefix decoding need plain (full-attention) cache layers.
        from transformers.cache_utils import DynamicLayer

        layers = getattr(self._new_cache(), "layers", None)
        self._plain_layers = bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    # -- Engine interface ------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}.")
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def format_chat(self, user: str, assistant_prefix: str = "", system: str | None = None) -> str:
        return chat_prompt(self.tokenizer, user, assistant_prefix, system)

    def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingConfig,
        *,
        seed: int | Sequence[int] | None = None,
    ) -> list[list[Completion]]:
        prompts = check_generate_args(prompts, sampling)
        row_seeds = _row_seeds(seed, len(prompts), sampling.n)
        if not prompts:
            return []

        encoded = [self._encode(p) for p in prompts]
        self._check_context(encoded, sampling.max_new_tokens)
        # Greedy decoding gives every sample the same text: decode each prompt once.
        samples = 1 if sampling.greedy else sampling.n
        # Rows are (prompt index, sample index), prompt-major.
        rows = [(i, j) for i in range(len(prompts)) for j in range(samples)]
        results: list[list[Completion]] = [[] for _ in prompts]
        few_rows = small_row_linears(self.model) if self.small_row_matmul and applies(self.model) else None
        with torch.inference_mode(), few_rows or contextlib.nullcontext():
            self._check_weights()
            for start in range(0, len(rows), self.max_batch_size):
                chunk = rows[start : start + self.max_batch_size]
                texts = self._decode_chunk(
                    [encoded[i] for i, _ in chunk], [row_seeds[i][j] for i, j in chunk], sampling
                )
                for (i, _), completion in zip(chunk, texts):
                    results[i].append(completion)
        if samples != sampling.n:
            results = [row * sampling.n for row in results]
        return results

    def clear_prefix_cache(self) -> None:
        """Forget every stored prompt prefix (needed after changing the weights other than in place)."""
        self.prefix_store.clear()

    # -- internals ---------------------------------------------------------------------------

    def _check_weights(self) -> None:
        """Drop the prefix store when a parameter was replaced or updated in place since last call."""
        signature = tuple((id(p), p._version) for p in self.model.parameters())
        if signature != self._weights_signature:
            self.prefix_store.clear()
            self._weights_signature = signature

    def _check_context(self, encoded: list[list[int]], max_new_tokens: int) -> None:
        """A prompt plus its completion must fit the model's context (positions beyond it are not
        an error in transformers, just text the model was never trained to read)."""
        config = self.model.config
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        context = getattr(config, "max_position_embeddings", None)
        if not isinstance(context, int):
            return
        for i, ids in enumerate(encoded):
            if len(ids) + max_new_tokens > context:
                raise ValueError(
                    f"{self.name}: prompt {i} has {len(ids)} tokens; with max_new_tokens={max_new_tokens} that is "
                    f"more than the model's context of {context} tokens. Shorten the prompt (e.g. a smaller "
                    "token budget per trace) or lower max_new_tokens."
                )

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

    def encode(self, prompt: str) -> list[int]:
        """The token ids `generate` conditions on for `prompt` (see `_encode`): what a trainer must
        score a completion after."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}.")
        return self._encode(prompt)

    def _encode(self, prompt: str) -> list[int]:
        """The prompt's token ids.

        A prompt that ends in whitespace is tokenized as that whitespace is tokenized when text
        follows it (e.g. a paragraph break as two newline tokens rather than one): that is how the
        text continues, so the model conditions on what it saw in training, and a trace's next
        prompt (the same text and more) starts with the same tokens and reuses the stored prefix.
        """
        bos = getattr(self.tokenizer, "bos_token", None)
        add_special = not (bos and prompt.startswith(bos))
        ids = self.tokenizer(prompt, add_special_tokens=add_special)["input_ids"]
        if prompt[-1:].isspace():
            probe = self.tokenizer(prompt + _PROBE, add_special_tokens=add_special)["input_ids"]
            head, last = probe[:-1], probe[-1:]
            if self.tokenizer.decode(last) == _PROBE and self.tokenizer.decode(head) == self.tokenizer.decode(ids):
                ids = head
        if not ids:
            # An empty prompt: condition on BOS (or EOS) so that there is something to attend to.
            start = self.tokenizer.bos_token_id
            ids = [start if start is not None else self._eos_ids[0]]
        return list(ids)

    def _new_cache(self, kv: list | None = None) -> Any:
        """A DynamicCache for this model, holding `kv` ((keys, values) per layer) when given."""
        if kv is None:
            try:
                return DynamicCache(config=self.model.config)
            except TypeError:  # older transformers
                return DynamicCache()
        try:
            return DynamicCache(ddp_cache_data=kv, config=self.model.config)
        except TypeError:  # older transformers
            return DynamicCache.from_legacy_cache(tuple(kv))

    def _forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, cache: Any, **kwargs: Any) -> torch.Tensor:
        """Logits [rows, vocab] of the last position."""
        out = self.model(
            input_ids=input_ids, position_ids=position_ids, use_cache=True,
            **{self._cache_kwarg: cache}, **self._logits_kwargs, **kwargs,
        )
        return out.logits[:, -1, :]

    def _prefill(self, ids: list[int]) -> Any:
        """The keys/values of `ids` (a prompt without its last token), batch 1, for the
        repeated-cache path: a list of (keys, values) per layer when the model's cache layers are
        plain (then the prefix store is used), else the DynamicCache itself; None for no tokens."""
        if not ids:
            return None
        kv, reused = self.prefix_store.lookup(ids) if self._plain_layers else (None, 0)
        self.stats["reused_tokens"] += reused
        self.stats["prefill_tokens"] += len(ids) - reused
        if reused == len(ids):
            return [(k[:, :, :reused], v[:, :, :reused]) for k, v in kv]
        cache = self._new_cache(None if kv is None else [(k[:, :, :reused], v[:, :, :reused]) for k, v in kv])
        input_ids = torch.tensor([ids[reused:]], dtype=torch.long, device=self.device)
        positions = torch.arange(reused, len(ids), device=self.device)[None, :]
        self._forward(input_ids, positions, cache)
        if not self._plain_layers:
            return cache
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        self.prefix_store.put(ids, kv)
        return kv

    def _decode_chunk(self, encoded: list[list[int]], seeds: list[int], sampling: SamplingConfig) -> list[Completion]:
        """One completion per row (row r continues `encoded[r]` with seed `seeds[r]`)."""
        # Rows of the same prompt form a group; groups are contiguous in the decoding order.
        group_of: dict[tuple[int, ...], int] = {}
        for ids in encoded:
            group_of.setdefault(tuple(ids), len(group_of))
        order = sorted(range(len(encoded)), key=lambda r: group_of[tuple(encoded[r])])
        # Each row draws from its own generator (the same draws whatever else is in the batch).
        generators = None if sampling.greedy else [torch.Generator().manual_seed(seeds[r]) for r in order]
        tokens: list[list[int]] | None = None
        if self._shared_prefix is not False and self._plain_layers:
            tokens = self._decode_shared([encoded[r] for r in order], generators, sampling)
        if tokens is None:  # one group at a time, the prefix cache repeated across its rows
            tokens = []
            start = 0
            while start < len(order):
                end = start
                while end < len(order) and encoded[order[end]] == encoded[order[start]]:
                    end += 1
                ids = encoded[order[start]]
                tokens += self._decode_repeated(ids, end - start, None if generators is None else generators[start:end],
                                                self._prefill(ids[:-1]), sampling)
                start = end
        out: list[Completion | None] = [None] * len(encoded)
        for r, toks in zip(order, tokens):
            out[r] = self._finish(toks, sampling)
        return out

    def _decode_shared(self, encoded: list[list[int]], generators: list[torch.Generator] | None,
                       sampling: SamplingConfig) -> list[list[int]] | None:
        """Shared-prefix decoding of rows grouped by prompt (`kv_cache.SharedPrefixCache`).

        The distinct prompts are looked up in the prefix store; what the store lacks of them is
        encoded in packed forwards (every prompt's missing tokens together), then stored; then all
        rows decode together. Returns None when the model does not support it.
        """
        if not register_attention():
            self._shared_prefix = False
            return None
        groups: list[list[int]] = []  # the distinct prompts, in order (their rows are contiguous)
        sizes: list[int] = []
        rows: list[tuple[int, int]] = []  # (group, row in group)
        for ids in encoded:
            if not groups or groups[-1] != ids:
                groups.append(ids)
                sizes.append(0)
            rows.append((len(groups) - 1, sizes[-1]))
            sizes[-1] += 1
        found = [self.prefix_store.lookup(ids[:-1]) for ids in groups]
        stored = [n for _, n in found]
        missing = [len(ids) - 1 - n for ids, n in zip(groups, stored)]
        self.stats["reused_tokens"] += sum(stored)
        self.stats["prefill_tokens"] += sum(missing)
        cache = SharedPrefixCache([kv for kv, _ in found], stored, missing, sizes, sampling.max_new_tokens)
        config = self.model.config
        layers = (config.get_text_config() if hasattr(config, "get_text_config") else config).num_hidden_layers
        decoder = self.model.base_model if self.model.base_model is not self.model else None

        def run(input_ids: torch.Tensor, positions: torch.Tensor, logits: bool) -> torch.Tensor | None:
            if logits or decoder is None:
                out = self._forward(input_ids, positions, cache, **{STATE_KWARG: cache})
            else:  # prompt tokens need no logits: skip the LM head
                out = decoder(input_ids=input_ids, position_ids=positions, use_cache=True,
                              **{self._cache_kwarg: cache, STATE_KWARG: cache})
            if cache.calls != layers:
                raise _SharedPrefixUnsupported(f"{cache.calls} attention calls for {layers} layers")
            return out

        def step(t: int, active: list[int], input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
            cache.start_step(t, [rows[r] for r in active], self.device)
            return run(input_ids, positions, logits=True)

        previous = config._attn_implementation
        config._attn_implementation = ATTENTION_NAME
        try:
            # The prompts' missing tokens, packed: pieces of at most `prefill_chunk` tokens.
            pieces: list[tuple[int, int, int]] = []
            budget = self.prefill_chunk
            for g, count in enumerate(missing):
                k = 0
                while k < count:
                    take = min(count - k, budget)
                    pieces.append((g, k, k + take))
                    k, budget = k + take, budget - take
                    if budget == 0:
                        self._prefill_pieces(cache, run, groups, stored, pieces)
                        pieces, budget = [], self.prefill_chunk
            if pieces:
                self._prefill_pieces(cache, run, groups, stored, pieces)
            tokens = self._sample(step, None, [ids[-1] for ids in encoded], [len(ids) - 1 for ids in encoded],
                                  generators, sampling)
            self._shared_prefix = True
        except Exception as error:
            if self._shared_prefix:  # it worked before: a genuine error
                raise
            warnings.warn(
                f"{self.name}: shared-prefix decoding is not supported by this model ({error!r}); "
                "falling back to repeating the prefix cache across samples.",
                RuntimeWarning, stacklevel=4,
            )
            self._shared_prefix = False
            return None
        finally:
            config._attn_implementation = previous
        if self.prefix_store.max_bytes > 0:
            for g, (ids, s) in enumerate(zip(groups, missing)):
                if s:  # the prompt (but its last token) is new: store it
                    self.prefix_store.put(ids[:-1], cache.kv(g, len(ids) - 1))
            # A single-sample prompt's continuation (a policy's episode) is what the trace's next
            # prompt extends: store it too (the last sampled token was never fed to the model).
            for r, (g, _) in enumerate(rows):
                fed = len(tokens[r]) - 1
                if sizes[g] == 1 and fed >= 1:
                    ids = groups[g] + tokens[r][:fed]
                    self.prefix_store.put(ids, cache.kv(g, len(ids)))
        return tokens

    def _prefill_pieces(self, cache: SharedPrefixCache, run: Any, groups: list[list[int]], stored: list[int],
                        pieces: list[tuple[int, int, int]]) -> None:
        """One packed forward over prompt tokens: piece (g, k0, k1) is positions stored[g] + k0 .. k1."""
        cache.start_prefill(pieces, self.device)
        ids = [groups[g][stored[g] + k] for g, k0, k1 in pieces for k in range(k0, k1)]
        positions = [stored[g] + k for g, k0, k1 in pieces for k in range(k0, k1)]
        run(torch.tensor(ids, device=self.device)[:, None], torch.tensor(positions, device=self.device)[:, None],
            logits=False)

    def _decode_repeated(self, ids: list[int], count: int, generators: list[torch.Generator] | None, prefix: Any,
                         sampling: SamplingConfig) -> list[list[int]]:
        """`count` rows continuing one prompt, its prefix cache repeated across them."""
        if prefix is None:
            cache = self._new_cache()
        elif isinstance(prefix, list):
            cache = self._new_cache([(k.expand(count, -1, -1, -1), v.expand(count, -1, -1, -1)) for k, v in prefix])
        else:
            cache = copy.deepcopy(prefix)
            cache.batch_repeat_interleave(count)

        def step(t: int, active: list[int], input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
            return self._forward(input_ids, positions, cache)

        def drop(keep: list[int]) -> None:
            cache.batch_select_indices(torch.tensor(keep, device=self.device))

        return self._sample(step, drop, [ids[-1]] * count, [len(ids) - 1] * count, generators, sampling)

    def _sample(self, step: Any, drop: Any, first: list[int], positions: list[int],
                generators: list[torch.Generator] | None, sampling: SamplingConfig) -> list[list[int]]:
        """The decoding loop: each step feeds every active row its last token and picks the next.

        `step(t, active, input_ids, positions)` returns the logits of the active rows; `drop(keep)`
        (optional) tells the backend which active rows remain. A row ends at EOS, at a stop string
        (then its last token completed the stop) or after `max_new_tokens`.
        """
        count = len(first)
        tokens: list[list[int]] = [[] for _ in range(count)]
        active = list(range(count))
        input_ids = torch.tensor(first, dtype=torch.long, device=self.device)[:, None]
        pos = torch.tensor(positions, dtype=torch.long, device=self.device)[:, None]
        stops = sampling.stop
        window = 2 * max((len(s) for s in stops), default=0) + 8
        brace = sampling.stop_at_closing_brace
        eos = set(self._eos_ids)
        for t in range(sampling.max_new_tokens):
            logits = step(t, active, input_ids, pos)
            self.stats["decode_tokens"] += len(active)
            self.stats["decode_steps"] += 1
            uniforms = None
            if generators is not None:
                uniforms = torch.stack([
                    torch.rand(1 + _BLOCK, generator=generators[r], dtype=torch.float64) for r in active
                ]).to(self.device)
            chosen = self._pick(logits, uniforms, sampling)
            keep = []
            for a, (r, token) in enumerate(zip(active, chosen.tolist())):
                tokens[r].append(token)
                if token in eos:
                    continue
                if stops and any(s in self._decode(tokens[r][-window:]) for s in stops):
                    continue
                # The whole text is decoded only when the new token holds a brace (rare).
                if (brace and CLOSING_BRACE in self._decode(tokens[r][-1:])
                        and closing_brace(self._decode(tokens[r])) is not None):
                    continue
                keep.append(a)
            if not keep:
                break
            if len(keep) < len(active):
                if drop is not None:
                    drop(keep)
                index = torch.tensor(keep, device=self.device)
                active = [active[a] for a in keep]
                chosen, pos = chosen[index], pos[index]
            input_ids = chosen[:, None]
            pos = pos + 1
        return tokens

    @staticmethod
    def _pick(logits: torch.Tensor, uniforms: torch.Tensor | None, sampling: SamplingConfig) -> torch.Tensor:
        """Next token per row: argmax when greedy, else a draw from softmax(logits / T)
        (nucleus-filtered when top_p < 1) made with the row's own uniforms [rows, 1 + _BLOCK]."""
        logits = logits.float()
        if sampling.greedy:
            return logits.argmax(dim=-1)
        scaled = logits / sampling.temperature
        if sampling.top_p < 1.0:
            probs, order = torch.softmax(scaled, dim=-1).sort(dim=-1, descending=True, stable=True)
            # Keep the most likely tokens until their mass reaches top_p (the first always stays).
            weights = probs * ((probs.cumsum(dim=-1) - probs) < sampling.top_p)
            return order.gather(-1, _draw(weights, uniforms)[:, None]).squeeze(-1)
        return _draw(torch.softmax(scaled, dim=-1), uniforms)

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _finish(self, tokens: list[int], sampling: SamplingConfig) -> Completion:
        eos_pos = next((k for k, t in enumerate(tokens) if t in self._eos_ids), None)
        body = tokens if eos_pos is None else tokens[:eos_pos]
        text = self._decode(body)
        match = find_stop(text, sampling)
        if match is not None:
            index, stop = match
            count = tokens_to_stop(body, sampling, self._decode)
            return Completion(text=text[:index], num_tokens=count, finish_reason="stop", stop_reason=stop,
                              token_ids=tuple(tokens[:count]))
        if eos_pos is not None:
            return Completion(text=text, num_tokens=eos_pos + 1, finish_reason="stop",
                              token_ids=tuple(tokens[: eos_pos + 1]))
        return Completion(text=text, num_tokens=len(body), finish_reason="length", token_ids=tuple(body))


# Vocabulary entries per block of the two-level draw (see `_draw`).
_BLOCK = 256


def _draw(weights: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """One index per row drawn in proportion to the non-negative `weights` [rows, n], from the
    row's uniforms [rows, 1 + _BLOCK] in [0, 1): the first picks a block of _BLOCK entries by
    inverse CDF over the block totals, the rest pick an entry of that block by the Gumbel-max trick
    (argmax of log w - log(-log u)). Exactly the distribution of the weights, and robust to float
    noise: a perturbation eps of the weights changes the draw only when u lies within ~eps of a
    block boundary (blocks are wide) or two Gumbel scores tie within ~eps. Each row is computed on
    its own: the result never depends on the other rows."""
    rows, n = weights.shape
    nb = -(-n // _BLOCK)
    if nb * _BLOCK != n:
        weights = F.pad(weights, (0, nb * _BLOCK - n))
    blocks = weights.view(rows, nb, _BLOCK)
    cum = blocks.sum(dim=-1).double().cumsum(dim=-1)
    target = uniforms[:, :1].double() * cum[:, -1:]
    j = torch.searchsorted(cum, target, right=True)
    # Rounding at the very top could point past the last block with any weight: stop there.
    j = torch.minimum(j, (cum < cum[:, -1:]).sum(dim=-1, keepdim=True))
    chosen = blocks[torch.arange(rows, device=weights.device), j[:, 0]].double()
    scores = chosen.log() - (-uniforms[:, 1:].double().log()).log()
    return (j[:, 0] * _BLOCK + scores.argmax(dim=-1)).clamp_(max=n - 1)


# A letter that starts a new token after whitespace (see `TransformersEngine._encode`).
_PROBE = "A"


class _SharedPrefixUnsupported(RuntimeError):
    """The model did not route its attention through the shared-prefix attention function."""


def _row_seed(seed: int, index: int) -> int:
    """The seed of row `index` of a prompt seeded with `seed`: 63 bits, stable across processes."""
    digest = hashlib.blake2b(f"ttc-row:{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _row_seeds(seed: Any, num_prompts: int, n: int) -> list[list[int]]:
    """Per prompt, the seeds of its n sample rows.

    One integer seed s: row r of the call (prompt-major, r = i * n + j) gets _row_seed(s, r), so
    a call's prompts and samples all differ. A sequence (one seed s_i per prompt): sample j of
    prompt i gets _row_seed(s_i, j), which is what prompt i alone with seed s_i gets. None: fresh.
    """
    if seed is None:
        return [[_row_seed(secrets.randbits(63), j) for j in range(n)] for _ in range(num_prompts)]
    if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence) and not hasattr(seed, "__len__"):
        seed = check_int("seed", seed, minimum=0)
        return [[_row_seed(seed, i * n + j) for j in range(n)] for i in range(num_prompts)]
    seeds = [check_int(f"seed[{i}]", s, minimum=0) for i, s in enumerate(seed)]
    if len(seeds) != num_prompts:
        raise ValueError(f"seed has {len(seeds)} entries for {num_prompts} prompts; give one seed per prompt.")
    return [[_row_seed(s, j) for j in range(n)] for s in seeds]
