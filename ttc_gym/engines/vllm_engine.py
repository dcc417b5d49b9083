"""`VLLMEngine`: the `Engine` interface over vLLM's offline `LLM` (needs a GPU and `ttc-gym[vllm]`).

    from ttc_gym.engines import make_engine
    engine = make_engine("vllm:Qwen/Qwen2.5-Math-1.5B-Instruct", max_model_len=4096)

How `generate` works:
- every prompt of a call goes to vLLM in ONE `LLM.generate` (vLLM batches and schedules them), as
  token ids: the prompt is tokenized here, without added special tokens when it already starts
  with the BOS text (chat-template output), as `TransformersEngine` does;
- each prompt gets its own `SamplingParams(n, temperature, top_p, max_tokens, stop, seed)`; its seed
  is derived from the call's seed and the prompt's position, so the same prompts, config and seed
  give the same texts (vLLM's per-request generators; global RNG state is never touched). A
  sequence of seeds, one per prompt, is accepted too (`per_prompt_seeds`): prompt i then gets what
  it gets alone with seed[i], whatever it is batched with, so `generate_per_prompt` (the prover's
  `estimate_many`, `LLMAgent.write_batch`) sends a whole batch in ONE `LLM.generate` (vLLM takes a list
  of `SamplingParams`, one per prompt; with n > 1 it seeds sample j of a request with seed + j). On a
  GPU "what it gets alone" holds up to the float rounding of batched kernels (vLLM's default kernels
  are not batch-invariant): a token whose probability a rounding tips can differ;
  `max_tokens` is always set (vLLM's default is 16);
- greedy sampling (temperature 0) decodes each prompt once and repeats the completion `n` times;
- vLLM's `CompletionOutput` (`text`, `token_ids`, `finish_reason`, `stop_reason`) becomes a
  `Completion`: the text is cut before the earliest stop (`ttc_gym.engines.base.find_stop`),
  `stop_reason` is the matched stop string (an EOS or stop-token id stop gives None), `num_tokens`
  is `len(token_ids)` (the token that completed a stop string and the EOS token included). vLLM has
  no closing-brace rule: with `stop_at_closing_brace` it decodes on to its other stops, and the
  text is cut here, `num_tokens` then counting the tokens up to the brace.

It is a `TrainableEngine` (`ttc_gym.engines.base`), with the method names `TransformersEngine` has:
`encode(prompt)` gives the ids `generate` sends; `load_weights(named_tensors)` loads new weights into
the served model — through vLLM's own weight-transfer API (IPC backend) when the `LLM` was built with
it (`weight_transfer`, `ttc_gym/engines/vllm_weight_transfer.py`), else the model's `load_weights` —
and then `reset_prefix_cache()` drops vLLM's prefix cache, whose KV entries were computed with the old
weights; `model` is the served module when it lives in this process (else None).

`llm=` takes an already-built `vllm.LLM` (or any object with its `generate` / `get_tokenizer`), which is
how tests run this engine on a CPU against recorded vLLM output objects.
"""

from __future__ import annotations

import numbers
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from ttc_gym.engines.base import (
    CLOSING_BRACE, Completion, SamplingConfig, chat_prompt, check_generate_args, find_stop, tokens_to_stop,
)
from ttc_gym.engines import vllm_weight_transfer
from ttc_gym.engines.model_source import check_model_source
from ttc_gym.seeding import text_seed
from ttc_gym.validation import check_float, check_int

VLLM_PURPOSE = "the vLLM engine (engine='vllm:<model>')"
WEIGHT_TRANSFERS = ("auto", "ipc", None)

# Where an in-process vLLM keeps its model (`model.load_weights` lives there), newest layout first:
# the V0 engine and the V1 engine without multiprocessing (VLLM_ENABLE_V1_MULTIPROCESSING=0).
_MODEL_PATHS = (
    ("llm_engine", "model_executor", "driver_worker", "worker", "model_runner", "model"),
    ("llm_engine", "model_executor", "driver_worker", "model_runner", "model"),
    ("llm_engine", "engine_core", "engine_core", "model_executor", "driver_worker", "worker", "model_runner", "model"),
)


@dataclass(frozen=True)
class SamplingParamsSpec:
    """What `VLLMEngine` asks vLLM for, field for field as `vllm.SamplingParams` names them.

    Used in place of `vllm.SamplingParams` only when vLLM is not installed and an `llm` object was
    given (tests on a CPU); with vLLM installed the real class is built with the same keywords.
    """

    n: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: list
    seed: int | None


def request_seed(seed: int, index: int) -> int:
    """The seed of request `index` of a call made with `seed`: 62 bits, stable across processes.

    62 bits leave room for vLLM to add a sample's index to it (n > 1) without overflowing 64 bits.
    """
    return text_seed(f"vllm-request:{seed}:{index}", bits=62)


class _LoadWeights:
    """`model -> None`: loads `weights` into a vLLM model (sent to each worker by `LLM.apply_model`)."""

    def __init__(self, weights: list[tuple[str, Any]]):
        self.weights = weights

    def __call__(self, model: Any) -> None:
        model.load_weights(weights=self.weights)
        return None  # never ship the loaded names (or tensors) back


def check_gpu() -> None:
    """Raise a RuntimeError naming the problem when vLLM has no accelerator to run on."""
    try:
        from vllm.platforms import current_platform
    except Exception:  # an older or unusual vLLM: fall back to torch's view
        current_platform = None
    if current_platform is not None:
        unspecified = type(current_platform).__name__ == "UnspecifiedPlatform" or getattr(
            current_platform, "device_type", None
        ) == ""
        if not unspecified:
            return
    else:
        import torch

        if torch.cuda.is_available():
            return
    raise RuntimeError(
        "The vLLM engine needs a GPU, and vLLM finds none on this machine (no CUDA device is visible to "
        "this process). vLLM's PyPI wheel runs on NVIDIA GPUs. On a CPU use engine='transformers:<model>' "
        "or the default engine (engine=None); on a GPU machine check CUDA_VISIBLE_DEVICES, `nvidia-smi`, "
        "and that torch was installed with CUDA (`python -c 'import torch; print(torch.cuda.is_available())'`)."
    )


class VLLMEngine:
    """An `Engine` backed by vLLM's offline `LLM` on one or more GPUs.

    Args:
        model: a Hugging Face model directory or hub id (e.g. "Qwen/Qwen2.5-Math-1.5B-Instruct").
            Optional when `llm` is given (then it only names the engine).
        seed: the `LLM`'s own seed (each request also gets its own seed, see `generate`).
        gpu_memory_utilization: fraction of the GPU's memory vLLM may take (weights + KV cache).
        enable_prefix_caching: reuse the KV cache of shared prompt prefixes (the prover's K samples
            and a growing trace share theirs): on by default.
        dtype: "auto" (the model's own), "bfloat16", "float16" or "float32".
        max_model_len: longest prompt + completion in tokens (None: the model's; lower it to fit a
            long-context model's KV cache on a small GPU).
        tensor_parallel_size: GPUs one model is split over.
        weight_transfer: how `load_weights` reaches vLLM's worker when the model is not in this process:
            "ipc" builds the `LLM` with `WeightTransferConfig(backend="ipc")` and sends weights through
            vLLM's weight-transfer API (CUDA IPC handles; one GPU); None uses `LLM.apply_model`;
            "auto" (default) is "ipc" when the engine builds the `LLM`, on one GPU, and the installed
            vLLM has `WeightTransferConfig`, else None. With `llm=` given, "ipc" says that `llm` was
            built with the IPC backend.
        llm: an already-built `vllm.LLM` (or an object with its `generate` and `get_tokenizer`);
            then nothing is built and no other `LLM` argument may be given.
        tokenizer: the tokenizer (default: `llm.get_tokenizer()`).
        sampling_params: the class (or factory) that builds a request's sampling parameters
            (default: `vllm.SamplingParams`; `SamplingParamsSpec` when vLLM is missing and `llm` is given).
        name: the engine's name (default "vllm:<model>").
        **llm_kwargs: any other `vllm.LLM` argument (`enforce_eager`, `quantization`, `max_num_seqs`, ...).

    Raises ImportError naming `pip install 'ttc-gym[vllm]'` when vLLM is missing, and RuntimeError
    when it finds no GPU. `generate` is not thread-safe (one `LLM` serves one caller at a time).
    """

    per_prompt_seeds = True  # generate accepts one seed per prompt (see ttc_gym.engines.base.Engine)

    def __init__(
        self,
        model: str | None = None,
        *,
        seed: int = 0,
        gpu_memory_utilization: float = 0.85,
        enable_prefix_caching: bool = True,
        dtype: str = "auto",
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        weight_transfer: str | None = "auto",
        llm: Any = None,
        tokenizer: Any = None,
        sampling_params: Callable[..., Any] | None = None,
        name: str | None = None,
        **llm_kwargs: Any,
    ):
        if model is not None and (not isinstance(model, str) or not model.strip()):
            raise TypeError(f"model must be a model directory or hub id (a non-empty string), got {model!r}.")
        self.seed = check_int("seed", seed, minimum=0)
        self.tensor_parallel_size = check_int("tensor_parallel_size", tensor_parallel_size, minimum=1)
        self.enable_prefix_caching = bool(enable_prefix_caching)
        if weight_transfer not in WEIGHT_TRANSFERS:
            raise ValueError(f"weight_transfer must be one of {WEIGHT_TRANSFERS}, got {weight_transfer!r}.")
        if weight_transfer == "ipc" and self.tensor_parallel_size > 1:
            raise ValueError(
                "weight_transfer='ipc' sends CUDA IPC handles of one GPU; with tensor_parallel_size > 1 use "
                "weight_transfer=None (weights go through LLM.apply_model)."
            )
        # True once the LLM takes weights through vLLM's weight-transfer API (IPC backend).
        self.weight_transfer = weight_transfer == "ipc"
        if llm is None:
            if model is None:
                raise TypeError("VLLMEngine needs a model (a directory or hub id) or an already-built llm=.")
            check_float("gpu_memory_utilization", gpu_memory_utilization, minimum=0.0, maximum=1.0)
            if gpu_memory_utilization <= 0.0:
                raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}.")
            if max_model_len is not None:
                check_int("max_model_len", max_model_len, minimum=1)
            if weight_transfer == "auto":
                self.weight_transfer = self.tensor_parallel_size == 1
            llm, self.weight_transfer = self._build_llm(
                model, self.weight_transfer, weight_transfer == "ipc", seed=self.seed,
                gpu_memory_utilization=float(gpu_memory_utilization),
                enable_prefix_caching=self.enable_prefix_caching, dtype=dtype, max_model_len=max_model_len,
                tensor_parallel_size=self.tensor_parallel_size, **llm_kwargs,
            )
        else:
            if llm_kwargs:
                raise TypeError(
                    f"VLLMEngine got an llm object and vllm.LLM arguments {sorted(llm_kwargs)}; those only "
                    "apply when the engine builds the LLM itself."
                )
            missing = [m for m in ("generate", "get_tokenizer") if not callable(getattr(llm, m, None))]
            if missing and not (missing == ["get_tokenizer"] and tokenizer is not None):
                raise TypeError(
                    f"llm must be a vllm.LLM (or an object with its methods), but {type(llm).__name__} has no "
                    f"{' or '.join(missing)}()."
                )
            lacking = [m for m in ("init_weight_transfer_engine", "update_weights") if not callable(getattr(llm, m, None))]
            if self.weight_transfer and lacking:
                raise TypeError(
                    f"weight_transfer='ipc' needs vLLM's weight-transfer API on llm, but {type(llm).__name__} has no "
                    f"{' or '.join(lacking)}(); use weight_transfer=None."
                )
        self.llm = llm
        self._transfer_initialized = False
        self.tokenizer = tokenizer if tokenizer is not None else llm.get_tokenizer()
        self._make_params = sampling_params if sampling_params is not None else _default_sampling_params()
        self.name = name if name is not None else f"vllm:{model or type(llm).__name__}"
        # How many times `load_weights` changed the served weights: what keys a prover's memo
        # (`ttc_gym.llm_prover.engine_weights_version`), since a model in vLLM's own process shows us
        # no parameters to watch.
        self.weights_version = 0

    @staticmethod
    def _build_llm(model: str, transfer: bool, required: bool, **kwargs: Any) -> tuple[Any, bool]:
        """(the `vllm.LLM`, whether it takes weights through the IPC weight-transfer API)."""
        from ttc_gym.optional import require

        vllm = require("vllm", extra="vllm", purpose=VLLM_PURPOSE)
        check_gpu()
        check_model_source(model)  # a missing path or an uncached hub id offline: one line, at once
        if kwargs.get("max_model_len") is None:
            kwargs.pop("max_model_len", None)
        if transfer and not vllm_weight_transfer.has_weight_transfer(vllm.LLM):
            if required:
                raise RuntimeError(
                    f"weight_transfer='ipc' needs vLLM's weight-transfer API (vllm.config.WeightTransferConfig, "
                    f"LLM.update_weights), which vLLM {getattr(vllm, '__version__', '?')} does not have; use "
                    "weight_transfer=None or 'auto'."
                )
            transfer = False
        if transfer:
            kwargs["weight_transfer_config"] = vllm_weight_transfer.ipc_config()
        try:
            return vllm.LLM(model=model, **kwargs), transfer
        except RuntimeError as err:
            text = str(err).lower()
            if "device" in text and ("infer" in text or "no cuda" in text or "not available" in text):
                raise RuntimeError(
                    f"vLLM could not start on this machine's devices ({err}). The vLLM engine needs a GPU; "
                    "on a CPU use engine='transformers:<model>'."
                ) from err
            raise

    # -- Engine interface ------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}.")
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def format_chat(self, user: str, assistant_prefix: str = "", system: str | None = None) -> str:
        return chat_prompt(self.tokenizer, user, assistant_prefix, system)

    def generate(
        self, prompts: Sequence[str], sampling: SamplingConfig, *, seed: int | Sequence[int] | None = None
    ) -> list[list[Completion]]:
        prompts = check_generate_args(prompts, sampling)
        if seed is None:
            seed = secrets.randbits(63)
        if isinstance(seed, (str, bytes)) or not hasattr(seed, "__len__"):
            seed = check_int("seed", seed, minimum=0)
        else:
            seed = [check_int(f"seed[{i}]", s, minimum=0) for i, s in enumerate(seed)]
            if len(seed) != len(prompts):
                raise ValueError(f"seed must be an integer or one seed per prompt, got {len(seed)} for "
                                 f"{len(prompts)} prompts.")
        if not prompts:
            return []

        samples = 1 if sampling.greedy else sampling.n  # greedy: every sample is the same text
        requests = self.build_requests(prompts, sampling, seed)
        outputs = list(self.llm.generate(
            [{"prompt_token_ids": self.encode(p)} for p in prompts], sampling_params=requests, use_tqdm=False,
        ))
        if len(outputs) != len(prompts):
            raise RuntimeError(f"{self.name}: vLLM returned {len(outputs)} outputs for {len(prompts)} prompts.")
        results = []
        for i, output in enumerate(outputs):
            completions = sorted(output.outputs, key=lambda c: c.index)
            if len(completions) != samples:
                raise RuntimeError(
                    f"{self.name}: vLLM returned {len(completions)} completions for prompt {i}, expected {samples}."
                )
            row = [self.parse_completion(c, sampling) for c in completions]
            results.append(row * sampling.n if samples != sampling.n else row)
        return results

    # -- request building and result parsing (public: tested against vLLM's documented shapes) ----

    def build_requests(
        self, prompts: Sequence[str], sampling: SamplingConfig, seed: int | Sequence[int]
    ) -> list[Any]:
        """One sampling-parameters object per prompt: request i is seeded with `request_seed(seed, i)`,
        or with `request_seed(seed[i], 0)` for one seed per prompt (what prompt i gets alone)."""
        if isinstance(seed, numbers.Integral):
            seeds = [request_seed(int(seed), i) for i in range(len(prompts))]
        else:
            seeds = [request_seed(int(s), 0) for s in seed]
        greedy = sampling.greedy
        return [
            self._make_params(
                n=1 if greedy else sampling.n,
                temperature=sampling.temperature,
                top_p=1.0 if greedy else sampling.top_p,
                max_tokens=sampling.max_new_tokens,  # always: vLLM's default is 16
                stop=list(sampling.stop),
                seed=seeds[i],
            )
            for i in range(len(prompts))
        ]

    def parse_completion(self, output: Any, sampling: SamplingConfig) -> Completion:
        """A `Completion` from a vLLM `CompletionOutput` (`text`, `token_ids`, `finish_reason`, `stop_reason`)."""
        reason = output.finish_reason
        if reason not in ("stop", "length"):
            raise RuntimeError(
                f"{self.name}: vLLM ended a completion with finish_reason={reason!r} (expected 'stop' or "
                "'length'); the request was aborted or is unfinished."
            )
        text = output.text
        num_tokens = min(len(output.token_ids), sampling.max_new_tokens)
        matched = output.stop_reason if isinstance(output.stop_reason, str) else None  # an int: a stop token id
        # vLLM cuts its text before the stop string it detected and reports it in stop_reason; put it back
        # and cut before the EARLIEST stop, as Completion requires (two stops completed by the same token,
        # or a text that still holds one, e.g. with include_stop_str_in_output).
        probe = text + matched if matched is not None and matched in sampling.stop else text
        found = find_stop(probe, sampling)
        ids = list(output.token_ids)
        if found is not None:
            index, stop = found
            if stop == CLOSING_BRACE and stop not in sampling.stop:
                # vLLM has no such stop rule and decoded on: count the tokens up to the brace only.
                num_tokens = tokens_to_stop(ids[:num_tokens], sampling, self._decode)
            return Completion(text=probe[:index], num_tokens=num_tokens, finish_reason="stop", stop_reason=stop,
                              token_ids=tuple(ids[:num_tokens]))
        return Completion(text=text, num_tokens=num_tokens, finish_reason=reason, token_ids=tuple(ids[:num_tokens]))

    # -- weight sync ------------------------------------------------------------------------------

    def load_weights(self, weights: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
        """Load new weights (a state dict or (name, tensor) pairs, names as in the HF checkpoint) into
        the served model, then reset the prefix cache. Returns the route taken:

        - "in-process": the model lives in this process (vLLM's V0 engine, or V1 with
          VLLM_ENABLE_V1_MULTIPROCESSING=0, one GPU): `...model_runner.model.load_weights(weights)`;
        - "weight-transfer": the model lives in vLLM's engine process and the `LLM` was built with the IPC
          weight-transfer backend (`weight_transfer`): vLLM's own RL API — `update_weights` with CUDA IPC
          handles of the tensors, moved to this process's current GPU
          (`ttc_gym/engines/vllm_weight_transfer.py`); the worker unpickles the handles only with
          VLLM_ALLOW_INSECURE_SERIALIZATION=1;
        - "apply_model": otherwise (tensor parallelism, an `LLM` without the weight-transfer backend):
          `LLM.apply_model` runs the load in every worker. vLLM V1 only sends a function to its workers
          with VLLM_ALLOW_INSECURE_SERIALIZATION=1, and it pickles the tensors: fine for small models.

        In-process comes first: the weight-transfer API would round-trip this process's own CUDA IPC
        handles, which CUDA does not open in the process that made them, and it ends in the same
        `model.load_weights` call.
        """
        items = list(weights.items()) if isinstance(weights, Mapping) else list(weights)
        for k, item in enumerate(items):
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise TypeError(f"weights[{k}] must be a (name, tensor) pair, got {item!r:.80}.")
        if self.enable_prefix_caching and not callable(getattr(self.llm, "reset_prefix_cache", None)):
            raise RuntimeError(
                f"{self.name}: this vLLM has no LLM.reset_prefix_cache(), so cached KV of the old weights would be "
                "reused after a weight update. Upgrade vLLM or build the engine with enable_prefix_caching=False."
            )
        model = self.model if self.tensor_parallel_size == 1 else None
        if model is not None:
            model.load_weights(weights=items)
            route = "in-process"
        elif self.weight_transfer:
            self._send_through_weight_transfer(items)
            route = "weight-transfer"
        elif callable(getattr(self.llm, "apply_model", None)):
            try:
                self.llm.apply_model(_LoadWeights(items))
            except Exception as err:
                raise RuntimeError(
                    f"{self.name}: loading weights through LLM.apply_model failed: {err}. With vLLM's V1 engine "
                    "in its own process, set VLLM_ALLOW_INSECURE_SERIALIZATION=1 before building the engine (to "
                    "send the load to the workers), or VLLM_ENABLE_V1_MULTIPROCESSING=0 (to keep a one-GPU model "
                    "in this process)."
                ) from err
            route = "apply_model"
        else:
            raise RuntimeError(
                f"{self.name}: cannot reach the served model to load weights: none of "
                f"{', '.join('.'.join(p) for p in _MODEL_PATHS)} exists on this vLLM, and it has no "
                "LLM.apply_model. Use a vLLM with LLM.apply_model (>= 0.8), or VLLM_ENABLE_V1_MULTIPROCESSING=0."
            )
        self.reset_prefix_cache()
        self.weights_version += 1
        return route

    def _send_through_weight_transfer(self, items: list[tuple[str, Any]]) -> list[str]:
        """vLLM's weight-update protocol with one IPC message; returns the `LLM` methods called."""
        moved, uuid, reduce = self._to_gpu(items)
        info = vllm_weight_transfer.ipc_update_info(moved, uuid, reduce)
        try:
            called = vllm_weight_transfer.send_ipc(self.llm, info, self._transfer_initialized)
        except Exception as err:
            raise RuntimeError(
                f"{self.name}: vLLM's weight transfer (IPC backend) failed: {err}. Its worker unpickles the IPC "
                "handles only with VLLM_ALLOW_INSECURE_SERIALIZATION=1 set before the engine is built, and the "
                "weights must be on the GPU vLLM runs on; or build the engine with weight_transfer=None "
                "(LLM.apply_model)."
            ) from err
        self._transfer_initialized = True
        del moved  # the worker has copied them into its own parameters: the IPC'd tensors may go
        return called

    # Moves the weights to this process's GPU (CUDA only); a seam for the dispatch tests on a CPU.
    _to_gpu = staticmethod(vllm_weight_transfer.to_gpu)

    @property
    def model(self) -> Any | None:
        """The served `nn.Module` when it lives in this process, else None (then a trainer keeps its
        own copy of the weights and syncs them with `load_weights`)."""
        for path in _MODEL_PATHS:
            obj = self.llm
            for attr in path:
                obj = getattr(obj, attr, None)
                if obj is None:
                    break
            if obj is not None and callable(getattr(obj, "load_weights", None)):
                return obj
        return None

    def reset_prefix_cache(self) -> None:
        """Drop the cached KV of shared prefixes (stale after a weight update)."""
        reset = getattr(self.llm, "reset_prefix_cache", None)
        if not callable(reset):
            return
        if reset() is False:  # vLLM returns False when requests are still running
            raise RuntimeError(f"{self.name}: vLLM could not reset its prefix cache (requests still running?).")

    def encode(self, prompt: str) -> list[int]:
        """The token ids `generate` sends to vLLM for `prompt` (what a trainer scores a completion after)."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}.")
        bos = getattr(self.tokenizer, "bos_token", None)
        add_special = not (bos and prompt.startswith(bos))
        ids = list(self.tokenizer.encode(prompt, add_special_tokens=add_special))
        if not ids:  # vLLM rejects an empty prompt: condition on BOS (or EOS), as TransformersEngine does
            start = getattr(self.tokenizer, "bos_token_id", None)
            if start is None:
                start = getattr(self.tokenizer, "eos_token_id", None)
            if start is None:
                raise ValueError(f"{self.name}: an empty prompt, and the tokenizer has no BOS or EOS token to use.")
            ids = [int(start)]
        return ids

    # -- internals ---------------------------------------------------------------------------

    def _decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)


_SHARED: dict[tuple, VLLMEngine] = {}
_SHARED_LOCK = threading.Lock()


def shared_vllm_engine(model: str, **kwargs: Any) -> VLLMEngine:
    """The `VLLMEngine` of `model` and `kwargs` in this process, built on first use (`make_engine("vllm:...")`).

    A vLLM `LLM` takes most of its GPU's memory, so every env, prover and agent of a process that
    names the same model with the same arguments shares one engine (as the default engine is shared);
    a weight update through `load_weights` reaches all of them. Arguments that cannot be hashed (or
    an injected `llm`) build a new engine each time. `clear_shared_engines()` forgets them.
    """
    key: tuple | None = (model, tuple(sorted(kwargs.items())))
    try:
        hash(key)
    except TypeError:
        key = None
    if key is None or kwargs.get("llm") is not None:
        return VLLMEngine(model, **kwargs)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = VLLMEngine(model, **kwargs)
        return _SHARED[key]


def clear_shared_engines() -> None:
    """Forget the engines `shared_vllm_engine` built (they are freed once nothing else holds them)."""
    with _SHARED_LOCK:
        _SHARED.clear()


def _default_sampling_params() -> Callable[..., Any]:
    """`vllm.SamplingParams`, or `SamplingParamsSpec` when vLLM is not installed (an injected `llm`)."""
    from ttc_gym.optional import require

    try:
        return require("vllm", extra="vllm", purpose=VLLM_PURPOSE).SamplingParams
    except ImportError:
        return SamplingParamsSpec
