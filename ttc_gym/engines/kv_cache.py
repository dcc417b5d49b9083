"""KV-cache machinery of `TransformersEngine`: a store of prompt prefixes, and shared-prefix decoding.

- `PrefixStore`: an LRU of prompt prefixes (token ids) -> their keys and values (batch 1), bounded in
  bytes. A new prompt is prefilled from the longest common prefix with a stored one: across the
  steps of a reasoning trace only the new episode (and the prover's suffix) is encoded.
- `SharedPrefixCache` + `shared_prefix_attention`: one batched decode of several groups of rows in
  which the rows of a group (the n samples of one prompt) share that prompt's keys and values. The
  prefix is stored once per group and read once per step for all the group's rows (attention over
  the prefix is one small matrix product per group, not one per row), so sampling K answers costs
  little more than sampling one. Rows need no padding: each group has its own span of the buffer.

Everything here is exact attention: the outputs equal the usual per-row computation up to float
rounding.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ATTENTION_NAME = "ttc_shared_prefix"
STATE_KWARG = "ttc_shared_prefix"

KV = list  # one (keys, values) pair per layer, each [1, kv_heads, length, head_dim]


class PrefixStore:
    """Prompt prefixes (token ids) and their per-layer keys/values, least recently used evicted first.

    `max_bytes` bounds the stored tensors; 0 disables the store. A stored prefix that another
    stored prefix extends is dropped (the longer one serves every lookup the shorter one would).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple[int, ...], tuple[np.ndarray, KV, int]] = OrderedDict()
        self.nbytes = 0
        self.hits = 0  # lookups that reused at least one token
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def lookup(self, tokens: list[int]) -> tuple[KV | None, int]:
        """(kv, n): the stored keys/values whose first n tokens equal `tokens[:n]`, n as large as possible."""
        if not self._entries or not tokens:
            return None, 0
        query = np.asarray(tokens, dtype=np.int64)
        best_key, best_n = None, 0
        for key, (ids, _, _) in reversed(self._entries.items()):  # most recent first wins ties
            m = min(len(ids), len(query))
            if m <= best_n:
                continue
            diff = np.flatnonzero(ids[:m] != query[:m])
            n = int(diff[0]) if diff.size else m
            if n > best_n:
                best_key, best_n = key, n
        if best_key is None:
            return None, 0
        self._entries.move_to_end(best_key)
        self.hits += 1
        self.reused_tokens += best_n
        return self._entries[best_key][1], best_n

    def put(self, tokens: list[int], kv: KV) -> None:
        if self.max_bytes <= 0 or not tokens:
            return
        key = tuple(tokens)
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        if size > self.max_bytes:
            return
        # Drop stored prefixes of the new entry (and the entry itself, if present).
        for other in [o for o in self._entries if len(o) <= len(key) and key[: len(o)] == o]:
            self.nbytes -= self._entries.pop(other)[2]
        self._entries[key] = (np.asarray(tokens, dtype=np.int64), kv, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes and len(self._entries) > 1:
            self.nbytes -= self._entries.popitem(last=False)[1][2]


class SharedPrefixCache:
    """The KV cache of one batched decode whose rows come in groups sharing a prompt.

    Group g is one prompt (all but its last token): P_g positions whose keys/values come from the
    prefix store, then S_g positions computed here (the rest of the prompt), then its n_g rows'
    new tokens, time-major (step t of the group's row j at P_g + S_g + t * n_g + j). Per layer, one
    buffer [kv_heads, total, head_dim] holds every group in its own span, so rows need no padding.

    The model is driven with rows of one token each, and `cache=self, ttc_shared_prefix=self`:
    - `start_prefill(pieces)`: rows are prompt tokens (several groups packed in one forward); each
      attends to its group's prefix and to the prompt tokens up to itself;
    - `start_step(t, active)`: rows are the decoding rows still active; each attends to its group's
      prompt and to its own new tokens only.
    The model's attention layers write the new keys/values through `update`, and
    `shared_prefix_attention` computes attention group by group: the group's prompt is read once
    for all its rows. `calls` counts the attention calls of a forward (one per layer when the model
    routes its attention through transformers' AttentionInterface).
    """

    def __init__(self, prefixes: list[KV | None], prefix_lengths: list[int], suffix_lengths: list[int],
                 rows_per_group: list[int], steps: int):
        self.prefixes = prefixes
        self.stored = list(prefix_lengths)
        self.shared = [p + s for p, s in zip(prefix_lengths, suffix_lengths)]
        self.rows = list(rows_per_group)
        sizes = [shared + steps * n for shared, n in zip(self.shared, self.rows)]
        self.offsets = [0] + list(np.cumsum(sizes)[:-1].tolist())
        self.total = int(sum(sizes))
        self.keys: list[torch.Tensor | None] = []
        self.values: list[torch.Tensor | None] = []
        self.calls = 0
        self._slots: torch.Tensor | None = None
        self._spans: list[tuple[int, int, int, int, torch.Tensor | None]] = []

    # -- the plan of a forward --------------------------------------------------------------------

    def start_prefill(self, pieces: list[tuple[int, int, int]], device: torch.device) -> None:
        """Rows are the prompt positions k0 <= k < k1 of group g, for each piece (g, k0, k1)."""
        self.calls = 0
        slots, spans, start = [], [], 0
        for g, k0, k1 in pieces:
            p, off, m = self.stored[g], self.offsets[g], k1 - k0
            slots.extend(range(off + p + k0, off + p + k1))
            mask = torch.ones(m, p + k1, dtype=torch.bool, device=device)
            mask[:, p:] = torch.arange(k1, device=device)[None, :] <= torch.arange(k0, k1, device=device)[:, None]
            spans.append((g, start, start + m, p + k1, mask))
            start += m
        self._slots = torch.tensor(slots, dtype=torch.long, device=device)
        self._spans = spans

    def start_step(self, t: int, active: list[tuple[int, int]], device: torch.device) -> None:
        """Rows `active` ((group, row in group), grouped contiguously) feed their token of step t."""
        self.calls = 0
        slots, spans, start = [], [], 0
        while start < len(active):
            g = active[start][0]
            end = start
            while end < len(active) and active[end][0] == g:
                end += 1
            js = [j for _, j in active[start:end]]
            base, n, off = self.shared[g], self.rows[g], self.offsets[g]
            slots.extend(off + base + t * n + j for j in js)
            mask = None
            if n > 1:
                own = torch.arange((t + 1) * n, device=device) % n
                mask = torch.cat(
                    [torch.ones(len(js), base, dtype=torch.bool, device=device),
                     own[None, :] == torch.tensor(js, device=device)[:, None]],
                    dim=1,
                )
            spans.append((g, start, end, base + (t + 1) * n, mask))
            start = end
        self._slots = torch.tensor(slots, dtype=torch.long, device=device)
        self._spans = spans

    def kv(self, g: int, length: int) -> KV:
        """Copies of the first `length` positions of group g (batch 1, per layer), e.g. to store."""
        off = self.offsets[g]
        return [(k[:, off : off + length].unsqueeze(0).clone(), v[:, off : off + length].unsqueeze(0).clone())
                for k, v in zip(self.keys, self.values)]

    # -- what the model's attention layers call -------------------------------------------------

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any):
        while len(self.keys) <= layer_idx:
            self.keys.append(None)
            self.values.append(None)
        if self.keys[layer_idx] is None:
            self._allocate(layer_idx, key_states, value_states)
        # [rows, kv_heads, 1, dim] -> [kv_heads, rows, dim], written at each row's slot.
        self.keys[layer_idx].index_copy_(1, self._slots, key_states[:, :, -1].transpose(0, 1))
        self.values[layer_idx].index_copy_(1, self._slots, value_states[:, :, -1].transpose(0, 1))
        return key_states, value_states

    def _allocate(self, layer_idx: int, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        heads, kdim, vdim = key_states.shape[1], key_states.shape[-1], value_states.shape[-1]
        keys = key_states.new_zeros(heads, self.total, kdim)
        values = value_states.new_zeros(heads, self.total, vdim)
        for g, kv in enumerate(self.prefixes):
            if kv is not None and self.stored[g]:
                k, v = kv[layer_idx]
                off, p = self.offsets[g], self.stored[g]
                keys[:, off : off + p] = k[0, :, :p]
                values[:, off : off + p] = v[0, :, :p]
        self.keys[layer_idx], self.values[layer_idx] = keys, values

    def attend(self, layer_idx: int, query: torch.Tensor, scaling: float | None) -> torch.Tensor:
        """Attention output [rows, 1, heads, dim] for queries [rows, heads, 1, dim]."""
        self.calls += 1
        rows, heads, _, dim = query.shape
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        kv_heads = keys.shape[0]
        rep = heads // kv_heads
        out = query.new_empty(rows, heads, values.shape[-1])
        for g, a, b, length, mask in self._spans:
            m = b - a
            # Query heads h*rep .. h*rep+rep-1 read kv head h (grouped-query attention): the group's
            # rows x rep become the queries of one attention per kv head.
            q = query[a:b, :, -1].reshape(m, kv_heads, rep, dim).transpose(0, 1).reshape(1, kv_heads, m * rep, dim)
            off = self.offsets[g]
            k = keys[:, off : off + length].unsqueeze(0)
            v = values[:, off : off + length].unsqueeze(0)
            attn_mask = None if mask is None else mask.repeat_interleave(rep, dim=0)[None, None]
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scaling)
            out[a:b] = o.reshape(kv_heads, m, rep, -1).transpose(0, 1).reshape(m, heads, -1)
        return out.unsqueeze(1)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


def shared_prefix_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: Any, scaling: float | None = None, dropout: float = 0.0, **kwargs: Any):
    """An AttentionInterface function: shared-prefix attention when the forward carries a
    `SharedPrefixCache` (keyword `ttc_shared_prefix`), plain SDPA otherwise."""
    state = kwargs.pop(STATE_KWARG, None)
    if state is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    return state.attend(module.layer_idx, query, scaling), None


_REGISTERED = False


def register_attention() -> bool:
    """Register `shared_prefix_attention` with transformers (once); False when unavailable."""
    global _REGISTERED
    if not _REGISTERED:
        try:
            from transformers import AttentionInterface
        except ImportError:
            return False
        AttentionInterface.register(ATTENTION_NAME, shared_prefix_attention)
        _REGISTERED = True
    return True
