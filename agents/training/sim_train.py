"""Trainers on TTC-Sim-v0: GRPO, MRT, STaR, MRT-STaR and plain SFT, over the Gymnasium API.

    python -m ttc_gym.agents.training.sim_train --algo mrt --iterations 100 --log-csv runs/mrt.csv
    python -m ttc_gym.agents.training.sim_train --algo mrt --iterations 100 --checkpoint runs/mrt.pt \
        --save-every 10 --log-csv runs/mrt.csv        # killed? the same command with --resume continues
    python -m ttc_gym.agents.training.sim_train --help

Read top to bottom: `train` builds the envs and the policy, then each iteration either
* (policy-gradient algorithms, `algorithms.RL_ALGOS`: grpo, mrt, mrt-rtg) rolls out G rollouts of
  batch_size / G problems (`sim_rollout` explains how the G rollouts share a problem,
  `--group-by difficulty` how they can share only its level, faster), computes advantages with
  `algorithms.advantages` and takes one policy-gradient step (on-policy, no ratio clipping; the
  optional KL term is to the initial policy), or
* (SFT algorithms, `algorithms.SFT_ALGOS`: star, mrt-star, ...) rolls out batch_size problems with the
  trace source (the current policy or the heterogeneous expert), keeps the traces `algorithms.select`
  accepts (mrt-star compares the traces of one difficulty level) and takes `sft_steps`
  maximum-likelihood steps on them (expert iteration: the current policy is fine-tuned further).
Every output path and the env arguments are checked before the first iteration. The checkpoint
(`--checkpoint`, written every `--save-every` iterations and at the end, atomically) is a
`SimPolicy` file whose extra entry holds the trainer's state (iteration, optimizer, both generators,
the log rows): `--resume` continues from it exactly as the uninterrupted run would have gone on.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

import ttc_gym  # noqa: F401  (registers the envs)
from ttc_gym.agents.training import algorithms as alg
from ttc_gym.agents.training import tracking
from ttc_gym.agents.training.config_cli import ConfigError, parse_config
from ttc_gym.agents.training.experts import HeterogeneousExpert
from ttc_gym.agents.training.sim_config import RL_ALGOS, SimTrainConfig
from ttc_gym.agents.training.sim_policy import SimPolicy
from ttc_gym.agents.training.sim_rollout import (
    AgentsActor,
    PolicyActor,
    SimTrace,
    batch_stats,
    make_envs,
    make_vector_env,
    rollout,
    rollout_difficulty_groups,
    rollout_vector,
    to_trajectories,
)

LOG_FIELDS = (
    "step", "return", "accuracy", "episodes", "progress", "loss", "kept", "env_steps", "wall_s",
    "eval_return", "eval_accuracy", "eval_episodes",
)
EVAL_SEED = 10**9  # evaluation problems use seeds EVAL_SEED + i; training draws seeds below 2**30
STATE_KEY = "trainer_state"  # the checkpoint's extra entry that --resume reads
RESUME_MAY_CHANGE = frozenset({"iterations", "save_every", "resume", "checkpoint", "log_csv", "report_to", "report_dir"})


@dataclass
class TrainResult:
    policy: SimPolicy
    initial_policy: SimPolicy
    history: list[dict] = field(default_factory=list)
    config: SimTrainConfig | None = None
    wall_s: float = 0.0
    start_step: int = 0  # the iteration a resumed run started from (0: a fresh run)


def evaluate_policy(
    policy: SimPolicy, env_kwargs: dict, *, problems: int = 1000, seed: int = 0, greedy: bool = False,
    chunk: int = 1000, actor=None,
) -> list[SimTrace]:
    """Roll the policy (or `actor`) out on `problems` problems, on vector envs reset with seeds
    EVAL_SEED, EVAL_SEED + 1, ... (the same problems for every policy); the policy samples from a
    generator seeded with `seed`."""
    actor = actor or PolicyActor(policy, torch.Generator().manual_seed(seed), greedy=greedy)
    traces: list[SimTrace] = []
    for k, start in enumerate(range(0, problems, chunk)):
        venv = make_vector_env(min(chunk, problems - start), **env_kwargs)
        traces += rollout_vector(venv, actor, EVAL_SEED + k)
    return traces


def train(config: SimTrainConfig, log: Callable[[dict], None] | None = None) -> TrainResult:
    """Train one policy as `config` says; `log` (optional) receives each new history row.

    Before the first iteration: the env arguments are checked (by building the envs), the output
    paths too (`check_output_path`), and an existing `config.checkpoint` is resumed (`config.resume`)
    or refused. Every problem raises ConfigError (a ValueError) with a one-line message. The
    checkpoint is saved (atomically) every `save_every` iterations and at the end, with the trainer's
    state (`_trainer_state`), so that a resumed run equals an uninterrupted one."""
    start = time.perf_counter()
    env_kwargs = config.make_env_kwargs()
    # Groups of the same problem need single envs; everything else runs on vector envs.
    same_problem = config.algo in RL_ALGOS and config.group_by == "problem"
    envs = _make_checked_envs(config.batch_size if same_problem else 1, env_kwargs)
    for name in ("checkpoint", "log_csv"):
        if getattr(config, name):
            check_output_path(name, getattr(config, name))
    saved = _saved_run(config)
    policy = SimPolicy.for_space(envs[0].observation_space, envs[0].action_space, hidden=config.hidden, seed=config.seed)
    if config.algo in RL_ALGOS and config.group_by == "difficulty":
        envs = _VectorEnvCache(env_kwargs, envs[0])
    initial = policy.clone()
    ref = initial if config.kl_coef > 0 else None
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    rng = np.random.default_rng([config.seed, 7])
    gen = torch.Generator().manual_seed(config.seed + 1)
    expert = None
    if config.trace_source == "expert":
        model = envs[0].unwrapped.model if isinstance(envs, list) else None  # the simulator's public model
        expert = HeterogeneousExpert(config.max_episodes, seed=config.seed, spread=config.expert_spread, model=model)
    venv = None if config.algo in RL_ALGOS else make_vector_env(config.batch_size, **env_kwargs)
    result = TrainResult(policy=policy, initial_policy=initial, config=config)
    step, env_steps, wall_before = 0, 0, 0.0
    if saved is not None:
        state = saved["extra"][STATE_KEY]
        policy.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        gen.set_state(state["gen"])
        if expert is not None:  # the expert draws batch_size agents per round: replay its draws
            for _ in range(int(state["step"])):
                expert.agents(config.batch_size)
        step, env_steps = int(state["step"]), int(state["env_steps"])
        result.history = [dict(row) for row in state["history"]]
        result.start_step = step
        wall_before = float(result.history[-1]["wall_s"]) if result.history else 0.0
    writer, handle = _open_csv(config.log_csv, result.history)
    reporter = tracking.make_reporter(config.report_to, config.report_dir, config=asdict(config))
    try:
        while step < config.iterations:
            if config.algo in RL_ALGOS:
                traces, loss, kept = _rl_step(config, policy, ref, optimizer, envs, rng, gen)
            else:
                traces, loss, kept = _sft_round(config, policy, optimizer, venv, rng, gen, expert)
            step += 1
            env_steps += sum(len(t.actions) for t in traces)
            row = {"step": step, **batch_stats(traces), "loss": loss, "kept": kept, "env_steps": env_steps,
                   "wall_s": wall_before + time.perf_counter() - start}
            if config.eval_every and (step % config.eval_every == 0 or step == config.iterations):
                ev = batch_stats(evaluate_policy(policy, env_kwargs, problems=config.eval_problems))
                row.update(eval_return=ev["return"], eval_accuracy=ev["accuracy"], eval_episodes=ev["episodes"])
            result.history.append(row)
            if writer:
                writer.writerow(row)
                handle.flush()
            reporter.log({**row, **tracking.sim_metrics(traces, policy)}, step)
            if log:
                log(row)
            if config.checkpoint and (step == config.iterations or (config.save_every and step % config.save_every == 0)):
                state = _trainer_state(step, env_steps, optimizer, rng, gen, result.history)
                policy.save(config.checkpoint, extra={"train_config": asdict(config), STATE_KEY: state})
    finally:
        reporter.close()
        if handle:
            handle.close()
    result.wall_s = time.perf_counter() - start
    return result


def check_output_path(name: str, path: str) -> Path:
    """`path` as a file the trainer can write, checked before training (a run must not be lost at its
    end): not a folder, under a folder that exists or can be created, where a file can be written.
    Raises ConfigError naming the option, the path and what is wrong; creates nothing."""
    option = "--" + name.replace("_", "-")
    target = Path(path)
    if str(path).endswith(("/", os.sep)) or target.is_dir():
        raise ConfigError(f"{option} {path!r} is a folder; expected a file path such as {str(Path(path) / 'file')!r}.")
    if target.exists() and not os.access(target, os.W_OK):
        raise ConfigError(f"{option} {path!r} exists and is not writable.")
    folder = target.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{option} {path!r} cannot be created: {str(folder)!r} is a file, not a folder.")
    try:  # a real write: os.access cannot see read-only file systems (nor does it refuse root)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".ttc-gym-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"{option} {path!r} cannot be written: {str(folder)!r}: {err.strerror or err}.") from None
    return target


def _make_checked_envs(n: int, env_kwargs: dict) -> list:
    """`make_envs(n, **env_kwargs)`, a rejected argument as a one-line ConfigError."""
    try:
        return make_envs(n, **env_kwargs)
    except (TypeError, ValueError) as err:
        message = str(err).split(" was raised from the environment creator")[0]  # gymnasium's suffix
        raise ConfigError(f"TTC-Sim-v0 rejected its arguments (--env-kwargs and the env options): {message}") from None


def _saved_run(config: SimTrainConfig) -> dict | None:
    """The checkpoint `config.resume` continues (its contents), or None to start afresh; refuses to
    overwrite an existing checkpoint without --resume, and a checkpoint of another run."""
    path = Path(config.checkpoint) if config.checkpoint else None
    if path is None or not path.exists():
        return None
    if not config.resume:
        raise ConfigError(f"--checkpoint {str(path)!r} already exists; pass --resume to continue that run, "
                          f"or choose another path.")
    try:
        saved = SimPolicy.read_checkpoint(path)
    except ValueError as err:
        raise ConfigError(f"cannot resume: {err}") from None
    extra = saved.get("extra") or {}
    if STATE_KEY not in extra or not isinstance(extra.get("train_config"), dict):
        raise ConfigError(f"cannot resume: {path} holds a policy but not the trainer's state (it was not "
                          f"saved by this trainer); choose another --checkpoint.")
    now = asdict(config)
    differ = sorted(k for k in now.keys() | extra["train_config"].keys()
                    if k not in RESUME_MAY_CHANGE and now.get(k) != extra["train_config"].get(k))
    if differ:
        was = ", ".join(f"{k}={extra['train_config'].get(k)!r} (now {now.get(k)!r})" for k in differ)
        raise ConfigError(f"cannot resume: {path} was saved by a run with other settings: {was}.")
    done = int(extra[STATE_KEY]["step"])
    if done > config.iterations:
        raise ConfigError(f"cannot resume: {path} is at iteration {done}, beyond --iterations {config.iterations}.")
    return saved


def _trainer_state(step: int, env_steps: int, optimizer, rng, gen, history) -> dict:
    """What a resumed run needs besides the weights: the iteration, the optimizer, both random
    generators' states and the log rows so far."""
    return {"step": step, "env_steps": env_steps, "optimizer": optimizer.state_dict(),
            "rng": rng.bit_generator.state, "gen": gen.get_state(), "history": [dict(row) for row in history]}


class _VectorEnvCache:
    """Vector envs by size, for `rollout_difficulty_groups`; knows the env's level distribution."""

    def __init__(self, env_kwargs: dict, env):
        self.env_kwargs, self.cache = env_kwargs, {}
        starts = env.unwrapped.model.initial_distribution()  # the simulator's public model
        self.levels = np.array([obs[1] for _, obs in starts])
        self.probs = np.array([p for p, _ in starts]) / sum(p for p, _ in starts)

    def __call__(self, n: int):
        if n not in self.cache:
            self.cache[n] = make_vector_env(n, **self.env_kwargs)
        return self.cache[n]


def _rl_step(config, policy, ref, optimizer, envs, rng, gen):
    G, P = config.group_size, config.problems_per_batch
    if isinstance(envs, _VectorEnvCache):
        levels = rng.choice(envs.levels, size=P, p=envs.probs)
        traces = rollout_difficulty_groups(envs, PolicyActor(policy, gen), levels, G, int(rng.integers(0, 2**30)))
    else:
        seeds = np.repeat(rng.integers(0, 2**30, size=P), G)
        noise = rng.integers(0, 2**62, size=config.batch_size)
        traces = rollout(envs, PolicyActor(policy, gen), seeds, groups=np.repeat(np.arange(P), G), noise_seeds=noise)
    trajectories = to_trajectories(traces, policy, ref)
    advantages = alg.advantages(
        config.algo, trajectories, alpha=config.alpha, mrt_form=config.mrt_form, cost_coef=config.cost_coef,
        eps=config.adv_eps, scale=config.adv_scale,
    )
    loss = alg.pg_loss(trajectories, advantages, kl_coef=config.kl_coef)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return traces, float(loss.detach()), 1.0


def _sft_round(config, policy, optimizer, venv, rng, gen, expert):
    actor = AgentsActor(expert.agents(config.batch_size)) if expert else PolicyActor(policy, gen)
    traces = rollout_vector(venv, actor, int(rng.integers(0, 2**30)))
    candidates = to_trajectories(traces)
    for c, t in zip(candidates, traces):  # mrt-star compares the correct traces of a group: here, of one level
        c.group = t.difficulty
    chosen = {id(c) for c in alg.select(config.algo, candidates)}
    kept = [t for t, c in zip(traces, candidates) if id(c) in chosen]
    loss = float("nan")
    if kept:
        # sft_loss over the kept trajectories is nll_loss over all their actions: one forward pass.
        obs = np.concatenate([t.obs for t in kept])
        actions = np.concatenate([t.actions for t in kept])
        for _ in range(config.sft_steps):
            batch_loss = alg.nll_loss(policy.log_prob(obs, actions))
            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()
            loss = float(batch_loss.detach())
    return traces, loss, len(kept) / len(traces)


def _open_csv(path: str | None, rows: Sequence[dict] = ()):
    """The log CSV, rewritten with `rows` (those of the run being resumed), or (None, None)."""
    if not path:
        return None, None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w", newline="")  # noqa: SIM115  (closed by train's finally)
    writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS, restval="")
    writer.writeheader()
    writer.writerows(rows)
    handle.flush()
    return writer, handle


def main(argv: Sequence[str] | None = None, prog: str = "python -m ttc_gym.agents.training.sim_train") -> int:
    try:
        config = parse_config(SimTrainConfig, argv, prog=prog)
    except (TypeError, ValueError) as err:  # an unparseable or inconsistent config: say so, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # a small MLP: threads cost more than they bring
    every = max(1, config.iterations // 10)

    def show(row: dict) -> None:
        if row["step"] % every == 0 or row["step"] == config.iterations:
            print(f"step {row['step']:4d}  return {row['return']:.3f}  accuracy {row['accuracy']:.3f}  "
                  f"episodes {row['episodes']:.2f}  progress {row['progress']:+.3f}  loss {row['loss']:.4f}  "
                  f"kept {row['kept']:.2f}  {row['wall_s']:.1f}s", flush=True)

    try:
        result = train(config, log=show)
    except ConfigError as err:  # bad env arguments, output paths or checkpoint to resume: nothing trained
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. the disk filled up mid-run
        saved = (f"the checkpoint {config.checkpoint} holds the last saved iteration: rerun with --resume to "
                 f"continue" if config.checkpoint and Path(config.checkpoint).is_file() else "no checkpoint was saved")
        print(f"error: training stopped: {err}; {saved}.", file=sys.stderr)
        return 1
    if result.start_step:
        print(f"resumed from iteration {result.start_step} of {config.checkpoint}")
    final = batch_stats(evaluate_policy(result.policy, config.make_env_kwargs(), problems=2000))
    before = batch_stats(evaluate_policy(result.initial_policy, config.make_env_kwargs(), problems=2000))
    print(f"evaluation on 2000 problems: return {before['return']:.3f} -> {final['return']:.3f}, "
          f"accuracy {before['accuracy']:.3f} -> {final['accuracy']:.3f}, "
          f"episodes {before['episodes']:.2f} -> {final['episodes']:.2f}  ({result.wall_s:.1f}s training)")
    if config.checkpoint:
        print(f"checkpoint: {config.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
