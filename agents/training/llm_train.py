"""LLM trainers on TTC-Math-v0: GRPO, MRT, STaR and MRT-STaR, with the env's own rewards.

    ttc-gym train --env TTC-Math-v0 --algo mrt --iterations 2 --problems-per-iter 2 --group-size 2 \\
        --max-episodes 2 --out runs/mrt_cpu                 # default model, CPU, a few minutes
    ttc-gym bench --agents llm-checkpoint:runs/mrt_cpu/checkpoint-2 --problems 2 --budgets 2
    python -m ttc_gym.agents.training.llm_train --help              # every option

The same with a bigger model on a GPU (the prover stays the default model unless --prover-model is
given; bf16 weights, AdamW states in bf16 too — use --lora-rank 16 to train adapters only):

    ttc-gym train --env TTC-Math-v0 --algo mrt --model transformers:Qwen/Qwen2.5-Math-1.5B-Instruct \\
        --prover-model transformers:Qwen/Qwen2.5-Math-1.5B-Instruct --device cuda --dtype bfloat16 \\
        --iterations 200 --problems-per-iter 8 --group-size 8 --micro-batch-size 8 \\
        --max-episodes 8 --max-episode-tokens 256 --lr 1e-6 --kl-coef 0.01 --save-every 25 \\
        --source hf:<dataset> --out runs/mrt_qwen15

Read top to bottom. Each iteration:
1. draws `problems_per_iter` problems (seeded by `seed` and the iteration) and rolls each out
   `group_size` times on TTC-Math-v0 (all rollouts advance together, `collect_batch`); the policy
   is an `LLMAgent` over a `TransformersEngine` whose `.model` is the trainable torch model, each
   rollout with its own agent seed so the G traces differ. The env's prover is a separate, frozen
   engine (the default model unless `--prover-model`): it measures J, progress and the outcome.
2. (grpo, mrt) computes advantages with `algorithms` (grpo: outcome-only, group-normalized; mrt:
   + alpha * progress credit per episode), the token log-probabilities of every episode's sampled
   tokens given the prompt's tokens as the engine encoded them (`episode_logprobs`), optionally
   those of the initial model for the k3 KL term, and takes one AdamW step on
   `algorithms.policy_gradient_loss` with gradients accumulated over micro-batches (weighted so
   that the result is the token mean over the whole batch);
   (star, mrt-star) keeps the rollouts `algorithms.star_select` / `mrt_star_select` accept and takes
   `sft_steps` steps of `algorithms.sft_loss` on them.
The model is trained in place, so the engine samples with the new weights at the next iteration
(eval mode for sampling, train mode for the loss). Checkpoints `out/checkpoint-N/` hold the HF model
and tokenizer (loadable by `TransformersEngine(path)` and `ttc-gym bench --agents
llm-checkpoint:PATH`), `train_config.json` and `trainer_state.pt` (step, optimizer) for `--resume`.
Logs: `out/log.csv`, one row per iteration, and TensorBoard under `out/tensorboard/` when available.
"""

from __future__ import annotations

import copy
import csv
import json
import math
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
from ttc_gym.agents.training.config_cli import parse_config
from ttc_gym.agents.training.llm_config import RL_ALGOS, LLMTrainConfig
from ttc_gym.envs.math_core import MathTrace
from ttc_gym.envs.math_text import check_episode_text

LOG_FIELDS = (
    "step", "reward", "outcome", "progress", "J_0", "J_final", "episodes", "tokens", "loss", "kl", "kept",
    "wall_s",
)
SELECTORS = {"star": alg.star_select, "mrt-star": alg.mrt_star_select}
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

    def record(self, prompt: str, prompt_ids: list[int], text: str, ids: list[int], reward: float, info: dict) -> None:
        """One episode: what the policy saw and wrote, and what the env said of it."""
        self.prompts.append(prompt)
        self.prompt_ids.append(prompt_ids)
        self.episodes.append(text)
        self.episode_ids.append(ids)
        self.progress.append(float(info["progress"]))
        self.cost.append(float(info.get("cost", 0.0)))
        self.reward += float(reward)
        self.outcome, self.j_final = float(info["outcome"]), float(info["J"])

    def trajectory(self) -> alg.Trajectory:
        return alg.Trajectory(group=self.group, outcome=self.outcome, progress=np.array(self.progress),
                              cost=np.array(self.cost), j0=self.j0)


def collect(env: Any, agent: Any, problem: Any, *, group: int, seed: int, agent_seed: int) -> Rollout:
    """Roll `agent` out on `problem` to the end through the env's gym API, one step per episode
    (the reference for `collect_batch`, which runs many rollouts together)."""
    agent.seed = int(agent_seed)
    obs, info = env.reset(seed=int(seed), options={"problem": problem})
    ro = Rollout(group=group, j0=float(info["J"]), j_final=float(info["J"]))
    done = False
    while not done:
        prompt = agent.template.reasoning_prompt(agent.engine, obs["problem"], list(obs["episodes"]))
        episode = agent.write_batch([obs], [info])[0]
        obs, reward, terminated, truncated, info = env.step(episode.text)
        ro.record(prompt, agent.engine.encode(prompt), episode.text, episode_ids(agent.engine, episode), reward, info)
        done = terminated or truncated
    return ro


def collect_batch(config: LLMTrainConfig, env: Any, agent: Any, iteration: int) -> list[Rollout]:
    """`problems_per_iter` problems x `group_size` rollouts, seeded by (seed, iteration).

    All rollouts of the iteration advance together, one episode per round: one engine call writes
    every unfinished rollout's next episode (`LLMAgent.write_batch`, each rollout with its own seed)
    and one prover batch scores them all (`LLMProver.estimate_many`); rewards come from the env's
    own `MathTrace`. Rollout k is exactly what `collect` gives for it alone (tested).
    """
    rng = np.random.default_rng([config.seed, iteration])
    base = env.unwrapped
    plan = []  # (group, problem, agent seed), in the order `collect` would run them
    for p in range(config.problems_per_iter):
        problem = base.source.sample(rng)
        rng.integers(0, 2**31)  # the reset seed of `collect` (no effect with a given problem): same draws
        plan += [(p, problem, int(rng.integers(0, 2**31))) for _ in range(config.group_size)]
    prover, settings = base.prover, base.settings
    with torch.inference_mode():
        agent.engine.model.eval()
        prover.estimate_many([(problem, ()) for _, problem, _ in plan])
        traces = [MathTrace(settings, prover, prover.engine.count_tokens, problem) for _, problem, _ in plan]
        infos = [trace.info() for trace in traces]
        rollouts = [Rollout(group=g, j0=float(info["J"]), j_final=float(info["J"]))
                    for (g, _, _), info in zip(plan, infos)]
        active = list(range(len(plan)))
        while active:
            obs = [{"problem": traces[k].problem.question, "episodes": tuple(traces[k].episodes)} for k in active]
            prompts = [agent.template.reasoning_prompt(agent.engine, o["problem"], list(o["episodes"])) for o in obs]
            written = agent.write_batch(obs, [infos[k] for k in active], seeds=[plan[k][2] for k in active])
            texts = [check_episode_text(e.text, settings.max_episode_chars) for e in written]
            prover.estimate_many([(traces[k].problem, (*traces[k].episodes, t)) for k, t in zip(active, texts)])
            still = []
            for k, prompt, text, episode in zip(active, prompts, texts, written):
                result = traces[k].add_episode(text)  # reads the estimate memoized just above
                infos[k] = result.info
                rollouts[k].record(prompt, agent.engine.encode(prompt), text, episode_ids(agent.engine, episode),
                                   result.reward, result.info)
                if not (result.terminated or result.truncated):
                    still.append(k)
            active = still
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
    if config.algo == "grpo":
        return alg.outcome_advantages(trajectories, eps=config.adv_eps, scale=config.adv_scale)
    if config.mrt_form == "termination":
        return alg.termination_advantages(trajectories, alpha=config.alpha)
    return alg.mrt_advantages(trajectories, alpha=config.alpha, eps=config.adv_eps, scale=config.adv_scale)


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


def _tensorboard(config: LLMTrainConfig, out: Path):
    if not config.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: CSV only
        return None
    return SummaryWriter(str(out / "tensorboard"))


def train(
    config: LLMTrainConfig,
    *,
    policy_engine: Any = None,
    prover_engine: Any = None,
    log: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train as `config` says. `policy_engine` (a TransformersEngine trained in place) and
    `prover_engine` replace `config.model` / `config.prover_model` (tests pass tiny engines)."""
    import gymnasium as gym

    import ttc_gym  # noqa: F401  (registers the envs)
    from ttc_gym.agents.llm import LLMAgent
    from ttc_gym.engines.base import make_engine

    start = time.perf_counter()
    out = Path(config.out)
    existing = find_checkpoints(out)
    if existing and not config.resume:
        raise FileExistsError(f"{out} already holds checkpoints ({existing[-1][1].name}); pass --resume to "
                              f"continue, or choose another --out.")
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)

    engine = policy_engine if policy_engine is not None else build_policy_engine(config)
    if prover_engine is None:
        prover_engine = make_engine(None if config.prover_model == "default" else config.prover_model,
                                    device=config.prover_device or config.device)
    if prover_engine is engine:
        raise ValueError("the prover must not share the policy's engine (the policy is trained in place).")
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

    env = gym.make(
        "TTC-Math-v0", engine=prover_engine, source=config.source, alpha=config.alpha,
        max_episodes=config.max_episodes, max_tokens=config.max_tokens,
        num_prover_samples=config.num_prover_samples, **config.env_kwargs,
    )
    agent = LLMAgent(engine, max_episode_tokens=config.max_episode_tokens, temperature=config.temperature,
                     top_p=config.top_p, template=env.unwrapped.template, seed=config.seed)
    result = TrainResult(engine=engine, step=step, config=config)
    writer, handle = _open_log(out, step)
    tb = _tensorboard(config, out)
    try:
        while step < config.iterations:
            rollouts = collect_batch(config, env, agent, step)
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
                extra = {"min_total_progress": config.min_total_progress} if config.algo == "mrt-star" else {}
                chosen = {id(t) for t in SELECTORS[config.algo](trajs, **extra)}
                kept_rollouts = [ro for ro, t in zip(rollouts, trajs) if id(t) in chosen]
                kept = len(kept_rollouts) / len(rollouts)
                loss, kl = float("nan"), float("nan")
                for _ in range(config.sft_steps if kept_rollouts else 0):
                    optimizer.zero_grad(set_to_none=True)
                    loss, kl = accumulate(config, kept_rollouts, lambda trajs, _o: alg.sft_loss(trajs),
                                          model, use_ref)
                    _step(config, params, optimizer)
            step += 1
            row = _row(step, rollouts, loss, kl, kept, time.perf_counter() - start)
            result.history.append(row)
            writer.writerow(row)
            handle.flush()
            if tb is not None:
                for key in LOG_FIELDS[1:]:
                    if isinstance(row[key], float) and math.isfinite(row[key]):
                        tb.add_scalar(key, row[key], step)
            if log:
                log(row)
            if step == config.iterations or (config.save_every and step % config.save_every == 0):
                result.checkpoints.append(str(save_checkpoint(config, step, trainable, engine, optimizer, out)))
    finally:
        handle.close()
        if tb is not None:
            tb.close()
        env.close()
    model.eval()
    result.step = step
    result.wall_s = time.perf_counter() - start
    return result


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
