"""`TransformersEngine`: batched sampling with a Hugging Face causal LM (CPU or CUDA).

Accepts an HF model directory, a hub id, a `.gguf` file or an already-built (model, tokenizer) pair
(loading: `ttc_gym.engines.loading`). How `generate` works:
- prompts are tokenized without added special tokens when they already start with the BOS text
  (chat-template output); the tokenizer is never mutated (`encode`);
- the rows (prompts x samples, chunks of at most `max_batch_size`) are decoded by the static loop
  (`ttc_gym.engines.static_decoding.StaticDecoder`, default for Llama-family models) or by the
  transformers loop (`ttc_gym.engines.decoding.KVDecoder`, `decode_loop="hf"`): on both, each prompt
  prefilled once from the longest stored prefix, its samples sharing its keys and values, each row
  drawing from its own random numbers (`ttc_gym.engines.sampling`), so prompts sampled together give
  the texts each gives alone with its seed;
- the final text is cut before the earliest stop (`ttc_gym.engines.base.find_stop`) and
  `num_tokens` counts tokens up to and including the one that completed it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from ttc_gym.engines.base import (
    Completion, SamplingConfig, chat_prompt, check_generate_args, find_stop, tokens_to_stop,
)
from ttc_gym.engines.decoding import KVDecoder
from ttc_gym.engines.static_decoding import StaticDecoder
from ttc_gym.engines.kv_cache import PrefixStore
from ttc_gym.engines.loading import eos_token_ids, load_model
from ttc_gym.engines.sampling import SAMPLER_VERSIONS, row_seeds
from ttc_gym.engines.small_rows import applies, applies_on, small_row_linears
from ttc_gym.validation import check_int, unknown_name_error

DECODE_LOOPS = ("static", "hf")
#: `decode_loop="auto"` runs the static loop on a CPU, and elsewhere (a GPU) on models up to this
#: hidden size; the transformers loop otherwise. Measured on a quiet 2-core CPU (notes of issue 28,
#: `examples/benchmarks/bench_engine.py`, two runs in two sessions): on SmolLM2-135M the static loop
#: was faster for the policy (1.25x / 1.58x at 1 env, 1.23x / 1.32x at 8 envs) and the prover
#: (1.04x / 1.16x, 1.28x / 1.24x), and the README's main job took 78 / 91 s against 90 / 99 s (two
#: alternated pairs); on the micro-reasoner (hidden 128) it is 1.4-3x faster (16x with the compiled
#: step). An earlier reading of 0.3-0.7x at 64 rows was taken at load 5-10. On a GPU the static loop
#: has not been measured: larger models keep transformers' loop there.
STATIC_AUTO_MAX_HIDDEN = 256

# A letter that starts a new token after whitespace (see `TransformersEngine.encode`).
_PROBE = "A"


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
            `nn.Linear` layers get an instance-level forward during `generate`). False turns it off;
            on any other device type (CUDA) it is off whatever this says (`small_rows_active`).
            On the static loop the few-row form is applied to the model's own weights by the
            forward itself (`ttc_gym.engines.llama_forward`; no module is patched).
        decode_loop: "auto" (default): "static" on a CPU, and on other devices for models of hidden
            size <= STATIC_AUTO_MAX_HIDDEN (where it was measured faster), else "hf". "static": `ttc_gym.engines.static_decoding`, a hand-written forward
            for Llama-family models with preallocated key/value buffers, one forward per step for
            every row, sampling on tensors (sampler version 2: the same distributions as "hf",
            other texts for the same seed). "hf": `ttc_gym.engines.decoding`, transformers' own
            forward (the loop before issue 28, sampler version 1). A model the static loop cannot
            run (`static_unsupported` says why) uses "hf". Settable later (`decode_loop`).
        compiled_step: on the static loop, run each decoding step with the step compiled from C
            (`ttc_gym.engines.compiled_step`: small float32 models on a CPU, built on first use with
            the machine's C compiler) instead of the torch forward; same tokens up to float rounding
            of the logits. Where it does not apply, or False, the torch forward runs;
            `compiled_step_reason` says why. For bigger float32 models on a CPU it means the torch
            forward with the compiled few-row kernel (`ttc_gym.engines.rows_linear`) for products of
            3-8 rows; False turns that off too. Settable later (`compiled_step`).

    `generate(prompts, sampling, seed=...)` takes one seed for the call or one seed per prompt
    (see `ttc_gym.engines.base.Engine.generate`); `per_prompt_seeds` is True.

    It is a `TrainableEngine`: `model`, `tokenizer`, `encode`, `load_weights` and
    `reset_prefix_cache` are what a trainer uses (it may also update `model` in place: the prefix
    store notices in-place updates and replaced parameters and drops itself; call
    `reset_prefix_cache()` after any other change, e.g. toggling adapters). `device` is public too,
    and `decoder`, the `KVDecoder` that runs the model (`ttc_gym.engines.decoding`).
    `stats` counts prompt tokens encoded, prompt tokens reused from the store, tokens decoded
    (rows x steps) and decoding forwards (steps); `prefill_chunk` (2048) bounds the prompt tokens
    encoded in one forward; `shared_prefix` says whether shared-prefix decoding is in use. `generate`
    is not thread-safe (during decoding it routes the model's attention through its own function). CPU speed note:
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
        decode_loop: str = "auto",
        compiled_step: bool = True,
    ):
        self.max_batch_size = check_int("max_batch_size", max_batch_size, minimum=1)
        prefix_cache_bytes = check_int("prefix_cache_bytes", prefix_cache_bytes, minimum=0)
        if not isinstance(shared_prefix, bool):
            raise TypeError(f"shared_prefix must be a bool, got {shared_prefix!r}.")
        if not isinstance(small_row_matmul, bool):
            raise TypeError(f"small_row_matmul must be a bool, got {small_row_matmul!r}.")
        if not isinstance(compiled_step, bool):
            raise TypeError(f"compiled_step must be a bool, got {compiled_step!r}.")
        self.small_row_matmul = small_row_matmul
        self.device = torch.device(device)
        model, self.tokenizer, default_name = load_model(
            model, gguf_file=gguf_file, device=self.device, dtype=dtype, tokenizer=tokenizer
        )
        self.name = name if name is not None else f"transformers:{default_name}"
        self.eos_token_ids = eos_token_ids(model, self.tokenizer)
        if not self.eos_token_ids:
            raise ValueError(
                f"{self.name}: neither the tokenizer nor the model's generation config names an "
                "end-of-sequence token."
            )
        self.decoder = KVDecoder(model, self.tokenizer, self.device, self.eos_token_ids,
                                 prefix_cache_bytes=prefix_cache_bytes, shared_prefix=shared_prefix, name=self.name)
        self._shared_prefix_wanted = shared_prefix
        self.static_decoder = StaticDecoder(model, self.tokenizer, self.eos_token_ids,
                                            prefix_store=self.decoder.prefix_store, stats=self.decoder.stats,
                                            small_rows=small_row_matmul, compiled=compiled_step)
        # Why the static loop cannot run this model (then the transformers loop does), or None.
        self.static_unsupported = StaticDecoder.unsupported_reason(model)
        self._decode_loop = "hf"
        if decode_loop == "auto":
            hidden = getattr(getattr(model, "config", None), "hidden_size", None)
            small = isinstance(hidden, int) and hidden <= STATIC_AUTO_MAX_HIDDEN
            decode_loop = "static" if self.device.type == "cpu" or small else "hf"
        self.decode_loop = decode_loop

    @property
    def decode_loop(self) -> str:
        """The decoding loop `generate` uses: "static" (`ttc_gym.engines.static_decoding`, the default on
        a CPU and for small models) or "hf" (`ttc_gym.engines.decoding`, transformers' forward; the loop
        before issue 28, the default for models above STATIC_AUTO_MAX_HIDDEN off the CPU). Asking
        for "static" on a model it cannot run (`static_unsupported` says why) gives "hf". Setting it
        empties the prefix store, so that each loop only ever reuses keys/values it computed."""
        return self._decode_loop

    @decode_loop.setter
    def decode_loop(self, value: str) -> None:
        if value not in DECODE_LOOPS:
            raise unknown_name_error("decode_loop", value, DECODE_LOOPS)
        if value == "static" and self.static_unsupported is not None:
            value = "hf"
        if value != self._decode_loop:
            self.prefix_store.clear()
        self._decode_loop = value

    @property
    def compiled_step(self) -> bool:
        """Whether the static loop may run the compiled step (`compiled_step_reason`: whether it does)."""
        return self.static_decoder.compiled

    @compiled_step.setter
    def compiled_step(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"compiled_step must be a bool, got {value!r}.")
        self.static_decoder.compiled = value

    @property
    def compiled_step_reason(self) -> str | None:
        """None when `generate` decodes with the compiled step (`ttc_gym.engines.compiled_step`),
        else why it does not (the transformers loop, a model it cannot run, no C compiler, ...)."""
        if self._decode_loop != "static":
            return f"decode_loop is {self._decode_loop!r}: the compiled step belongs to the static loop"
        reason = self.static_decoder.runnable()
        return f"the static loop cannot run this model: {reason}" if reason else self.static_decoder.compiled_reason()

    @property
    def sampler_version(self) -> int:
        """What a seed draws: 2 on the static loop, 1 on the transformers loop (the same
        distributions, other texts for the same seed; `ttc_gym.engines.sampling.SAMPLER_VERSIONS`)."""
        return SAMPLER_VERSIONS[self._decode_loop]

    @property
    def model(self) -> Any:
        """The generating model (a trainer may update it in place)."""
        return self.decoder.model

    @property
    def stats(self) -> dict[str, int]:
        """Work done so far: prefill_tokens, reused_tokens, decode_tokens, decode_steps (see `KVDecoder`)."""
        return self.decoder.stats

    @property
    def prefix_store(self) -> PrefixStore:
        """The stored prompt prefixes (keys and values) later prompts reuse."""
        return self.decoder.prefix_store

    @property
    def prefill_chunk(self) -> int:
        """Most prompt tokens encoded in one forward."""
        return self.decoder.prefill_chunk

    @prefill_chunk.setter
    def prefill_chunk(self, value: int) -> None:
        self.decoder.prefill_chunk = check_int("prefill_chunk", value, minimum=1)

    @property
    def shared_prefix(self) -> bool | None:
        """Whether the samples of a prompt decode against one shared copy of its prefix. On the static
        loop: whether `shared_prefix` was asked for. On the transformers loop: True once it has worked
        on this model, False when it is off or the model does not support it, None before the first
        `generate`."""
        if self._decode_loop == "static":
            return self._shared_prefix_wanted
        return self.decoder.shared_prefix

    @property
    def small_rows_active(self) -> bool:
        """Whether `generate` reroutes few-row linear layers (`ttc_gym.engines.small_rows`): only with
        `small_row_matmul` on, the engine's device type "cpu" and a float32 model there. On a CUDA
        device it is always False: the GPU path runs the model's own layers, with no CPU-only code."""
        param = next(self.model.parameters(), None)
        return (self.small_row_matmul and param is not None and applies_on(self.device, param.dtype)
                and applies(self.model))

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
        seeds = row_seeds(seed, len(prompts), sampling.n)
        if not prompts:
            return []

        encoded = [self.encode(p) for p in prompts]
        self._check_context(encoded, sampling.max_new_tokens)
        # Greedy decoding gives every sample the same text: decode each prompt once.
        samples = 1 if sampling.greedy else sampling.n
        # Rows are (prompt index, sample index), prompt-major.
        rows = [(i, j) for i in range(len(prompts)) for j in range(samples)]
        results: list[list[Completion]] = [[] for _ in prompts]
        # The static loop, unless the model changed into one it cannot run (e.g. adapters injected).
        static = self._decode_loop == "static" and self.static_decoder.runnable() is None
        few_rows = small_row_linears(self.model) if self.small_rows_active and not static else None
        with torch.inference_mode(), few_rows or contextlib.nullcontext():
            self.decoder.check_weights()
            if static:
                self.static_decoder.small_rows = self.small_row_matmul
                self.static_decoder.prefill_chunk = self.decoder.prefill_chunk
            for start in range(0, len(rows), self.max_batch_size):
                chunk = rows[start : start + self.max_batch_size]
                chunk_ids, chunk_seeds = [encoded[i] for i, _ in chunk], [seeds[i][j] for i, j in chunk]
                if static:
                    tokens = self.static_decoder.decode(chunk_ids, chunk_seeds, sampling, self._shared_prefix_wanted)
                else:
                    tokens = self.decoder.decode(chunk_ids, chunk_seeds, sampling)
                for (i, _), row_tokens in zip(chunk, tokens):
                    results[i].append(self._finish(row_tokens, sampling))
        if samples != sampling.n:
            results = [row * sampling.n for row in results]
        return results

    # -- what a trainer uses (TrainableEngine) ------------------------------------------------

    def encode(self, prompt: str) -> list[int]:
        """The token ids `generate` conditions on for `prompt`: what a trainer must score a
        completion after.

        A prompt that ends in whitespace is tokenized as that whitespace is tokenized when text
        follows it (e.g. a paragraph break as two newline tokens rather than one): that is how the
        text continues, so the model conditions on what it saw in training, and a trace's next
        prompt (the same text and more) starts with the same tokens and reuses the stored prefix.
        """
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}.")
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
            ids = [start if start is not None else self.eos_token_ids[0]]
        return list(ids)

    def load_weights(self, weights: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
        """Copy new weights (a state dict or (name, tensor) pairs, named as in `model.state_dict()`,
        i.e. the Hugging Face checkpoint) into the model in place, then `reset_prefix_cache()`.
        Every name must be one of the model's and every shape must match; nothing is copied unless
        all do. Returns "in-process" (the route, as `VLLMEngine.load_weights` names its own)."""
        items = list(weights.items()) if isinstance(weights, Mapping) else list(weights)
        targets = self.model.state_dict(keep_vars=True)
        checked = []
        for k, item in enumerate(items):
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise TypeError(f"weights[{k}] must be a (name, tensor) pair, got {item!r:.80}.")
            name, value = item
            if name not in targets:
                raise ValueError(f"{self.name}: weights[{k}] is named {name!r}, which the model has no weight of (its "
                                 f"names look like {next(iter(targets))!r}).")
            value = torch.as_tensor(value)
            if tuple(value.shape) != tuple(targets[name].shape):
                raise ValueError(f"{self.name}: weight {name!r} has shape {tuple(targets[name].shape)}, got "
                                 f"{tuple(value.shape)}.")
            checked.append((targets[name], value))
        with torch.no_grad():
            for target, value in checked:
                target.copy_(value)
        self.reset_prefix_cache()
        return "in-process"

    def reset_prefix_cache(self) -> None:
        """Forget every stored prompt prefix (needed after changing the weights other than in place)."""
        self.prefix_store.clear()

    # -- internals ---------------------------------------------------------------------------

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

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _finish(self, tokens: list[int], sampling: SamplingConfig) -> Completion:
        """The `Completion` of one row's sampled tokens (cut at EOS or the earliest stop)."""
        eos_pos = next((k for k, t in enumerate(tokens) if t in self.eos_token_ids), None)
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
