"""Decoding rows of token ids with a Hugging Face causal LM, reusing stored prompt prefixes
(`TransformersEngine`'s decoding loop; `model.generate` is not used).

- each distinct prompt but its last token is prefilled once, batch 1, starting from the longest
  prefix found in the prefix store (`ttc_gym.engines.kv_cache.PrefixStore`): across the steps of a
  reasoning trace only the new text is encoded. The store is dropped when the weights change;
- the `n` samples of a prompt are rows of one batch that share the prompt's keys and values: with
  shared-prefix decoding (default, llama-style models whose attention goes through transformers'
  AttentionInterface) the prefix is stored once per prompt and attention reads it once per step for
  all its rows (`ttc_gym.engines.kv_cache.SharedPrefixCache`); otherwise each prompt's rows decode
  with the prefix cache repeated across them (`DynamicCache`);
- every row picks its tokens with its own random numbers (`ttc_gym.engines.sampling`), so a row's
  tokens do not depend on the other rows of the batch;
- rows that finish (EOS, stop string, closing brace, `max_new_tokens`) leave the batch.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ttc_gym.engines.base import CLOSING_BRACE, SamplingConfig, closing_brace
from ttc_gym.engines.kv_cache import ATTENTION_NAME, STATE_KWARG, PrefixStore, SharedPrefixCache, register_attention
from ttc_gym.engines.sampling import pick_tokens, row_generators, row_uniforms


class KVDecoder:
    """Samples continuations of token-id rows with `model`, keeping prompt prefixes in a `PrefixStore`.

    Args:
        model: a Hugging Face causal LM (on `device`, eval mode).
        tokenizer: its tokenizer (to find stop strings in the decoded text).
        device: where the model runs.
        eos_ids: the end-of-sequence token ids.
        prefix_cache_bytes: memory for stored prompt prefixes; 0 disables the store.
        shared_prefix: decode the rows of a prompt against one shared copy of its prefix; False
            repeats the prefix cache across the rows instead.
        name: the engine's name, for warnings.

    `stats` counts prompt tokens encoded, prompt tokens reused from the store, tokens decoded
    (rows x steps) and decoding forwards (steps); `prefill_chunk` (2048) bounds the prompt tokens
    encoded in one forward.
    """

    def __init__(self, model: Any, tokenizer: Any, device: torch.device, eos_ids: list[int], *,
                 prefix_cache_bytes: int, shared_prefix: bool, name: str):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.eos_ids = list(eos_ids)
        self.name = name
        self.prefix_store = PrefixStore(prefix_cache_bytes)
        # None: not yet tried on this model; the first shared-prefix decode checks that it works.
        self._shared_prefix: bool | None = None if shared_prefix else False
        self._weights_signature: tuple | None = None
        # Most prompt tokens encoded in one packed forward (shared-prefix path).
        self.prefill_chunk = 2048
        # Work done so far, in tokens: prompt tokens encoded, prompt tokens reused from stored
        # prefixes, decoding work (one per generated token of each row) and decoding forwards
        # (one per step of a batch, whatever its number of rows: each reads all the weights).
        self.stats = {"prefill_tokens": 0, "reused_tokens": 0, "decode_tokens": 0, "decode_steps": 0}
        # transformers 5.x names the KV-cache argument `cache`; 4.x named it `past_key_values`.
        params = inspect.signature(model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        # Only the last position's logits are ever needed; skip the (positions x vocabulary) matrix.
        self._logits_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        # The prefix store and shared-prefix decoding need plain (full-attention) cache layers.
        layers = getattr(self.new_cache(), "layers", None)
        self._plain_layers = bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    @property
    def shared_prefix(self) -> bool | None:
        """True once shared-prefix decoding has worked on this model, False when it is off or
        unsupported (rows then repeat the prefix cache), None before the first decode."""
        return self._shared_prefix

    def decode(self, encoded: list[list[int]], seeds: list[int], sampling: SamplingConfig) -> list[list[int]]:
        """The sampled token ids of each row: row r continues `encoded[r]` with seed `seeds[r]`
        (seeds are unused when `sampling` is greedy), up to and including the token that ended it.
        Call inside `torch.inference_mode()`, after `check_weights()`."""
        # Rows of the same prompt form a group; groups are contiguous in the decoding order.
        group_of: dict[tuple[int, ...], int] = {}
        for ids in encoded:
            group_of.setdefault(tuple(ids), len(group_of))
        order = sorted(range(len(encoded)), key=lambda r: group_of[tuple(encoded[r])])
        # Each row draws from its own generator (the same draws whatever else is in the batch).
        generators = None if sampling.greedy else row_generators([seeds[r] for r in order])
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
                                                self.prefill(ids[:-1]), sampling)
                start = end
        out: list[list[int]] = [[] for _ in encoded]
        for r, toks in zip(order, tokens):
            out[r] = toks
        return out

    def check_weights(self) -> None:
        """Drop the prefix store when a parameter was replaced or updated in place since last call."""
        signature = tuple((id(p), p._version) for p in self.model.parameters())
        if signature != self._weights_signature:
            self.prefix_store.clear()
            self._weights_signature = signature

    def new_cache(self, kv: list | None = None) -> Any:
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

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, cache: Any, **kwargs: Any) -> torch.Tensor:
        """Logits [rows, vocab] of the last position."""
        out = self.model(
            input_ids=input_ids, position_ids=position_ids, use_cache=True,
            **{self._cache_kwarg: cache}, **self._logits_kwargs, **kwargs,
        )
        return out.logits[:, -1, :]

    def prefill(self, ids: list[int]) -> Any:
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
        cache = self.new_cache(None if kv is None else [(k[:, :, :reused], v[:, :, :reused]) for k, v in kv])
        input_ids = torch.tensor([ids[reused:]], dtype=torch.long, device=self.device)
        positions = torch.arange(reused, len(ids), device=self.device)[None, :]
        self.forward(input_ids, positions, cache)
        if not self._plain_layers:
            return cache
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        self.prefix_store.put(ids, kv)
        return kv

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
        body = self.model.base_model if self.model.base_model is not self.model else None

        def run(input_ids: torch.Tensor, positions: torch.Tensor, logits: bool) -> torch.Tensor | None:
            if logits or body is None:
                out = self.forward(input_ids, positions, cache, **{STATE_KWARG: cache})
            else:  # prompt tokens need no logits: skip the LM head
                out = body(input_ids=input_ids, position_ids=positions, use_cache=True,
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
            tokens = self._run(step, None, [ids[-1] for ids in encoded], [len(ids) - 1 for ids in encoded],
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
            cache = self.new_cache()
        elif isinstance(prefix, list):
            cache = self.new_cache([(k.expand(count, -1, -1, -1), v.expand(count, -1, -1, -1)) for k, v in prefix])
        else:
            cache = copy.deepcopy(prefix)
            cache.batch_repeat_interleave(count)

        def step(t: int, active: list[int], input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
            return self.forward(input_ids, positions, cache)

        def drop(keep: list[int]) -> None:
            cache.batch_select_indices(torch.tensor(keep, device=self.device))

        return self._run(step, drop, [ids[-1]] * count, [len(ids) - 1] * count, generators, sampling)

    def _run(self, step: Any, drop: Any, first: list[int], positions: list[int],
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
        eos = set(self.eos_ids)
        for t in range(sampling.max_new_tokens):
            logits = step(t, active, input_ids, pos)
            self.stats["decode_tokens"] += len(active)
            self.stats["decode_steps"] += 1
            uniforms = None if generators is None else row_uniforms([generators[r] for r in active]).to(self.device)
            chosen = pick_tokens(logits, uniforms, sampling)
            keep = []
            for a, (r, token) in enumerate(zip(active, chosen.tolist())):
                tokens[r].append(token)
                if token in eos:
                    continue
                if stops and any(s in self._text(tokens[r][-window:]) for s in stops):
                    continue
                # The whole text is decoded only when the new token holds a brace (rare).
                if (brace and CLOSING_BRACE in self._text(tokens[r][-1:])
                        and closing_brace(self._text(tokens[r])) is not None):
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

    def _text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)


class _SharedPrefixUnsupported(RuntimeError):
    """The model did not route its attention through the shared-prefix attention function."""
