"""LLM trainers on TTC-Math-v0: GRPO, MRT, STaR and MRT-STaR, with the env's own rewards.

    ttc-gym train --env TTC-Math-v0 --algo mrt --iterations 2 --problems-per-iter 2 --group-size 2 \\
        --max-episodes 2 --out runs/mrt_cpu                 # default model, CPU, a few minutes
    ttc-gym bench --agents llm-checkpoint:runs/mrt_cpu/checkpoint-2 --problems 2 --budgets 2
    python -m ttc_gym.agents.training.llm_train --help              # every option

The same with a bigger model on a GPU (the prover is the policy itself, as in MRT's online RL; give
--prover-model to measure J with a separate frozen model instead, e.g. the small default one; bf16
weights, AdamW states in bf16 too — use --lora-rank 16 to train adapters only):

    ttc-gym train --env TTC-Math-v0 --algo mrt --model transformers:Qwen/Qwen2.5-Math-1.5B-Instruct \\
        --device cuda --dtype bfloat16 \\
        --iterations 200 --problems-per-iter 8 --group-size 8 --micro-batch-size 8 \\
        --max-episodes 8 --max-episode-tokens 256 --lr 1e-6 --kl-coef 0.01 --save-every 25 \\
        --source hf:<dataset> --out runs/mrt_qwen15

Read top to bottom. Each iteration:
1. draws `problems_per_iter` problems from its own problem source, with a generator seeded by
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
2. (policy-gradient algorithms, `algorithms.RL_ALGOS`) computes advantages with
   `algorithms.advantages` (grpo: outcome-only, group-normalized; mrt: + alpha * each episode's own
   progress; docs/formulation.md §4 gives every name's formula), the token log-probabilities of
   every episode's sampled tokens given the prompt's tokens as the engine encoded them (`episode_logprobs`), optionally
   those of the initial model for the k3 KL term, and takes one AdamW step on
   `algorithms.policy_gradient_loss` with gradients accumulated over micro-batches (weighted so
   that the result is the token mean over the whole batch);
   (SFT algorithms, `algorithms.SFT_ALGOS`) keeps the rollouts `algorithms.select` accepts and takes
   `sft_steps` steps of `algorithms.sft_loss` on them.
The model is trained in place, so the engine samples with the new weights at the next iteration
(eval mode for sampling, train mode for the loss). Checkpoints `out/checkpoint-N/` hold the HF model
and tokenizer (loadable by `TransformersEngine(path)` and `ttc-gym bench --agents
llm-checkpoint:PATH`), `train_config.json` and `trainer_state.pt` (step, optimizer) for `--resume`.
Logs: `out/log.csv`, one row per iteration, and `--report-to` (`tracking`): TensorBoard under
`out/tensorboard/` (by default when installed), W&B (offline) under `out/wandb/`.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ttc_gym.agents.training import algorithms as alg
from ttc_gym.agents.training import tracking
from ttc_gym.agents.training.config_cli import parse_config
from ttc_gym.agents.training.llm_config import RL_ALGOS, LLMTrainConfig
from ttc_gym.envs.math_vector import unbatch
from ttc_gym.problems import make_source
from ttc_gym.rewards import j_curve_from_progress

LOG_FIELDS = (
    "step", "reward", "outcome", "progress", "J_0", "J_final", "episodes", "tokens", "loss", "kl", "kept",
    "wall_s",
)
STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "train_config.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


# -- log-probabilities ------------------------------------------------------------------------------
def episode_logprobs(model: Any, prompt_ids: Sequence[int], episode_ids: Sequence[int]) -> torch.Tensor:
    """Log-probabilities (1-D, one per id of `episode_ids`) of an episode's tokens following the
    prompt's, under `model`, from one forward pass. Both are token ids as the engine used them
    (`TransformersEngine.encode(prompt)` and the sampled `Completion.token_ids`): re-tokenizing the
    texts can give other tokens (a prompt's trailing paragraph break, say). Differentiable unless
    called under no_grad."""
    device = next(model.parameters()).device
    if not episode_ids:
        return torch.zeros(0, device=device)
    ids = torch.tensor([list(prompt_ids) + list(episode_ids)], device=device)
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    targets = torch.tensor(list(episode_ids), device=device)
    return torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)


def episode_ids(engine: Any, episode: Any) -> list[int]:
    """The token ids of a `ttc_gym.agents.llm.Episode`: as sampled, or its text's tokens when it was not
    sampled as such (a committed final answer)."""
    if episode.token_ids:
        return list(episode.token_ids)
    return list(engine.tokenizer(episode.text, add_special_tokens=False)["input_ids"])


# -- rollouts ---------------------------------------------------------------------------------------
@dataclass
class Rollout:
    """One rollout of one problem: the prompt and text of each episode (and their token ids) and
    what the env said."""

    group: int
    prompts: list[str] = field(default_factory=list)
    episodes: list[str] = field(default_factory=list)
    prompt_ids: list[list[int]] = field(default_factory=list)  # each prompt as the engine encoded it
    episode_ids: list[list[int]] = field(default_factory=list)  # each episode's sampled token ids
    progress: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    reward: float = 0.0
    outcome: float = 0.0
    j0: float = 0.0
    j_final: float = 0.0

    def record(self, episode: Any, ids: list[int], reward: float, info: dict) -> None:
        """One episode (a `ttc_gym.agents.llm.Episode`, `ids` its token ids), the step's reward and
        the env's info of it."""
        self.prompts.append(episode.prompt)
        self.prompt_ids.append(list(episode.prompt_ids))
        self.episodes.append(episode.text)
        self.episode_ids.append(ids)
        self.progress.append(float(info["progress"]))
        self.cost.append(float(info.get("cost", 0.0)))
        self.reward += float(reward)
        self.outcome, self.j_final = float(info["outcome"]), float(info["J"])

    def trajectory(self) -> alg.Trajectory:
        return alg.Trajectory(group=self.group, outcome=self.outcome, progress=np.array(self.progress),
                              cost=np.array(self.cost), j0=self.j0)


@dataclass(frozen=True)
class RolloutPlan:
    """What one rollout of an iteration runs: its group, its problem, and its seed (the env's
    reset seed and the agent's seed of its episodes, so that the G rollouts of a group differ)."""

    group: int
    problem: Any
    seed: int


def plan_iteration(config: LLMTrainConfig, source: Any, iteration: int) -> list[RolloutPlan]:
    """The rollouts of `iteration`: `problems_per_iter` problems drawn from `source` (a
    `ttc_gym.problems.ProblemSource`), `group_size` rollouts of each, each with its own seed; all
    drawn from one generator seeded by (seed, iteration)."""
    rng = np.random.default_rng([config.seed, iteration])
    problems = [source.sample(rng) for _ in range(config.problems_per_iter)]
    seeds = rng.integers(0, 2**31, size=len(problems) * config.group_size)
    return [RolloutPlan(group=k // config.group_size, problem=problems[k // config.group_size], seed=int(s))
            for k, s in enumerate(seeds)]


def math_env_kwargs(config: LLMTrainConfig) -> dict:
    """The TTC-Math-v0 arguments `config` sets (the engines are given apart)."""
    return dict(source=config.source, alpha=config.alpha, max_episodes=config.max_episodes,
                max_tokens=config.max_tokens, num_prover_samples=config.num_prover_samples, **config.env_kwargs)


def make_envs(config: LLMTrainConfig, engine: Any, prover_engine: Any = None, source: Any = None,
              num_envs: int | None = None) -> Any:
    """The vectorized TTC-Math-v0 the trainer rolls out on: one sub-env per rollout of an iteration
    (`batch_size`), autoreset disabled (a finished rollout is not stepped again), the policy's
    `engine` as the env's (it counts the episodes' tokens and gives the forced final answer), the
    prover on `prover_engine` (None: the policy's engine); `source` (a ProblemSource) replaces
    `config.source`; `num_envs` replaces `batch_size` (a Ray worker's shard)."""
    import gymnasium as gym

    import ttc_gym  # noqa: F401  (registers the envs)

    kwargs = math_env_kwargs(config)
    if source is not None:
        kwargs["source"] = source
    return gym.make_vec("TTC-Math-v0", num_envs=config.batch_size if num_envs is None else num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode="disabled", engine=engine, prover_engine=prover_engine, **kwargs)


def collect(env: Any, agent: Any, plan: RolloutPlan) -> Rollout:
    """Roll `agent` out on one planned rollout to its end on a single TTC-Math-v0 env, one step per
    episode (the reference for `collect_batch`)."""
    obs, info = env.reset(seed=plan.seed, options={"problem": plan.problem})
    rollout = Rollout(group=plan.group, j0=float(info["J"]), j_final=float(info["J"]))
    done = False
    while not done:
        episode = agent.write_batch([obs], [info], seeds=[plan.seed])[0]
        obs, reward, terminated, truncated, info = env.step(episode.text)
        rollout.record(episode, episode_ids(agent.engine, episode), reward, info)
        done = terminated or truncated
    return rollout


def collect_batch(envs: Any, agent: Any, plans: Sequence[RolloutPlan]) -> list[Rollout]:
    """All planned rollouts together on the vectorized TTC-Math-v0 `envs` (one sub-env each,
    autoreset disabled): reset every sub-env to its problem, then, until every rollout is done, one
    `agent.write_batch` call writes each unfinished rollout's next episode (each with its own seed)
    and one `envs.step` scores them all (one prover batch); finished sub-envs get the action None.
    Rollout k is exactly what `collect` gives for `plans[k]` alone (tested)."""
    if envs.num_envs != len(plans):
        raise ValueError(f"collect_batch needs one sub-env per rollout: {len(plans)} rollouts, "
                         f"num_envs={envs.num_envs}.")
    obs, infos = envs.reset(seed=[p.seed for p in plans], options={"problems": [p.problem for p in plans]})
    obs, infos = unbatch(obs, infos)
    rollouts = [Rollout(group=p.group, j0=float(info["J"]), j_final=float(info["J"])) for p, info in zip(plans, infos)]
    done = np.zeros(len(plans), dtype=bool)
    while not done.all():
        active = np.flatnonzero(~done)
        written = agent.write_batch([obs[k] for k in active], [infos[k] for k in active],
                                    seeds=[plans[k].seed for k in active])
        actions: list[str | None] = [None] * len(plans)
        for k, episode in zip(active, written):
            actions[k] = episode.text
        step_obs, rewards, terminated, truncated, step_infos = envs.step(actions)
        obs, step_infos = unbatch(step_obs, step_infos)
        for k, episode in zip(active, written):
            infos[k] = step_infos[k]
            rollouts[k].record(episode, episode_ids(agent.engine, episode), rewards[k], infos[k])
        done |= terminated | truncated
    return rollouts


# -- losses -----------------------------------------------------------------------------------------
def attach_logprobs(trajectories, rollouts, model, ref: Callable | None) -> None:
    """Fill each trajectory's per-episode token log-probs (with gradient) and, when `ref` is given,
    the reference's (no gradient)."""
    for t, ro in zip(trajectories, rollouts):
        pairs = list(zip(ro.prompt_ids, ro.episode_ids))
        t.logprobs = [episode_logprobs(model, p, e) for p, e in pairs]
        if ref is not None:
            with torch.no_grad(), ref() as ref_model:
                t.ref_logprobs = [episode_logprobs(ref_model, p, e) for p, e in pairs]


def advantages(config: LLMTrainConfig, trajectories: Sequence[alg.Trajectory]) -> list[np.ndarray]:
    return alg.advantages(config.algo, trajectories, alpha=config.alpha, mrt_form=config.mrt_form,
                          eps=config.adv_eps, scale=config.adv_scale)


def _token_count(rollouts: Sequence[Rollout]) -> int:
    return sum(len(ids) for ro in rollouts for ids in ro.episode_ids)


def accumulate(config, rollouts, loss_fn, model, ref) -> tuple[float, float]:
    """Backward the token-mean loss of the whole batch in micro-batches; returns (loss, mean k3 KL)."""
    total = _token_count(rollouts)
    loss_sum, kl_sum = 0.0, 0.0
    if total == 0:
        return float("nan"), float("nan")
    model.train()
    for start in range(0, len(rollouts), config.micro_batch_size):
        micro = rollouts[start : start + config.micro_batch_size]
        n = _token_count(micro)
        if n == 0:
            continue
        trajs = [ro.trajectory() for ro in micro]
        attach_logprobs(trajs, micro, model, ref)
        loss = loss_fn(trajs, start) * (n / total)
        loss.backward()
        loss_sum += float(loss.detach())
        if ref is not None:
            lp, _, rp = alg.flatten_batch(trajs)
            delta = (rp - lp).detach()
            kl_sum += float((torch.exp(delta) - delta - 1.0).sum())
    model.eval()
    return loss_sum, (kl_sum / total if ref is not None else float("nan"))


# -- the trainer ------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    engine: Any
    history: list[dict] = field(default_factory=list)
    step: int = 0
    checkpoints: list[str] = field(default_factory=list)
    config: LLMTrainConfig | None = None
    wall_s: float = 0.0


def find_checkpoints(out: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in `out`, by step."""
    out = Path(out)
    found = []
    if out.is_dir():
        for p in out.iterdir():
            m = _CHECKPOINT.fullmatch(p.name)
            if m and (p / STATE_FILE).is_file():
                found.append((int(m.group(1)), p))
    return sorted(found)


def _engine_kwargs(device: str, dtype: str) -> dict:
    return {"device": device, "dtype": None if dtype == "auto" else dtype}


def build_policy_engine(config: LLMTrainConfig):
    """A fresh `TransformersEngine` of `config.model`, never the shared cached default engine (the
    prover's): its weights are trained in place."""
    from ttc_gym.engines.transformers_engine import TransformersEngine

    if config.model == "default":
        from ttc_gym.engines.default_model import default_model_path

        return TransformersEngine(default_model_path(), name="policy:default", **_engine_kwargs(config.device, config.dtype))
    return TransformersEngine(config.model.removeprefix("transformers:"), **_engine_kwargs(config.device, config.dtype))


def _apply_lora(config: LLMTrainConfig, model):
    from ttc_gym.optional import require

    peft = require("peft", extra="lora", purpose="LoRA training (lora_rank > 0)")
    lora = peft.LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                           target_modules=config.lora_target_modules, task_type="CAUSAL_LM")
    # Injects adapter layers into `model` in place: the engine keeps sampling from the same object.
    return peft.get_peft_model(model, lora)


def save_dense(model, path: Path) -> None:
    """`save_pretrained` for a model loaded from GGUF: transformers dequantizes GGUF weights to dense
    tensors but keeps a GGUF quantizer marker, and refuses to save a model with it. The weights are
    plain tensors, so they are saved without the marker (restored afterwards)."""
    quantizer = getattr(model, "hf_quantizer", None)
    qconfig = getattr(model.config, "quantization_config", None)
    try:
        model.hf_quantizer = None
        if qconfig is not None:
            delattr(model.config, "quantization_config")
        model.save_pretrained(path)
    finally:
        model.hf_quantizer = quantizer
        if qconfig is not None:
            model.config.quantization_config = qconfig


def save_checkpoint(config, step, trainable, engine, optimizer, out: Path) -> Path:
    path = out / f"checkpoint-{step}"
    tmp = out / f".checkpoint-{step}.tmp"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if config.lora_rank:
        trainable.save_pretrained(tmp / "adapter")
        merged = copy.deepcopy(trainable).merge_and_unload()
        save_dense(merged, tmp)
    else:
        save_dense(engine.model, tmp)
    engine.tokenizer.save_pretrained(tmp)
    (tmp / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))
    torch.save({"step": step, "optimizer": optimizer.state_dict()}, tmp / STATE_FILE)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    tmp.rename(path)
    return path


def _load_checkpoint(config, trainable, engine, optimizer, path: Path) -> int:
    if config.lora_rank:
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights

        set_peft_model_state_dict(trainable, load_peft_weights(str(path / "adapter"), device=str(config.device)))
    else:
        from transformers import AutoModelForCausalLM

        loaded = AutoModelForCausalLM.from_pretrained(path, dtype=next(engine.model.parameters()).dtype)
        engine.model.load_state_dict(loaded.state_dict())
        del loaded
    state = torch.load(path / STATE_FILE, map_location=config.device, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def _open_log(out: Path, resume_step: int):
    """log.csv, keeping the rows up to `resume_step` of a previous run."""
    path = out / "log.csv"
    rows = []
    if resume_step and path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("step") and int(r["step"]) <= resume_step]
    handle = open(path, "w", newline="")  # noqa: SIM115  (closed by train's finally)
    writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    handle.flush()
    return writer, handle


def _reporter(config: LLMTrainConfig, out: Path) -> tracking.MultiReporter:
    report_to = "none" if config.report_to == "auto" and not config.tensorboard else config.report_to
    return tracking.make_reporter(report_to, out, run_name=out.name, config=asdict(config))


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
    from ttc_gym.agents.llm import LLMAgent
    from ttc_gym.engines.registry import make_engine

    start = time.perf_counter()
    out = Path(config.out)
    existing = find_checkpoints(out)
    if existing and not config.resume:
        raise FileExistsError(f"{out} already holds checkpoints ({existing[-1][1].name}); pass --resume to "
                              f"continue, or choose another --out.")
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    tracking.check_report_to(config.report_to)  # a missing tracking library fails before any model loads

    if config.prover == "policy" and prover_engine is not None:
        raise ValueError("train(prover_engine=...) gives a frozen prover, but config.prover is 'policy' (J from the "
                         "policy itself); set prover='frozen' to use it.")
    engine = policy_engine if policy_engine is not None else build_policy_engine(config)
    if sampling_engine is None and config.engine != "transformers":
        sampling_engine = make_engine("vllm:" + config.vllm_model, **config.engine_kwargs)
    if sampling_engine is engine:
        sampling_engine = None  # the trained model samples itself
    if config.prover == "frozen":
        if prover_engine is None and config.prover_model.startswith("vllm:"):
            prover_engine = make_engine(config.prover_model)
        elif prover_engine is None:
            prover_engine = make_engine(None if config.prover_model == "default" else config.prover_model,
                                        device=config.prover_device or config.device)
        if prover_engine is engine or (prover_engine is not None and prover_engine is sampling_engine):
            raise ValueError("a frozen prover must not share the policy's engine (the policy is trained in place); "
                             "use prover='policy' to measure J with the policy.")
    model = engine.model
    if config.lora_rank:
        trainable = _apply_lora(config, model)

        class ref:  # the initial model = the base model with the adapters disabled
            def __enter__(self):
                self._ctx = trainable.disable_adapter()
                self._ctx.__enter__()
                return trainable

            def __exit__(self, *exc):
                return self._ctx.__exit__(*exc)
    else:
        trainable = model
        frozen = copy.deepcopy(model).eval().requires_grad_(False) if config.kl_coef > 0 else None

        class _Ref:
            def __enter__(self):
                return frozen

            def __exit__(self, *exc):
                return False

        ref = _Ref
    use_ref = ref if config.kl_coef > 0 else None
    params = [p for p in trainable.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    step = 0
    if config.resume and existing:
        step = _load_checkpoint(config, trainable, engine, optimizer, existing[-1][1])
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))

    sampler = engine if sampling_engine is None else sampling_engine
    synced = 0
    if sampling_engine is not None:  # it serves its own weights: give it the policy's
        synced = sync_weights(sampling_engine, trainable, config.lora_rank, synced)
    remote = None
    if config.ray_workers:
        from ttc_gym.agents.training.llm_ray import RayRollouts, default_engine_factory

        remote = RayRollouts(config, config.ray_workers, make_envs=make_envs, collect_batch=collect_batch,
                             engine_factory=ray_engine_factory or default_engine_factory(config, build_policy_engine),
                             num_gpus_per_worker=1.0 if config.vllm_model else 0.0, address=config.ray_address)
        remote.sync(trained_weights(trainable, config.lora_rank))
    source = make_source(config.source)  # the trainer draws the problems; the env rolls them out
    envs = make_envs(config, sampler, prover_engine, source)
    agent = LLMAgent(sampler, max_episode_tokens=config.max_episode_tokens, temperature=config.temperature,
                     top_p=config.top_p, template=envs.template, seed=config.seed)
    result = TrainResult(engine=engine, step=step, config=config)
    writer, handle = _open_log(out, step)
    reporter = _reporter(config, out)
    try:
        while step < config.iterations:
            model.eval()
            if remote is not None:
                rollouts = remote.collect(plan_iteration(config, source, step))
            else:
                with torch.inference_mode():
                    rollouts = collect_batch(envs, agent, plan_iteration(config, source, step))
            optimizer.zero_grad(set_to_none=True)
            kept = 1.0
            if config.algo in RL_ALGOS:
                advs = advantages(config, [ro.trajectory() for ro in rollouts])

                def pg(trajs, offset, advs=advs):
                    return alg.pg_loss(trajs, advs[offset : offset + len(trajs)], kl_coef=config.kl_coef)

                loss, kl = accumulate(config, rollouts, pg, model, use_ref)
                _step(config, params, optimizer)
            else:
                trajs = [ro.trajectory() for ro in rollouts]
                chosen = {id(t) for t in alg.select(config.algo, trajs, min_total_progress=config.min_total_progress)}
                kept_rollouts = [ro for ro, t in zip(rollouts, trajs) if id(t) in chosen]
                kept = len(kept_rollouts) / len(rollouts)
                loss, kl = float("nan"), float("nan")
                for _ in range(config.sft_steps if kept_rollouts else 0):
                    optimizer.zero_grad(set_to_none=True)
                    loss, kl = accumulate(config, kept_rollouts, lambda trajs, _o: alg.sft_loss(trajs),
                                          model, use_ref)
                    _step(config, params, optimizer)
            if sampling_engine is not None:
                synced = sync_weights(sampling_engine, trainable, config.lora_rank, synced)
            if remote is not None:
                remote.sync(trained_weights(trainable, config.lora_rank))
            step += 1
            row = _row(step, rollouts, loss, kl, kept, time.perf_counter() - start)
            result.history.append(row)
            writer.writerow(row)
            handle.flush()
            reporter.log({**row, **tracking.j_curve_metrics([j_curve_from_progress(ro.j0, ro.progress)
                                                             for ro in rollouts])}, step)
            if log:
                log(row)
            if step == config.iterations or (config.save_every and step % config.save_every == 0):
                result.checkpoints.append(str(save_checkpoint(config, step, trainable, engine, optimizer, out)))
    finally:
        handle.close()
        reporter.close()
        envs.close()
        if remote is not None:
            remote.close()
    model.eval()
    result.step = step
    result.wall_s = time.perf_counter() - start
    return result


def trained_weights(trainable: Any, lora: bool) -> dict:
    """The trained model's weights as a state dict named as in the Hugging Face checkpoint (LoRA:
    the adapters merged into a copy of the base model)."""
    if lora:
        return copy.deepcopy(trainable).merge_and_unload().state_dict()
    return trainable.state_dict()


def sync_weights(sampling_engine: Any, trainable: Any, lora: bool, version: int) -> int:
    """Push the trained weights into the engine that samples the rollouts (`load_weights`, which
    resets its prefix cache and bumps the engine's `weights_version`, the key of the env prover's
    memo: `ttc_gym.llm_prover.engine_weights_version`). Returns the number of pushes so far."""
    with torch.no_grad():
        sampling_engine.load_weights(trained_weights(trainable, lora))
    return version + 1


def _step(config: LLMTrainConfig, params, optimizer) -> None:
    if config.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    optimizer.step()


def _row(step, rollouts, loss, kl, kept, wall_s) -> dict:
    mean = lambda xs: float(np.mean(xs)) if len(xs) else float("nan")  # noqa: E731
    return {
        "step": step,
        "reward": mean([ro.reward for ro in rollouts]),
        "outcome": mean([ro.outcome for ro in rollouts]),
        "progress": mean([sum(ro.progress) for ro in rollouts]),
        "J_0": mean([ro.j0 for ro in rollouts]),
        "J_final": mean([ro.j_final for ro in rollouts]),
        "episodes": mean([len(ro.episodes) for ro in rollouts]),
        "tokens": _token_count(rollouts) / max(1, len(rollouts)),
        "loss": loss, "kl": kl, "kept": kept, "wall_s": wall_s,
    }


def main(argv: Sequence[str] | None = None, prog: str = "python -m ttc_gym.agents.training.llm_train") -> int:
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
