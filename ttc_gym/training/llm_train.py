"""LLM trainers on TTC-Math-v0: GRPO, MRT, STaR and MRT-STaR, with the env's own rewards.

    ttc-gym train --env TTC-Math-v0 --algo mrt --iterations 2 --problems-per-iter 2 --group-size 2 \\
        --max-episodes 2 --out runs/mrt_cpu                 # default model, CPU, a few minutes
    ttc-gym bench --agents llm-checkpoint:runs/mrt_cpu/checkpoint-2 --problems 2 --budgets 2
    python -m ttc_gym.training.llm_train --help              # every option

The same with a bigger model on a GPU (the prover is the policy itself, as in MRT's online RL; give
--prover-model to measure J with a separate frozen model instead, e.g. the small default one; bf16
weights, AdamW states in bf16 too — use --lora-rank 16 to train adapters only):

    ttc-gym train --env TTC-Math-v0 --algo mrt --model transformers:Qwen/Qwen2.5-Math-1.5B-Instruct \\
        --device cuda --dtype bfloat16 \\
        --iterations 200 --problems-per-iter 8 --group-size 8 --micro-batch-size 8 \\
        --max-episodes 8 --max-episode-tokens 256 --lr 1e-6 --kl-coef 0.01 --save-every 25 \\
        --source hf:<dataset> --out runs/mrt_qwen15

Read top to bottom. Each iteration:
1. (`llm_rollouts.py`) draws `problems_per_iter` problems from its own problem source, with a generator seeded by
   (`seed`, iteration), and gives each `group_size` rollouts with their own seeds (`plan_iteration`);
   rolls them all out together on the vectorized TTC-Math-v0, one sub-env per rollout with
   autoreset disabled (`collect_batch`: reset / `agent.write_batch` / `envs.step` until every
   rollout is done). The policy is an `LLMAgent` over a `TransformersEngine` whose `.model` is the
   trainable torch model; each episode comes back with its prompt and token ids
   (`ttc_gym.agents.llm.Episode`), its reward, progress, outcome and J from the env's step. The
   env's engine is the policy's: when the budget runs out, the policy's own forced answer is graded.
   The env's prover measures J and progress (docs/formulation.md §2): by default (`--prover policy`,
   MRT's online setting) the policy itself with its current weights, forced to stop — the prover's
   memo is keyed by the engine's weights version and the engine drops its prefix cache when the
   weights change, so every J after an update is measured anew; with `--prover frozen` /
   `--prover-model` a separate, frozen engine. With `--engine vllm` (or `vllm:<model>`) a vLLM
   engine samples the rollouts instead (and, with `--prover policy`, measures J): the trained model
   stays the transformers one, and `sync_weights` pushes its weights into vLLM (`load_weights`, which
   resets vLLM's prefix cache) before the first iteration and after every update.
2. (the shared loop, `loop.py`; losses in `llm_loss.py`) (policy-gradient algorithms,
   `algorithms.RL_ALGOS`) computes advantages with
   `algorithms.advantages` (grpo: outcome-only, group-normalized; mrt: + alpha * each episode's own
   progress; docs/formulation.md §4 gives every name's formula), the token log-probabilities of
   every episode's sampled tokens given the prompt's tokens as the engine encoded them (`episode_logprobs`), optionally
   those of the initial model for the k3 KL term, and takes one AdamW step on
   `algorithms.policy_gradient_loss` with gradients accumulated over micro-batches (weighted so
   that the result is the token mean over the whole batch);
   (SFT algorithms, `algorithms.SFT_ALGOS`) keeps the rollouts `algorithms.select` accepts and takes
   `sft_steps` steps of `algorithms.sft_loss` on them.
The model is trained in place, so the engine samples with the new weights at the next iteration
(eval mode for sampling, train mode for the loss). The models: `llm_policy.py`. Checkpoints
(`llm_checkpoint.py`) `out/checkpoint-N/` hold the HF model
and tokenizer (loadable by `TransformersEngine(path)` and `ttc-gym bench --agents
llm-checkpoint:PATH`), `train_config.json` and `trainer_state.pt` (step, optimizer) for `--resume`.
Logs: `out/log.csv`, one row per iteration, and `--report-to` (`tracking`): the row and the
iteration's J curve to TensorBoard under `out/tensorboard/` (by default when it is installed) and/or
W&B (offline) under `out/wandb/`.
"""

from __future__ import annotations

import copy
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ttc_gym.problems import make_source
from ttc_gym.rewards import j_curve_from_progress
from ttc_gym.training import algorithms as alg
from ttc_gym.training import tracking
from ttc_gym.training.config_cli import parse_config
from ttc_gym.training.llm_checkpoint import CONFIG_FILE, find_checkpoints, load_checkpoint, save_checkpoint, trainer_extra
from ttc_gym.training.llm_config import LLMTrainConfig
from ttc_gym.training.llm_loss import accumulate, token_count
from ttc_gym.training.llm_policy import apply_lora, build_policy_engine, stale_copy, sync_weights, trained_weights
from ttc_gym.training.llm_branches import TracePrefixes, plan_branches
from ttc_gym.training.llm_rollouts import Rollout, collect_batch, make_envs, plan_iteration
from ttc_gym.training.loop import RunLog, all_failed_groups, branch_summary, run_iterations

LOG_FIELDS = (
    "step", "reward", "outcome", "progress", "cost", "J_0", "J_final", "episodes", "tokens", "loss", "kl",
    "entropy", "kept", "wall_s", "branches_continue", "branches_terminate", "prefix_episodes", "outcome_continue",
    "outcome_terminate", "all_failed_groups",
)


@dataclass
class TrainResult:
    engine: Any
    history: list[dict] = field(default_factory=list)
    step: int = 0
    checkpoints: list[str] = field(default_factory=list)
    config: LLMTrainConfig | None = None
    wall_s: float = 0.0


def train(
    config: LLMTrainConfig,
    *,
    policy_engine: Any = None,
    prover_engine: Any = None,
    sampling_engine: Any = None,
    ray_engine_factory: Callable[[], Any] | None = None,
    log: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train as `config` says. `policy_engine` (a TransformersEngine trained in place) replaces
    `config.model`; `prover_engine` replaces `config.prover_model` and needs `config.prover ==
    'frozen'` (tests pass tiny engines). `sampling_engine` (a `TrainableEngine`, e.g. a `VLLMEngine`)
    replaces `config.engine`: it samples the rollouts and gets the trained weights before the first
    iteration and after every update (`sync_weights`). With `config.prover == 'policy'` the env's
    prover runs on the engine that samples. With `config.ray_workers` the rollouts are collected by
    Ray actors (`llm_ray.RayRollouts`), each building its engine with `ray_engine_factory` (a picklable
    `() -> engine`; default: from the config), the weights broadcast after every update."""
    start = time.perf_counter()
    out = Path(config.out)
    existing = find_checkpoints(out)
    if existing and not config.resume:
        raise FileExistsError(f"{out} already holds checkpoints ({existing[-1][1].name}); pass --resume to "
                              f"continue, or choose another --out.")
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    report_to = "none" if config.report_to == "auto" and not config.tensorboard else config.report_to
    tracking.check_report_to(report_to)  # a missing tracking library fails before any model loads
    engines = Engines.build(config, policy_engine, prover_engine, sampling_engine)
    policy = Trainable(config, engines.policy.model)
    step = load_checkpoint(config, policy.trainable, engines.policy, policy.optimizer, existing[-1][1]) \
        if config.resume and existing else 0
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))
    parts = LLMParts(config, engines, policy, ray_engine_factory)
    if step:  # resumed: mrt's stale prefix writer as it was saved
        parts.restore_stale(trainer_extra(config, existing[-1][1]))
    result = TrainResult(engine=engines.policy, step=step, config=config, checkpoints=parts.checkpoints)
    try:
        reporter = tracking.make_reporter(report_to, out, run_name=out.name, config=asdict(config))
        with RunLog(out / "log.csv", LOG_FIELDS, _logged_rows(out, step), reporter=reporter) as run_log:
            result.step = run_iterations(config, parts, step=step, history=result.history, run_log=run_log, log=log)
    finally:
        parts.close()
    result.wall_s = time.perf_counter() - start
    return result


@dataclass
class Engines:
    """The engines of a run: `policy` (trained in place), `sampling` (a separate engine that samples
    the rollouts and is given the trained weights, e.g. vLLM; None: the policy samples itself) and
    `prover` (a frozen prover; None: the engine that samples is its own prover)."""

    policy: Any
    sampling: Any = None
    prover: Any = None

    @property
    def sampler(self) -> Any:
        return self.policy if self.sampling is None else self.sampling

    @classmethod
    def build(cls, config: LLMTrainConfig, policy: Any = None, prover: Any = None, sampling: Any = None) -> Engines:
        """The engines `config` names, the given ones in their place (checked: a frozen prover is
        neither the policy's engine nor the sampling one)."""
        from ttc_gym.engines.registry import make_engine

        if config.prover == "policy" and prover is not None:
            raise ValueError("train(prover_engine=...) gives a frozen prover, but config.prover is 'policy' (J from the "
                             "policy itself); set prover='frozen' to use it.")
        policy = policy if policy is not None else build_policy_engine(config)
        if sampling is None and config.engine != "transformers":
            sampling = make_engine("vllm:" + config.vllm_model, **config.engine_kwargs)
        if sampling is policy:
            sampling = None  # the trained model samples itself
        if config.prover == "frozen" and prover is None:
            prover = make_engine(config.prover_model) if config.prover_model.startswith("vllm:") else make_engine(
                None if config.prover_model == "default" else config.prover_model,
                device=config.prover_device or config.device)
        if prover is not None and (prover is policy or prover is sampling):
            raise ValueError("a frozen prover must not share the policy's engine (the policy is trained in place); "
                             "use prover='policy' to measure J with the policy.")
        return cls(policy=policy, sampling=sampling, prover=prover)


class Trainable:
    """What the optimizer trains: the model (or its LoRA adapters), the reference model of the KL
    term (the initial model: a frozen copy, or with LoRA the base model with adapters disabled),
    the AdamW optimizer and its step (gradient clipping)."""

    def __init__(self, config: LLMTrainConfig, model: Any):
        self.config, self.model = config, model
        self.trainable = apply_lora(config, model) if config.lora_rank else model
        self.frozen = None
        if config.kl_coef > 0 and not config.lora_rank:
            self.frozen = copy.deepcopy(model).eval().requires_grad_(False)
        self.params = [p for p in self.trainable.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)

    def reference(self):
        """A context manager yielding the reference model (None without a KL term)."""
        if self.config.kl_coef <= 0:
            return None
        if self.config.lora_rank:
            trainable = self.trainable

            class _Adapters:  # the initial model = the base model with the adapters disabled
                def __enter__(self):
                    self._ctx = trainable.disable_adapter()
                    self._ctx.__enter__()
                    return trainable

                def __exit__(self, *exc):
                    return self._ctx.__exit__(*exc)

            return _Adapters
        frozen = self.frozen

        class _Frozen:
            def __enter__(self):
                return frozen

            def __exit__(self, *exc):
                return False

        return _Frozen

    def step(self, rollouts: Sequence[Rollout], loss_fn: Callable, entropy_grad: bool = False) -> dict[str, float]:
        """One optimizer step on the token-mean `loss_fn` over `rollouts` (`llm_loss.accumulate`)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss, kl, entropy = accumulate(self.config, rollouts, loss_fn, self.model, self.reference(), entropy_grad)
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.optimizer.step()
        return {"loss": loss, "kl": kl, "entropy": entropy}

    def weights(self) -> dict:
        return trained_weights(self.trainable, self.config.lora_rank)


class LLMParts:
    """The LLM trainer's parts of the training loop (`loop.TrainerParts`): rollouts on the vectorized
    TTC-Math-v0 (or Ray workers), micro-batched AdamW steps, weights pushed to the sampling engine,
    checkpoints under `config.out`."""

    def __init__(self, config: LLMTrainConfig, engines: Engines, policy: Trainable,
                 ray_engine_factory: Callable[[], Any] | None = None):
        self.config, self.engines, self.policy, self.checkpoints = config, engines, policy, []
        self.synced = 0
        if engines.sampling is not None:  # it serves its own weights: give it the policy's
            self.synced = sync_weights(engines.sampling, policy.trainable, config.lora_rank, self.synced)
        self.remote = None
        if config.ray_workers:
            from ttc_gym.training.llm_ray import RayRollouts, default_engine_factory

            self.remote = RayRollouts(
                config, config.ray_workers, make_envs=make_envs, collect_batch=collect_batch,
                engine_factory=ray_engine_factory or default_engine_factory(config, build_policy_engine),
                num_gpus_per_worker=1.0 if config.vllm_model else 0.0, address=config.ray_address)
            self.remote.sync(policy.weights())
        # The trainer draws the problems (mrt from stored traces: the traces' problems); the env rolls them out.
        self.source = TracePrefixes(config.prefix_traces) if config.prefix_traces else make_source(config.source)
        branches = config.problems_per_iter * (config.group_size + config.terminations) if config.branches else None
        self.envs = make_envs(config, engines.sampler, engines.prover, self.source, num_envs=branches)
        self.agent = self._agent(engines.sampler)
        # mrt's stale prefix writer: a frozen engine of the policy's model, refreshed every stale_every iterations.
        self.stale = None
        if config.branches and config.prefix_source == "stale":
            self.stale = self._agent(stale_copy(engines.policy, policy.trainable, bool(config.lora_rank)))

    def _agent(self, engine: Any):
        from ttc_gym.agents.llm import LLMAgent

        return LLMAgent(engine, max_episode_tokens=self.config.max_episode_tokens, temperature=self.config.temperature,
                        top_p=self.config.top_p, template=self.envs.template, seed=self.config.seed)

    def _prefix_agent(self, iteration: int):
        """Who writes mrt's prefixes this iteration (`prefix_source`)."""
        if self.stale is None:
            return self.agent
        if iteration % self.config.stale_every == 0 or not self.stale_loaded:
            with torch.no_grad():
                self.stale.engine.load_weights(self.policy.weights())
            self.stale_loaded = True
        return self.stale

    stale_loaded = False  # set once the stale writer holds weights (first iteration, or a resumed run's saved ones)

    def restore_stale(self, extra: dict) -> None:
        """A resumed run's stale prefix writer: the weights its checkpoint saved (an older checkpoint
        without them: refreshed at the first iteration)."""
        if self.stale is not None and "stale" in extra:
            with torch.no_grad():
                self.stale.engine.load_weights(extra["stale"])
            self.stale_loaded = True

    def collect(self, iteration: int) -> list[Rollout]:
        self.policy.model.eval()
        if self.config.branches:
            with torch.inference_mode():
                return collect_batch(self.envs, self.agent, plan_branches(self.config, self.source, iteration,
                                                                          self._prefix_agent(iteration)))
        plans = plan_iteration(self.config, self.source, iteration)
        if self.remote is not None:
            return self.remote.collect(plans)
        with torch.inference_mode():
            return collect_batch(self.envs, self.agent, plans)

    def trajectories(self, rollouts: Sequence[Rollout]) -> list[alg.Trajectory]:
        return [ro.trajectory() for ro in rollouts]

    def policy_gradient_step(self, rollouts, trajectories, advantages) -> dict[str, float]:
        coef = self.config.entropy_coef

        def pg(trajs, offset, entropy):
            return alg.pg_loss(trajs, advantages[offset : offset + len(trajs)], kl_coef=self.config.kl_coef,
                               entropy=entropy, entropy_coef=coef)

        return self.policy.step(rollouts, pg, entropy_grad=coef > 0)

    def sft_step(self, rollouts, trajectories) -> dict[str, float]:
        return self.policy.step(rollouts, lambda trajs, _offset, _entropy: alg.sft_loss(trajs))

    def after_update(self) -> None:
        if self.engines.sampling is not None:
            self.synced = sync_weights(self.engines.sampling, self.policy.trainable, self.config.lora_rank, self.synced)
        if self.remote is not None:
            self.remote.sync(self.policy.weights())

    def stats(self, rollouts: Sequence[Rollout], step: int) -> dict[str, float]:
        def mean(xs):
            return float(np.mean(xs)) if len(xs) else float("nan")

        return {
            "reward": mean([ro.reward for ro in rollouts]),
            "outcome": mean([ro.outcome for ro in rollouts]),
            "progress": mean([sum(ro.progress) for ro in rollouts]),
            "cost": mean([sum(ro.cost) for ro in rollouts]),
            "J_0": mean([ro.j0 for ro in rollouts]),
            "J_final": mean([ro.j_final for ro in rollouts]),
            "episodes": mean([len(ro.episodes) for ro in rollouts]),
            "tokens": token_count(rollouts) / max(1, len(rollouts)),
            "kl": float("nan"),  # replaced by the step's own, when it took one
            "entropy": float("nan"),  # likewise
            **branch_summary(rollouts, "outcome"),
            "all_failed_groups": all_failed_groups(rollouts),
        }

    def metrics(self, rollouts: Sequence[Rollout]) -> dict[str, float]:
        return tracking.j_curve_metrics([j_curve_from_progress(ro.j0, ro.progress) for ro in rollouts])

    def save(self, step: int, history) -> None:
        extra = {"stale": self.stale.engine.model.state_dict()} if self.stale is not None else None
        path = save_checkpoint(self.config, step, self.policy.trainable, self.engines.policy, self.policy.optimizer,
                               Path(self.config.out), extra=extra)
        self.checkpoints.append(str(path))

    def close(self) -> None:
        self.envs.close()
        if self.remote is not None:
            self.remote.close()
        self.policy.model.eval()


def _logged_rows(out: Path, resume_step: int) -> list[dict]:
    """The rows of log.csv up to `resume_step` (a resumed run keeps them)."""
    path = out / "log.csv"
    if not resume_step or not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= resume_step]


def main(argv: Sequence[str] | None = None, prog: str = "python -m ttc_gym.training.llm_train") -> int:
    try:
        config = parse_config(LLMTrainConfig, argv, prog=prog)
    except (TypeError, ValueError, FileNotFoundError) as err:  # an inconsistent config: no model loaded
        print(f"error: {err}", file=sys.stderr)
        return 2

    def show(row: dict) -> None:
        print(f"step {row['step']:4d}  reward {row['reward']:+.3f}  outcome {row['outcome']:.3f}  "
              f"progress {row['progress']:+.3f}  J_final {row['J_final']:.3f}  episodes {row['episodes']:.2f}  "
              f"loss {row['loss']:.4f}  kl {row['kl']:.4f}  kept {row['kept']:.2f}  {row['wall_s']:.1f}s", flush=True)

    try:
        result = train(config, log=show)
    except (FileExistsError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"trained {result.step} iterations in {result.wall_s:.1f}s; log: {Path(config.out) / 'log.csv'}")
    for path in result.checkpoints:
        print(f"checkpoint: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
