"""A hand-written forward of Hugging Face's `LlamaForCausalLM` for the static decode loop
(`ttc_gym.engines.static_decoding`): the same arithmetic as transformers' `modeling_llama.py`
(RMSNorm, rotary embeddings from the model's own `rotary_emb`, grouped-query attention, SiLU MLP,
tied or untied LM head) with none of its per-call framework work (module calls, kwargs plumbing,
cache objects, masks built per forward).

Why: decoding a 1.1 M-parameter model spends ~95 % of each token in that framework work, not in
arithmetic (issue 28's profile), and a bigger model's few-row decoding is bounded by how fast its
weights stream, which the few-row linear form helps (`ttc_gym.engines.small_rows`).

Choices that are ours (results equal transformers' up to float rounding; tests compare logits):
- small models (weights <= `FUSE_BYTES`) get fused, pre-transposed copies of their projections
  (q|k|v in one matrix, gate|up in another), so a layer is 4 matrix products; the copies are rebuilt
  when the weights change (`LlamaWeights.signature`). Bigger models use their own parameters in
  place (no copy), and on a CPU in float32 compute products of at most `small_rows.MAX_ROWS` rows
  with the compiled few-row kernel (`ttc_gym.engines.rows_linear`, `kernel=True`, where a C compiler
  is present) or else in the form MKL streams fastest (`small_rows.small_row_linear`);
- the rotary tables cos/sin are computed once for every position by the model's own `rotary_emb`
  (so rope scaling types that do not depend on the sequence length are followed exactly);
- the 1/sqrt(head_dim) scaling is applied to the scores, as transformers' SDPA path does.

Supported: `model_type == "llama"` without biases, SiLU, `pretraining_tp` 1, no sliding window, a
rope type that does not change with the sequence length, plain `nn.Linear` projections (no
adapters). `unsupported_reason(model)` says why not; the engine then uses the transformers loop.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ttc_gym.engines import rows_linear
from ttc_gym.engines.small_rows import MAX_ROWS, small_row_linear

# Models whose weights take at most this many bytes get fused, pre-transposed projection copies.
FUSE_BYTES = 64 * 2**20
# Rope types whose tables do not depend on the sequence length (one table serves every position).
STATIC_ROPE = ("default", "linear", "llama3")


def text_config(model: Any) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def unsupported_reason(model: Any) -> str | None:
    """None when `LlamaWeights` can run `model`, else why not (one line)."""
    config = text_config(model)
    if getattr(config, "model_type", None) != "llama":
        return f"model_type is {getattr(config, 'model_type', None)!r}, not 'llama'"
    for flag in ("attention_bias", "mlp_bias"):
        if getattr(config, flag, False):
            return f"{flag} is set"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"hidden_act is {config.hidden_act!r}, not 'silu'"
    if (getattr(config, "pretraining_tp", 1) or 1) != 1:
        return "pretraining_tp != 1"
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if rope_type not in STATIC_ROPE:
        return f"rope type {rope_type!r} is not one of {STATIC_ROPE}"
    body = getattr(model, "model", None)
    if body is None or not hasattr(body, "layers") or not hasattr(model, "lm_head"):
        return "not a LlamaForCausalLM (no .model.layers / .lm_head)"
    for layer in body.layers:
        for module in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj,
                       layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj):
            if type(module) is not torch.nn.Linear:
                return f"a projection is a {type(module).__name__}, not a plain nn.Linear (adapters?)"
    if type(model.lm_head) is not torch.nn.Linear:
        return f"lm_head is a {type(model.lm_head).__name__}, not a plain nn.Linear"
    return None


def weights_signature(model: Any) -> tuple:
    """Changes whenever a parameter is replaced or updated in place."""
    return tuple((id(p), p._version) for p in model.parameters())


class LlamaWeights:
    """The weights of a `LlamaForCausalLM` laid out for `prefill` and `step`, and the forward itself.

    Args:
        model: the model (eval mode; its parameters are read, never written).
        small_rows: compute few-row products with `small_row_linear` (float32 on a CPU only).
        kernel: with small_rows, compute them with `rows_linear` instead where its library is
            available (`self.kernel` says whether it is used); on `kernel_threads` threads.
    """

    def __init__(self, model: Any, *, small_rows: bool, kernel: bool = False):
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"LlamaWeights cannot run this model: {reason}.")
        config = text_config(model)
        body = model.model
        self.signature = weights_signature(model)
        self.asked = (small_rows, kernel)  # (what `small_rows` and `kernel` below were asked to be)
        self.layers_count = config.num_hidden_layers
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.rep = self.heads // self.kv_heads
        self.scale = self.head_dim ** -0.5
        self.eps = float(config.rms_norm_eps)
        self.hidden = config.hidden_size
        embed = body.embed_tokens.weight
        self.dtype, self.device = embed.dtype, embed.device
        self.embed = embed
        self.norm = body.norm.weight
        self.lm_head = model.lm_head.weight
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        self.fused = nbytes <= FUSE_BYTES
        self.small_rows = small_rows and self.device.type == "cpu" and self.dtype == torch.float32 and not self.fused
        self.kernel = self.small_rows and kernel and rows_linear.library()[0] is not None and all(
            p.dim() != 2 or (p.is_contiguous() and p.dtype == torch.float32) for p in model.parameters())
        self.kernel_threads = torch.get_num_threads()  # (the static loop sets it per call)
        self.layers = []
        with torch.no_grad():
            for layer in body.layers:
                a, m = layer.self_attn, layer.mlp
                entry = {"norm1": layer.input_layernorm.weight, "norm2": layer.post_attention_layernorm.weight}
                if self.fused:  # [in, out] copies: x @ W is the fastest few-row form for small matrices
                    entry["qkv"] = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).t().contiguous()
                    entry["o"] = a.o_proj.weight.t().contiguous()
                    entry["gate_up"] = torch.cat([m.gate_proj.weight, m.up_proj.weight]).t().contiguous()
                    entry["down"] = m.down_proj.weight.t().contiguous()
                else:  # the model's own [out, in] parameters
                    entry.update(q=a.q_proj.weight, k=a.k_proj.weight, v=a.v_proj.weight, o=a.o_proj.weight,
                                 gate=m.gate_proj.weight, up=m.up_proj.weight, down=m.down_proj.weight)
                self.layers.append(entry)
            self.lm_head_t = self.lm_head.t().contiguous() if self.fused else None
            # cos/sin of every position, from the model's own rotary embedding.
            positions = torch.arange(config.max_position_embeddings, device=self.device)[None]
            cos, sin = body.rotary_emb(embed[:1], positions)
            self.cos, self.sin = cos[0].to(self.dtype), sin[0].to(self.dtype)
        self.intermediate = config.intermediate_size
        self.q_size = self.heads * self.head_dim
        self.kv_size = self.kv_heads * self.head_dim

    # -- pieces ------------------------------------------------------------------------------------

    def _linear(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """x [rows, in] times an [out, in] parameter."""
        if self.small_rows and x.shape[0] <= MAX_ROWS:
            if self.kernel and rows_linear.MIN_ROWS <= x.shape[0] <= rows_linear.MAX_ROWS and x.is_contiguous():
                return rows_linear.unchecked(x, weight, self.kernel_threads)  # (weights checked in __init__)
            return small_row_linear(x, weight)
        return F.linear(x, weight)

    def _qkv(self, entry: dict, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.fused:
            qkv = h @ entry["qkv"]
            return (qkv[:, : self.q_size], qkv[:, self.q_size : self.q_size + self.kv_size],
                    qkv[:, self.q_size + self.kv_size :])
        return self._linear(h, entry["q"]), self._linear(h, entry["k"]), self._linear(h, entry["v"])

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x [rows, heads, dim] rotated at each row's position (cos/sin [rows, 1, dim])."""
        half = self.head_dim // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _out_and_mlp(self, entry: dict, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """The rest of a layer after attention: o-projection, residual, MLP, residual."""
        if self.fused:
            x = torch.addmm(x, attn, entry["o"])
            gate_up = F.rms_norm(x, (self.hidden,), entry["norm2"], self.eps) @ entry["gate_up"]
            return torch.addmm(x, F.silu(gate_up[:, : self.intermediate]) * gate_up[:, self.intermediate :],
                               entry["down"])
        x = x + self._linear(attn, entry["o"])
        h = F.rms_norm(x, (self.hidden,), entry["norm2"], self.eps)
        return x + self._linear(F.silu(self._linear(h, entry["gate"])) * self._linear(h, entry["up"]), entry["down"])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Next-token logits [rows, vocab] (float32) of final hidden states x [rows, hidden]."""
        h = F.rms_norm(x, (self.hidden,), self.norm, self.eps)
        out = h @ self.lm_head_t if self.fused else self._linear(h, self.lm_head)
        return out.float()

    # -- prompt tokens ------------------------------------------------------------------------------

    def prefill(self, ids: torch.Tensor, positions: torch.Tensor, pieces: list[tuple[int, int, int, int]],
                keys: torch.Tensor, values: torch.Tensor) -> None:
        """Encode packed prompt tokens and write their keys/values; no logits.

        ids, positions: [tokens]; piece (g, start, end, first) is tokens[start:end], positions
        first .. first + end - start - 1 of group g, which attend to group g's positions 0 .. their
        own (the earlier ones already in keys/values). keys/values: [layers, groups, kv_heads, P, dim].
        """
        x = self.embed[ids]
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]
        count = ids.shape[0]
        masks = []
        for g, start, end, first in pieces:
            m = end - start
            span = torch.arange(first + m, device=ids.device)
            masks.append(span[None, :] <= torch.arange(first, first + m, device=ids.device)[:, None])
        for li, entry in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), entry["norm1"], self.eps)
            q, k, v = self._qkv(entry, h)
            q = self._rope(q.reshape(count, self.heads, self.head_dim), cos, sin)
            k = self._rope(k.reshape(count, self.kv_heads, self.head_dim), cos, sin)
            v = v.reshape(count, self.kv_heads, self.head_dim)
            attn = x.new_empty(count, self.heads, self.head_dim)
            for (g, start, end, first), mask in zip(pieces, masks):
                m = end - start
                keys[li, g, :, first : first + m] = k[start:end].transpose(0, 1)
                values[li, g, :, first : first + m] = v[start:end].transpose(0, 1)
                o = F.scaled_dot_product_attention(
                    q[start:end].transpose(0, 1)[None], keys[li, g, :, : first + m][None],
                    values[li, g, :, : first + m][None], attn_mask=mask, scale=self.scale,
                    enable_gqa=self.rep > 1)
                attn[start:end] = o[0].transpose(0, 1)
            x = self._out_and_mlp(entry, x, attn.reshape(count, self.q_size))

    # -- one decoding step ---------------------------------------------------------------------------

    def step(self, ids: torch.Tensor, positions: torch.Tensor, t: int, cache: "StepCache") -> torch.Tensor:
        """Logits [rows, vocab] of one decoding step: row r feeds ids[r] at positions[r] and attends to
        its group's prompt and its own tokens 0..t (see `StepCache`)."""
        rows = ids.shape[0]
        groups, n = cache.groups, cache.per_group
        kv, rep, dim = self.kv_heads, self.rep, self.head_dim
        x = self.embed[ids]
        cos, sin = self.cos[positions][:, None], self.sin[positions][:, None]
        tb = cache.attended(t)
        own_mask = cache.own_mask[t, :tb]
        for li, entry in enumerate(self.layers):
            h = F.rms_norm(x, (self.hidden,), entry["norm1"], self.eps)
            if self.fused:  # q and k are adjacent columns of one product: rotate them together
                qkv = h @ entry["qkv"]
                qk, v = qkv[:, : self.q_size + self.kv_size], qkv[:, self.q_size + self.kv_size :]
            else:
                q, k, v = self._qkv(entry, h)
                qk = torch.cat([q, k], dim=1)
            qk = self._rope(qk.reshape(rows, self.heads + kv, dim), cos, sin)
            q, k = qk[:, : self.heads], qk[:, self.heads :]
            own_k, own_v = cache.own_keys[li], cache.own_values[li]  # [rows, kv, T, dim]
            own_k[:, :, t] = k
            own_v[:, :, t] = v.reshape(rows, kv, dim)
            # Prompt part: the rows of a group are the queries of one product per kv head.
            qg = q.reshape(groups, n, kv, rep, dim).transpose(1, 2).reshape(groups * kv, n * rep, dim)
            s_prompt = torch.baddbmm(cache.prompt_mask, qg, cache.prompt_keys_t[li], alpha=self.scale)
            s_own = torch.baddbmm(own_mask, q.reshape(rows * kv, rep, dim),
                                  own_k.reshape(rows * kv, -1, dim)[:, :tb].transpose(1, 2), alpha=self.scale)
            s_own = s_own.reshape(groups, n, kv, rep, tb).transpose(1, 2).reshape(groups * kv, n * rep, tb)
            p = torch.softmax(torch.cat([s_prompt, s_own], dim=-1), dim=-1)
            plen = s_prompt.shape[-1]
            o_prompt = torch.bmm(p[..., :plen], cache.prompt_values[li])
            p_own = p[..., plen:].reshape(groups, kv, n, rep, tb).transpose(1, 2).reshape(rows * kv, rep, tb)
            o_own = torch.bmm(p_own, own_v.reshape(rows * kv, -1, dim)[:, :tb])
            o = o_prompt.reshape(groups, kv, n, rep, dim).transpose(1, 2).reshape(rows, kv * rep * dim) \
                + o_own.reshape(rows, kv * rep * dim)
            x = self._out_and_mlp(entry, x, o)
        return self.logits(x)


class StepCache:
    """The keys/values one decoding step reads (views into `static_decoding.StaticKV`'s buffers).

    prompt_keys_t[l]: [groups * kv_heads, dim, P] (transposed for the score product);
    prompt_values[l]: [groups * kv_heads, P, dim]; prompt_mask: [groups * kv_heads, 1, P], 0 where
    a group's prompt has a position, -inf on padding; own_keys[l], own_values[l]: [rows, kv_heads,
    T, dim], row r's tokens of this call; own_mask[t]: [T], 0 up to t, -inf after. Rows are
    groups x per_group, group-major. The buffers these are views of, for the compiled step
    (`ttc_gym.engines.compiled_step`): prompt_kv [layers, 2, groups, kv_heads, P, dim], own_kv
    [layers, 2, rows, kv_heads, T, dim] (both contiguous), prompt_lengths [groups] int32.
    """

    def __init__(self, groups: int, per_group: int, prompt_keys_t: list, prompt_values: list,
                 prompt_mask: torch.Tensor, own_keys: list, own_values: list, own_mask: torch.Tensor,
                 prompt_kv: torch.Tensor | None = None, own_kv: torch.Tensor | None = None,
                 prompt_lengths: torch.Tensor | None = None):
        self.groups, self.per_group = groups, per_group
        self.prompt_keys_t, self.prompt_values, self.prompt_mask = prompt_keys_t, prompt_values, prompt_mask
        self.own_keys, self.own_values, self.own_mask = own_keys, own_values, own_mask
        self.prompt_kv, self.own_kv, self.prompt_lengths = prompt_kv, own_kv, prompt_lengths
        self.prompt_keys_by_dim: torch.Tensor | None = None  # the compiled step's transposed copy, made on first use

    def attended(self, t: int) -> int:
        """Own positions a step at t attends over: t + 1 rounded up to a power of two (a few distinct
        shapes, the masked tail short), at most the capacity."""
        return min(1 << t.bit_length(), self.own_mask.shape[-1])
