"""The static decode loop of `TransformersEngine` (its default; issue 28): per token only what the
model needs.

How a call runs (`StaticDecoder.decode`, rows = prompts x samples, at most `max_batch_size`):
- rows of the same prompt form a group; the batch is a grid of groups x `n` slots (n = the
  largest group; a smaller group's spare slots are idle), so ONE forward per step serves every row
  of every group (the policy's single-sample rows and the prover's K samples alike);
- the keys/values live in two preallocated buffers (`StaticKV`, kept across calls, grown only when a
  call needs more): the prompts' [layers, 2, groups, kv_heads, P, dim], filled from the prefix
  store (`ttc_gym.engines.kv_cache.PrefixStore`, shared with the transformers loop) and by packed
  prefill; and the rows' own tokens [layers, 2, rows, kv_heads, T, dim]. A group's prompt is stored
  once and read once per step for all its rows (one score product per group and kv head);
- the forward is `ttc_gym.engines.llama_forward.LlamaWeights.step` (no transformers module calls), or
  for small float32 models on a CPU the compiled step (`ttc_gym.engines.compiled_step`), which also
  draws the tokens and keeps the books below in the same call, and prefills prompts;
- sampling is on tensors: every row's uniforms for the whole call come from its row seed in one
  tensor computation (SplitMix64, `sampling.splitmix64_uniforms`), the token by inverse CDF
  (`sampling.pick_tokens_v2`); EOS is a table lookup; the stop-string / closing-brace check, which
  needs text, runs only for rows whose new token's text could complete one (a precomputed per-token
  table), so the per-step Python work does not grow with the number of rows;
- finished rows stay in the grid (idle) until the open rows fit in half of it: then the grid shrinks
  to the open groups x the most open rows of any of them, each group's open rows moved to its first
  slots (a handful of distinct shapes per call). Rows, not only groups, leave: the prover's K
  samples of a prompt end at different steps (a boxed answer is 1-24 tokens), and on the default
  model a forward of 24 rows costs about twice one of 8 (`bench_linear_forms.py`).

Seeds: row seeds are as before (`sampling.row_seeds`), but what a seed draws is sampler version 2
(`sampling.SAMPLER_VERSIONS`): the same distribution as the transformers loop's, other texts.

CUDA graphs: a step's shapes depend only on (groups, n, P, the attended own length: powers of two)
and every buffer it reads or writes is preallocated, so a step (forward + `pick_tokens_v2`) can be
captured per shape and replayed; the host reads one small tensor per step (which rows finished).
Capturing is not implemented here; the loop avoids what would prevent it (no allocation that grows
per step, no generator objects, no host syncs inside the forward).
"""

from __future__ import annotations

from typing import Any

import torch

from ttc_gym.engines import compiled_step, rows_linear
from ttc_gym.engines.base import CLOSING_BRACE, SamplingConfig, closing_brace
from ttc_gym.engines.kv_cache import PrefixStore
from ttc_gym.engines.llama_forward import LlamaWeights, StepCache, unsupported_reason, weights_signature
from ttc_gym.engines.sampling import pick_tokens_v2, splitmix64_uniforms

# Own-token capacity of a call's first buffer (doubled when a call decodes longer).
OWN_CAPACITY = 256


class StaticKV:
    """Preallocated key/value storage reused across calls (two flat buffers, grown, never shrunk)."""

    def __init__(self) -> None:
        self._prompt: torch.Tensor | None = None
        self._own: torch.Tensor | None = None

    @staticmethod
    def _take(buffer: torch.Tensor | None, shape: tuple[int, ...], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        numel = 1
        for s in shape:
            numel *= s
        if buffer is None or buffer.numel() < numel or buffer.dtype != like.dtype or buffer.device != like.device:
            # Zeros, not empty: padding positions are masked, and must never hold NaN bit patterns.
            buffer = torch.zeros(max(numel, 0 if buffer is None else buffer.numel()), dtype=like.dtype,
                                 device=like.device)
        return buffer, buffer[:numel].view(shape)

    def prompt(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        self._prompt, view = self._take(self._prompt, shape, like)
        return view

    def own(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        self._own, view = self._take(self._own, shape, like)
        return view

    def release(self) -> None:
        self._prompt = self._own = None


class StaticDecoder:
    """Samples continuations of token-id rows with a Llama model (see the module docstring).

    Args:
        model: a Hugging Face `LlamaForCausalLM` (`llama_forward.unsupported_reason` is None).
        tokenizer: its tokenizer (stop strings are found in decoded text).
        eos_ids: the end-of-sequence ids.
        prefix_store: the store of prompt prefixes (shared with the transformers loop).
        stats: the engine's work counters (updated as `decoding.KVDecoder` updates them).
        small_rows: few-row linear form for big float32 models on a CPU (`small_rows`).
        compiled: run each step with the compiled step (`ttc_gym.engines.compiled_step`) where it
            applies (small float32 models on a CPU, a C compiler present); `compiled_reason` says
            why it does not. Settable.
    """

    def __init__(self, model: Any, tokenizer: Any, eos_ids: list[int], *, prefix_store: PrefixStore,
                 stats: dict[str, int], small_rows: bool, compiled: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.eos_ids = list(eos_ids)
        self.prefix_store = prefix_store
        self.stats = stats
        self.small_rows = small_rows
        self.prefill_chunk = 2048
        self.buffers = StaticKV()
        self._weights: LlamaWeights | None = None
        self._tables: dict[tuple, torch.Tensor] = {}
        self._eos_table: torch.Tensor | None = None
        self._checked: tuple | None = None
        self.compiled = compiled
        self._compiled: compiled_step.CompiledStep | None = None

    def __getstate__(self) -> dict:
        # The compiled step is bound to this process's loaded library (ctypes pointers): a copy or an
        # unpickled decoder binds its own on first use.
        state = self.__dict__.copy()
        state["_compiled"] = None
        return state

    @staticmethod
    def unsupported_reason(model: Any) -> str | None:
        return unsupported_reason(model)

    def runnable(self) -> str | None:
        """None when the model, as it is now, can be run by this loop, else why not. Checked again
        whenever its parameters change (e.g. LoRA adapters injected after the engine was built)."""
        signature = weights_signature(self.model)
        if self._checked is None or self._checked[0] != signature:
            self._checked = (signature, unsupported_reason(self.model))
        return self._checked[1]

    def weights(self) -> LlamaWeights:
        """The forward's weights, rebuilt when the model's parameters changed (e.g. a trainer's step)."""
        if (self._weights is None or self._weights.signature != weights_signature(self.model)
                or self._weights.asked != (self.small_rows, self.compiled)):
            self._weights = LlamaWeights(self.model, small_rows=self.small_rows, kernel=self.compiled)
        return self._weights

    def compiled_reason(self) -> str | None:
        """None when decoding runs the compiled step, else why it runs the torch step."""
        if not self.compiled:
            return "turned off (compiled=False)"
        reason = compiled_step.unsupported_reason(self.weights())
        return reason if reason is not None else compiled_step.library()[1]

    def stepper(self, w: LlamaWeights) -> compiled_step.CompiledStep | None:
        """The compiled step bound to `w` when it is on and applies, else None (the torch step).
        The first binding in a process is checked against the torch step (`compiled_step`)."""
        if not self.compiled or compiled_step.unsupported_reason(w) is not None:
            return None
        if self._compiled is None or self._compiled.weights is not w:
            self._compiled = compiled_step.bind(w, lambda: self._check_grid(w))
        return self._compiled

    def _check_grid(self, w: LlamaWeights) -> tuple:
        """A small grid for the first-use check: 2 groups x 2 rows (prompts of 3 and 5 positions of
        random keys/values, one own position filled), the third row finished."""
        g = torch.Generator(device="cpu").manual_seed(0)
        lengths = [3, 5]
        prompt_kv = torch.randn((w.layers_count, 2, 2, w.kv_heads, 5, w.head_dim), generator=g).to(w.dtype)
        own_kv = torch.zeros((w.layers_count, 2, 4, w.kv_heads, 4, w.head_dim), dtype=w.dtype)
        own_kv[..., 0, :] = torch.randn(own_kv[..., 0, :].shape, generator=g).to(w.dtype)
        cache = self._cache(w, prompt_kv, lengths, [0, 1], 2, own_kv, 4)
        ids = torch.randint(0, w.embed.shape[0], (4,), generator=g)
        positions = torch.tensor([4, 4, 6, 6])
        return ids, positions, 1, cache, torch.tensor([True, True, False, True])

    # -- per-token tables ------------------------------------------------------------------------

    def _vocab_texts(self, size: int) -> list[str]:
        """Each id's text ("" for ids the tokenizer does not know: then they are always checked)."""
        known = min(size, len(self.tokenizer))
        return self.tokenizer.batch_decode([[i] for i in range(known)], skip_special_tokens=True) + [""] * (size - known)

    def _candidates(self, sampling: SamplingConfig, size: int, device: torch.device) -> torch.Tensor:
        """[vocab] bool: whether a token's text could complete a stop string or the closing brace.

        A stop string that newly appears in a row's text ends inside the new token's text, so that
        text holds one of its characters; a token whose text is empty or holds U+FFFD (bytes of an
        unfinished character, or a special token) is always checked. Tokens outside the table are
        always checked."""
        key = (sampling.stop, sampling.stop_at_closing_brace, size, str(device))
        table = self._tables.get(key)
        if table is None and not sampling.stop and not sampling.stop_at_closing_brace:
            table = torch.zeros(size, dtype=torch.bool, device=device)  # nothing to check
            self._tables[key] = table
        if table is None:
            chars = set("".join(sampling.stop))
            if sampling.stop_at_closing_brace:
                chars.add(CLOSING_BRACE)
            flags = [not text or "\ufffd" in text or any(c in chars for c in text) for text in self._vocab_texts(size)]
            table = torch.tensor(flags, dtype=torch.bool, device=device)
            self._tables[key] = table
        return table

    def _eos(self, size: int, device: torch.device) -> torch.Tensor:
        if self._eos_table is None or self._eos_table.shape[0] != size or self._eos_table.device != device:
            table = torch.zeros(size, dtype=torch.bool, device=device)
            table[[e for e in self.eos_ids if 0 <= e < size]] = True
            self._eos_table = table
        return self._eos_table

    def _text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _stops(self, tokens: list[int], sampling: SamplingConfig, window: int) -> bool:
        """The transformers loop's stop rule for a row whose last token is new (`decoding.KVDecoder._run`)."""
        if sampling.stop and any(s in self._text(tokens[-window:]) for s in sampling.stop):
            return True
        return (sampling.stop_at_closing_brace and CLOSING_BRACE in self._text(tokens[-1:])
                and closing_brace(self._text(tokens)) is not None)

    # -- the loop ----------------------------------------------------------------------------------

    def decode(self, encoded: list[list[int]], seeds: list[int], sampling: SamplingConfig,
               shared_prefix: bool = True) -> list[list[int]]:
        """The sampled token ids of each row: row r continues `encoded[r]` with seed `seeds[r]`, up to
        and including the token that ended it. Call inside `torch.inference_mode()`.

        shared_prefix=False gives every row its own group (its prompt's keys copied per row): the
        same texts, more work (kept to check that sharing changes nothing)."""
        w = self.weights()
        device = w.device
        # Groups: distinct prompts (in order of first appearance), or one per row.
        keys = [tuple(ids) for ids in encoded] if shared_prefix else [(r,) for r in range(len(encoded))]
        group_of: dict[tuple, int] = {}
        members: list[list[int]] = []
        for r, key in enumerate(keys):
            g = group_of.setdefault(key, len(group_of))
            if g == len(members):
                members.append([])
            members[g].append(r)
        prompts = [encoded[m[0]] for m in members]
        groups, n = len(members), max(len(m) for m in members)
        singles = [len(m) == 1 for m in members]  # a single-sample group's continuation is stored
        slots = groups * n
        slot_row = [-1] * slots  # the row each slot decodes (-1: idle)
        for g, m in enumerate(members):
            for j, r in enumerate(m):
                slot_row[g * n + j] = r

        # Prompts (all but their last token): from the store, then packed prefill of the rest, once
        # per distinct prompt (shared_prefix=False: the other groups of a prompt copy its keys).
        first_group: dict[tuple, int] = {}
        source = [first_group.setdefault(tuple(ids), g) for g, ids in enumerate(prompts)]
        found = [self.prefix_store.lookup(ids[:-1]) if source[g] == g else (None, 0) for g, ids in enumerate(prompts)]
        lengths = [len(ids) - 1 for ids in prompts]
        p_max = max(1, max(lengths))
        prompt_kv = self.buffers.prompt((w.layers_count, 2, groups, w.kv_heads, p_max, w.head_dim), w.embed)
        for g, (kv, stored) in enumerate(found):
            if stored:
                for li, (k, v) in enumerate(kv):
                    prompt_kv[li, 0, g, :, :stored] = k[0, :, :stored]
                    prompt_kv[li, 1, g, :, :stored] = v[0, :, :stored]
        stored = [s for _, s in found]
        missing = [length - s if source[g] == g else 0 for g, (length, s) in enumerate(zip(lengths, stored))]
        self.stats["reused_tokens"] += sum(stored)
        self.stats["prefill_tokens"] += sum(missing)
        self._prefill(w, prompts, stored, missing, prompt_kv)
        copies = [g for g in range(groups) if source[g] != g]
        if copies:
            prompt_kv[:, :, copies] = prompt_kv[:, :, [source[g] for g in copies]]

        # Row state, per slot.
        first = [prompts[g][-1] for g in range(groups) for _ in range(n)]
        ids = torch.tensor(first, dtype=torch.long, device=device)
        pos = torch.tensor([lengths[g] for g in range(groups) for _ in range(n)], dtype=torch.long, device=device)
        live = torch.tensor([r >= 0 for r in slot_row], dtype=torch.bool, device=device)
        steps = sampling.max_new_tokens
        uniforms = None
        if not sampling.greedy:
            row_seed = torch.tensor([seeds[r] if r >= 0 else 0 for r in slot_row], dtype=torch.int64, device=device)
            uniforms = splitmix64_uniforms(row_seed, steps)
        out = torch.zeros(slots, steps, dtype=torch.long, device=device)
        ended = torch.full((slots,), steps, dtype=torch.long, device=device)  # tokens each slot keeps
        group_ids = list(range(groups))  # original group index of each grid group
        capacity = min(steps, OWN_CAPACITY)
        own_kv = self.buffers.own((w.layers_count, 2, slots, w.kv_heads, capacity, w.head_dim), w.embed)
        cache = self._cache(w, prompt_kv, lengths, group_ids, n, own_kv, capacity)
        eos_table = self._eos(w.embed.shape[0], device)
        cand_table = self._candidates(sampling, w.embed.shape[0], device)
        stepper = self.stepper(w)
        # The compiled step also draws the tokens, except under a nucleus filter (torch's sort).
        samples_in_c = stepper is not None and (sampling.greedy or sampling.top_p >= 1.0)
        window = 2 * max((len(s) for s in sampling.stop), default=0) + 8
        results: dict[int, list[int]] = {}
        t = 0
        # With the few-row kernel, torch runs on one thread while few rows decode: its OpenMP workers
        # spin after each parallel op (the head's logits, the sampler) and would take the cores the
        # kernel's pool runs on (`ttc_gym.engines.rows_linear`). Restored after the loop.
        outer_threads = w.kernel_threads = torch.get_num_threads()
        try:
            while t < steps:
                threads = 1 if w.kernel and rows_linear.MIN_ROWS <= ids.shape[0] <= rows_linear.MAX_ROWS \
                    else outer_threads
                if torch.get_num_threads() != threads:
                    torch.set_num_threads(threads)
                if t == capacity:  # grow the own-token buffers (a long completion)
                    capacity = min(steps, 2 * capacity)
                    bigger = torch.zeros(own_kv.shape[:4] + (capacity, w.head_dim), dtype=own_kv.dtype, device=device)
                    bigger[..., : own_kv.shape[4], :] = own_kv
                    own_kv = bigger
                    cache = self._cache(w, prompt_kv, lengths, group_ids, n, own_kv, capacity)
                self.stats["decode_steps"] += 1  # (decode_tokens: counted per row when it retires)
                if samples_in_c:  # forward, token, EOS and bookkeeping in one compiled call (in place)
                    count, check_rows, open_groups = stepper.decode_step(ids, pos, t, cache, live, uniforms, sampling,
                                                                         eos_table, cand_table, out, ended)
                    stopped = [s for s in check_rows if self._stops(out[s, : t + 1].tolist(), sampling, window)]
                    if stopped:
                        live[stopped] = False
                        ended[stopped] = t + 1
                        open_groups = live.view(-1, n).any(dim=1)
                        count = int(open_groups.sum())
                    chosen = ids
                else:
                    logits = stepper.step(ids, pos, t, cache, live) if stepper is not None else w.step(ids, pos, t, cache)
                    chosen = pick_tokens_v2(logits, None if uniforms is None else uniforms[:, t], sampling)
                    out[:, t] = chosen
                    finished = live & eos_table[chosen]
                    check = live & ~finished & cand_table[chosen]
                    if bool(check.any()):
                        rows_tokens = out[:, : t + 1]
                        for s in check.nonzero()[:, 0].tolist():
                            if self._stops(rows_tokens[s].tolist(), sampling, window):
                                finished[s] = True
                    ended = torch.where(finished, t + 1, ended)
                    live = live & ~finished
                    pos = pos + 1
                    open_groups = live.view(-1, n).any(dim=1)
                    count = int(open_groups.sum())
                t += 1
                if count == 0:
                    break
                grid = self._compaction(live, open_groups, count, n) if t < steps else None
                if grid is not None:  # compact: open groups to the front, their open rows to the front slots
                    keep, keep_slots, padding, n_new, leaving = grid
                    gone = [g for g, o in enumerate(open_groups.tolist()) if not o]
                    self._retire(gone, group_ids, n, slot_row, prompts, lengths, missing, out, ended, prompt_kv,
                                 own_kv, results, single=singles)
                    self._record(leaving, slot_row, out, ended, results)  # (idle padding: no row, skipped)
                    prompt_kv = prompt_kv.index_select(2, keep)
                    own_kv = own_kv.index_select(2, keep_slots)
                    ids, pos, live, out, ended = (x.index_select(0, keep_slots) for x in (chosen, pos, live, out, ended))
                    if uniforms is not None:
                        uniforms = uniforms.index_select(0, keep_slots)
                    old_rows = [slot_row[s] for s in keep_slots.tolist()]
                    slot_row = [-1 if pad else r for r, pad in zip(old_rows, padding)]
                    if any(padding):
                        live[torch.tensor(padding, device=device)] = False
                    group_ids = [group_ids[g] for g in keep.tolist()]
                    n = n_new
                    cache = self._cache(w, prompt_kv, lengths, group_ids, n, own_kv, capacity)
                    continue
                ids = chosen
        finally:
            if torch.get_num_threads() != outer_threads:
                torch.set_num_threads(outer_threads)
        self._retire(list(range(len(group_ids))), group_ids, n, slot_row, prompts, lengths, missing, out, ended,
                     prompt_kv, own_kv, results, single=singles)
        if stepper is not None:
            stepper.forget()
        return [results[r] for r in range(len(encoded))]

    def next_logits(self, encoded: list[list[int]], shared_prefix: bool = True) -> torch.Tensor:
        """[rows, vocab] float32 logits of the token after each row's ids, computed as `decode`
        computes them (store lookup, packed prefill, one step of the grid); nothing is stored. For
        checks against the model's own forward. Call inside `torch.inference_mode()`."""
        w = self.weights()
        keys = [tuple(ids) for ids in encoded] if shared_prefix else [(r,) for r in range(len(encoded))]
        order: dict[tuple, list[int]] = {}
        for r, key in enumerate(keys):
            order.setdefault(key, []).append(r)
        members = list(order.values())
        prompts = [encoded[m[0]] for m in members]
        n = max(len(m) for m in members)
        found = [self.prefix_store.lookup(ids[:-1]) for ids in prompts]
        lengths = [len(ids) - 1 for ids in prompts]
        prompt_kv = torch.zeros((w.layers_count, 2, len(prompts), w.kv_heads, max(1, max(lengths)), w.head_dim),
                                dtype=w.dtype, device=w.device)
        for g, (kv, stored) in enumerate(found):
            for li, (k, v) in enumerate(kv or []):
                prompt_kv[li, 0, g, :, :stored], prompt_kv[li, 1, g, :, :stored] = k[0, :, :stored], v[0, :, :stored]
        stored = [s for _, s in found]
        self._prefill(w, prompts, stored, [a - b for a, b in zip(lengths, stored)], prompt_kv)
        own_kv = torch.zeros((w.layers_count, 2, len(prompts) * n, w.kv_heads, 1, w.head_dim), dtype=w.dtype,
                             device=w.device)
        cache = self._cache(w, prompt_kv, lengths, list(range(len(prompts))), n, own_kv, 1)
        ids = torch.tensor([p[-1] for p in prompts for _ in range(n)], device=w.device)
        pos = torch.tensor([length for length in lengths for _ in range(n)], device=w.device)
        stepper = self.stepper(w)
        if stepper is not None:
            logits = stepper.step(ids, pos, 0, cache, torch.ones(ids.shape[0], dtype=torch.bool))
        else:
            logits = w.step(ids, pos, 0, cache)
        out = torch.empty(len(encoded), logits.shape[-1], dtype=logits.dtype, device=logits.device)
        for g, m in enumerate(members):
            for j, r in enumerate(m):
                out[r] = logits[g * n + j]
        return out

    def _cache(self, w: LlamaWeights, prompt_kv: torch.Tensor, lengths: list[int], group_ids: list[int], n: int,
               own_kv: torch.Tensor, capacity: int) -> StepCache:
        groups, kv, p_max, dim = prompt_kv.shape[2], w.kv_heads, prompt_kv.shape[4], w.head_dim
        device = prompt_kv.device
        present = torch.arange(p_max, device=device)[None, :] < torch.tensor(
            [lengths[g] for g in group_ids], device=device)[:, None]
        zero = torch.zeros((), dtype=prompt_kv.dtype, device=device)
        minus = torch.full((), float("-inf"), dtype=prompt_kv.dtype, device=device)
        mask = torch.where(present, zero, minus)[:, None, None, :].expand(groups, kv, 1, p_max).reshape(groups * kv, 1, p_max)
        own_mask = torch.where(torch.arange(capacity, device=device)[None, :] <= torch.arange(capacity, device=device)[:, None],
                               zero, minus)
        return StepCache(
            groups, n,
            [prompt_kv[li, 0].reshape(groups * kv, p_max, dim).transpose(1, 2) for li in range(w.layers_count)],
            [prompt_kv[li, 1].reshape(groups * kv, p_max, dim) for li in range(w.layers_count)],
            mask,
            [own_kv[li, 0] for li in range(w.layers_count)], [own_kv[li, 1] for li in range(w.layers_count)],
            own_mask,
            prompt_kv=prompt_kv, own_kv=own_kv,
            prompt_lengths=torch.tensor([lengths[g] for g in group_ids], dtype=torch.int32, device=device),
        )

    def _prefill(self, w: LlamaWeights, prompts: list[list[int]], stored: list[int], missing: list[int],
                 prompt_kv: torch.Tensor) -> None:
        """Encode what the store lacked of each prompt, packed, at most `prefill_chunk` tokens per forward
        (by the compiled step when it runs: `compiled_step.CompiledStep.prefill`)."""
        pieces: list[tuple[int, int, int]] = []  # (group, first position, end position)
        budget = self.prefill_chunk
        batches = []
        for g, count in enumerate(missing):
            k = stored[g]
            end = stored[g] + count
            while k < end:
                take = min(end - k, budget)
                pieces.append((g, k, k + take))
                k, budget = k + take, budget - take
                if budget == 0:
                    batches.append(pieces)
                    pieces, budget = [], self.prefill_chunk
        if pieces:
            batches.append(pieces)
        device = w.device
        keys, values = prompt_kv[:, 0], prompt_kv[:, 1]
        stepper = self.stepper(w)
        for batch in batches:
            ids = [prompts[g][k] for g, a, b in batch for k in range(a, b)]
            positions = [k for _, a, b in batch for k in range(a, b)]
            spans, start = [], 0
            for g, a, b in batch:
                spans.append((g, start, start + b - a, a))
                start += b - a
            ids_t, positions_t = torch.tensor(ids, device=device), torch.tensor(positions, device=device)
            if stepper is not None:
                stepper.prefill(ids_t, positions_t, spans, prompt_kv)
            else:
                w.prefill(ids_t, positions_t, spans, keys, values)

    @staticmethod
    def _compaction(live: torch.Tensor, open_groups: torch.Tensor, count: int, n: int):
        """The smaller grid to continue on, or None to keep this one. Compacts when the open groups
        times the most open rows of any of them (the new n) is at most half the grid's slots; then
        returns (kept grid groups, the slot each new slot takes, which new slots are padding, new n,
        the finished slots of the kept groups, which leave). Open rows keep their order within a
        group; a group with fewer open rows than the new n is padded with idle slots (copies of one of
        its slots, never live)."""
        slots = live.shape[0]
        if count > slots // 2 or (n > 1 and int(live.sum()) > slots // 2):  # (n_new * count >= live rows)
            return None
        live_grid = live.view(-1, n).tolist()
        n_new = max(1, max(sum(row) for row in live_grid))
        if count * n_new > slots // 2:
            return None
        keep = open_groups.nonzero()[:, 0]
        keep_slots, padding, leaving = [], [], []
        for x in keep.tolist():
            mine = [x * n + j for j, on in enumerate(live_grid[x]) if on]
            leaving += [x * n + j for j, on in enumerate(live_grid[x]) if not on]
            pad = n_new - len(mine)
            keep_slots += mine + [x * n] * pad
            padding += [False] * len(mine) + [True] * pad
        return keep, torch.tensor(keep_slots, device=live.device), padding, n_new, leaving

    def _record(self, slots: list[int], slot_row: list[int], out: torch.Tensor, ended: torch.Tensor,
                results: dict[int, list[int]]) -> None:
        """Record the tokens of the rows these (finished) slots decoded."""
        if not slots:
            return
        index = torch.tensor(slots, device=out.device)
        tokens = out.index_select(0, index).tolist()
        ends = ended.index_select(0, index).tolist()
        for i, s in enumerate(slots):
            r = slot_row[s]
            if r >= 0:
                results[r] = tokens[i][: ends[i]]
                self.stats["decode_tokens"] += ends[i]  # one decoding row-step per token

    def _retire(self, grid_groups: list[int], group_ids: list[int], n: int, slot_row: list[int],
                prompts: list[list[int]], lengths: list[int], missing: list[int], out: torch.Tensor,
                ended: torch.Tensor, prompt_kv: torch.Tensor, own_kv: torch.Tensor,
                results: dict[int, list[int]], *, single: list[bool]) -> None:
        """Record the tokens of the rows of these grid groups, and store what later prompts reuse:
        a prompt that was (partly) new, and a single-sample group's continuation (a policy's episode,
        which the trace's next prompt extends; its last sampled token was never fed). single[g]:
        whether original group g had one row (a multi-sample group compacted to one open row is not
        a trace's continuation)."""
        if not grid_groups:
            return
        slots = [x * n + j for x in grid_groups for j in range(n)]
        self._record(slots, slot_row, out, ended, results)
        if self.prefix_store.max_bytes <= 0:
            return
        layers = prompt_kv.shape[0]
        for x in grid_groups:
            g = group_ids[x]
            length = lengths[g]
            if missing[g] and length:
                self.prefix_store.put(prompts[g][:-1], [
                    (prompt_kv[li, 0, x, :, :length][None].clone(), prompt_kv[li, 1, x, :, :length][None].clone())
                    for li in range(layers)])
            rows_here = [s for s in range(x * n, x * n + n) if slot_row[s] >= 0]
            if not single[g] or len(rows_here) != 1:
                continue
            s = rows_here[0]
            fed = len(results[slot_row[s]]) - 1
            if fed < 1:
                continue
            self.prefix_store.put(prompts[g] + results[slot_row[s]][:fed], [
                (torch.cat([prompt_kv[li, 0, x, :, :length], own_kv[li, 0, s, :, : fed + 1]], dim=1)[None],
                 torch.cat([prompt_kv[li, 1, x, :, :length], own_kv[li, 1, s, :, : fed + 1]], dim=1)[None])
                for li in range(layers)])
