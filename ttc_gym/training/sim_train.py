"""Trainers on TTC-Sim-v0: GRPO, MRT, STaR, MRT-STaR and plain SFT, over the Gymnasium API.

    python -m ttc_gym.training.sim_train --algo mrt --iterations 100 --log-csv runs/mrt.csv
    python -m ttc_gym.training.sim_train --algo mrt --iterations 100 --checkpoint runs/mrt.pt \
        --save-every 10 --log-csv runs/mrt.csv        # killed? the same command with --resume continues
    python -m ttc_gym.training.sim_train --help

Read top to bottom: `train` builds the envs and the policy, then each iteration either
* (policy-gradient algorithms, `algorithms.RL_ALGOS`: grpo, mrt, mrt-rtg) rolls out G rollouts of
  batch_size / G problems (`sim_rollout` explains how the G rollouts share a problem,
  `--group-by difficulty` how they can share only its level, faster), computes advantages with
  `algorithms.advantages` and takes one policy-gradient step (on-policy, no ratio clipping; the
  optional KL term is to the initial policy; `--entropy-coef` weighs PPO's entropy bonus on the
  trained actions; `--max-grad-norm` clips the gradient), or
* (SFT algorithms, `algorithms.SFT_ALGOS`: star, mrt-star, ...) rolls out batch_size problems with the
  trace source (the current policy or the heterogeneous expert), keeps the traces `algorithms.select`
  accepts (mrt-star compares the traces of one difficulty level) and takes `sft_steps`
  maximum-likelihood steps on them (expert iteration: the current policy is fine-tuned further).
Every output path and the env arguments are checked before the first iteration. The checkpoint
(`--checkpoint`, written every `--save-every` iterations and at the end, atomically) is a
`SimPolicy` file whose extra entry holds the trainer's state (iteration, optimizer, both generators,
the log rows): `--resume` continues from it exactly as the uninterrupted run would have gone on.
`--report-to tensorboard|wandb` (`tracking`) also logs each row (with the policy's action entropy),
the mean cost, tokens and J curve of the iteration's rollouts under `--report-dir`.
"""

from __future__ import annotations

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
from ttc_gym.training import algorithms as alg
from ttc_gym.training import tracking
from ttc_gym.training.config_cli import ConfigError, parse_config
from ttc_gym.training.experts import HeterogeneousExpert
from ttc_gym.training.loop import RunLog, branch_summary, run_iterations
from ttc_gym.training.sim_branches import collect_branches
from ttc_gym.training.sim_config import SimTrainConfig
from ttc_gym.training.sim_policy import SimPolicy
from ttc_gym.training.sim_rollout import (
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
    trained_steps,
)

LOG_FIELDS = (
    "step", "return", "accuracy", "episodes", "progress", "loss", "entropy", "kept", "env_steps", "wall_s",
    "eval_return", "eval_accuracy", "eval_episodes",
    "branches_continue", "branches_terminate", "prefix_episodes", "accuracy_continue", "accuracy_terminate",
)
EVAL_SEED = 10**9  # evaluation problems use seeds EVAL_SEED + i; training draws seeds below 2**30
STATE_KEY = "trainer_state"  # the checkpoint's extra entry that --resume reads
RESUME_MAY_CHANGE = frozenset({"iterations", "save_every", "resume", "checkpoint", "log_csv", "report_to", "report_dir"})
#: What a checkpoint saved before a field existed ran with (resuming it needs these values again).
FIELDS_BEFORE_THEY_EXISTED = {"entropy_coef": 0.0, "max_grad_norm": 0.0}


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
    """Train one policy as `config` says (`loop.run_iterations`); `log` (optional) receives each new
    history row.

    Before the first iteration: the env arguments are checked (by building the envs), the output
    paths too (`check_output_path`), and an existing `config.checkpoint` is resumed (`config.resume`)
    or refused. Every problem raises ConfigError (a ValueError) with a one-line message. The
    checkpoint is saved (atomically) every `save_every` iterations and at the end, with the trainer's
    state (`_trainer_state`), so that a resumed run equals an uninterrupted one."""
    start = time.perf_counter()
    parts = SimParts(config)
    saved = _saved_run(config)
    result = TrainResult(policy=parts.policy, initial_policy=parts.initial, config=config)
    wall_before = 0.0
    if saved is not None:
        result.history, result.start_step = parts.restore(saved)
        wall_before = float(result.history[-1]["wall_s"]) if result.history else 0.0
    reporter = tracking.make_reporter(config.report_to, config.report_dir, config=asdict(config))
    with RunLog(config.log_csv, LOG_FIELDS, result.history, reporter=reporter) as run_log:
        run_iterations(config, parts, step=result.start_step, history=result.history, run_log=run_log, log=log,
                       wall_before=wall_before)
    result.wall_s = time.perf_counter() - start
    return result


class SimParts:
    """The TTC-Sim-v0 trainer's parts of the training loop (`loop.TrainerParts`): rollouts of the
    softmax policy on single envs (groups of one problem) or vector envs, one batched forward pass
    for the log-probabilities, Adam steps, the checkpoint with the trainer's state."""

    def __init__(self, config: SimTrainConfig):
        self.config, self.env_kwargs = config, config.make_env_kwargs()
        # Groups of the same problem (and mrt's branches of one prefix) need single envs; everything
        # else runs on vector envs.
        same_problem = config.is_rl and (config.group_by == "problem" or config.branches)
        count = config.problems_per_iter * (config.group_size + config.terminations) if config.branches else config.batch_size
        envs = _make_checked_envs(count if same_problem else 1, self.env_kwargs)
        for name in ("checkpoint", "log_csv"):
            if getattr(config, name):
                check_output_path(name, getattr(config, name))
        self.policy = SimPolicy.for_space(envs[0].observation_space, envs[0].action_space, hidden=config.hidden,
                                          seed=config.seed)
        if config.init_policy:
            _load_init_policy(self.policy, config.init_policy)
        self.envs = _VectorEnvCache(self.env_kwargs, envs[0]) if config.is_rl and not same_problem else envs
        self.initial = self.policy.clone()
        self.ref = self.initial if config.kl_coef > 0 else None
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr)
        self.rng = np.random.default_rng([config.seed, 7])
        self.gen = torch.Generator().manual_seed(config.seed + 1)
        # mrt's stale prefix policy: a frozen copy, refreshed every stale_every iterations (collect).
        self.stale = self.policy.clone() if config.branches and config.prefix_source == "stale" else None
        self.expert = None
        if config.trace_source == "expert" or (config.branches and config.prefix_source == "expert"):
            model = envs[0].unwrapped.model  # the simulator's public model
            self.expert = HeterogeneousExpert(config.max_episodes, seed=config.seed, spread=config.expert_spread,
                                              model=model, mixture=config.expert_mixture,
                                              strong_share=config.expert_strong_share)
        self.venv = None if config.is_rl else make_vector_env(config.batch_size, **self.env_kwargs)
        self.env_steps = 0

    def restore(self, saved: dict) -> tuple[list[dict], int]:
        """Continue a saved run: weights, optimizer, both generators, the expert's draws; returns its
        log rows and the iteration it had reached."""
        state = saved["extra"][STATE_KEY]
        self.policy.load_state_dict(saved["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.gen.set_state(state["gen"])
        if self.expert is not None:  # the expert draws agents every round: replay its draws
            for _ in range(int(state["step"])):
                self.expert.agents(self._expert_draws())
        if self.stale is not None:
            self.stale.load_state_dict(state["stale"])
        self.env_steps = int(state["env_steps"])
        return [dict(row) for row in state["history"]], int(state["step"])

    def _expert_draws(self) -> int:
        """How many expert agents a round draws: one per prefix (mrt), else one per rollout."""
        return self.config.problems_per_iter if self.config.branches else self.config.batch_size

    def _prefix_actor(self, iteration: int):
        """Who writes mrt's prefixes this iteration (`prefix_source`); the stale copy is refreshed
        with the policy's weights every `stale_every` iterations."""
        source = self.config.prefix_source
        if source == "expert":
            return AgentsActor(self.expert.agents(self._expert_draws()))
        if source == "current":
            return PolicyActor(self.policy, self.gen)
        if iteration % self.config.stale_every == 0:
            self.stale.load_state_dict(self.policy.state_dict())
        return PolicyActor(self.stale, self.gen)

    def collect(self, iteration: int) -> list[SimTrace]:
        config, rng = self.config, self.rng
        if config.branches:
            return collect_branches(self.envs, self._prefix_actor(iteration), PolicyActor(self.policy, self.gen), rng,
                                    problems=config.problems_per_iter, continues=config.group_size,
                                    terminations=config.terminations, max_episodes=config.max_episodes)
        if not config.is_rl:
            actor = AgentsActor(self.expert.agents(config.batch_size)) if self.expert else PolicyActor(self.policy, self.gen)
            return rollout_vector(self.venv, actor, int(rng.integers(0, 2**30)))
        G, P = config.group_size, config.problems_per_iter
        if isinstance(self.envs, _VectorEnvCache):
            levels = rng.choice(self.envs.levels, size=P, p=self.envs.probs)
            return rollout_difficulty_groups(self.envs, PolicyActor(self.policy, self.gen), levels, G,
                                             int(rng.integers(0, 2**30)))
        seeds = np.repeat(rng.integers(0, 2**30, size=P), G)
        noise = rng.integers(0, 2**62, size=config.batch_size)
        return rollout(self.envs, PolicyActor(self.policy, self.gen), seeds, groups=np.repeat(np.arange(P), G),
                       noise_seeds=noise)

    def trajectories(self, rollouts):
        if self.config.is_rl:
            return to_trajectories(rollouts, self.policy, self.ref)
        candidates = to_trajectories(rollouts)
        for c, t in zip(candidates, rollouts):  # mrt-star compares the correct traces of a group: here, of one level
            c.group = t.difficulty
        return candidates

    def policy_gradient_step(self, rollouts, trajectories, advantages) -> dict[str, float]:
        # The entropy bonus covers the rows the loss trains (trained_steps: not mrt's forced answers).
        coef = self.config.entropy_coef
        obs, _ = trained_steps(rollouts)
        with torch.set_grad_enabled(coef > 0):
            entropy = alg.mean_entropy(self.policy.log_probs_all(obs))
        loss = alg.pg_loss(trajectories, advantages, kl_coef=self.config.kl_coef, entropy=entropy, entropy_coef=coef)
        return {"loss": self._step(loss), "entropy": float(entropy.detach())}

    def sft_step(self, rollouts, trajectories) -> dict[str, float]:
        # sft_loss over the kept trajectories is nll_loss over all their actions: one forward pass.
        obs = np.concatenate([t.obs for t in rollouts])
        actions = torch.as_tensor(np.concatenate([t.actions for t in rollouts]), dtype=torch.int64)
        log_probs = self.policy.log_probs_all(obs)
        loss = alg.nll_loss(log_probs.gather(1, actions[:, None]).squeeze(1))
        return {"loss": self._step(loss), "entropy": float(alg.mean_entropy(log_probs.detach()))}

    def _step(self, loss: torch.Tensor) -> float:
        self.optimizer.zero_grad()
        loss.backward()
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        return float(loss.detach())

    def after_update(self) -> None:
        pass

    def stats(self, rollouts, step: int) -> dict[str, float]:
        self.env_steps += sum(len(t.actions) for t in rollouts)
        if self.config.branches:  # the continuing branches are the policy's own rollouts
            row = {**batch_stats([t for t in rollouts if t.branch == "continue"] or rollouts),
                   **branch_summary(rollouts, "accuracy"), "env_steps": self.env_steps}
        else:
            row = {**batch_stats(rollouts), "env_steps": self.env_steps}
        config = self.config
        if config.eval_every and (step % config.eval_every == 0 or step == config.iterations):
            ev = batch_stats(evaluate_policy(self.policy, self.env_kwargs, problems=config.eval_problems))
            row.update(eval_return=ev["return"], eval_accuracy=ev["accuracy"], eval_episodes=ev["episodes"])
        return row

    def metrics(self, rollouts) -> dict[str, float]:
        return tracking.sim_metrics(rollouts)

    def save(self, step: int, history) -> None:
        if self.config.checkpoint:
            state = _trainer_state(step, self.env_steps, self.optimizer, self.rng, self.gen, history)
            if self.stale is not None:
                state["stale"] = self.stale.state_dict()
            self.policy.save(self.config.checkpoint, extra={"train_config": asdict(self.config), STATE_KEY: state})


def _load_init_policy(policy: SimPolicy, path: str) -> None:
    """Copy the weights of the SimPolicy file `path` into `policy`, refusing a file of another shape
    (another env's observation space, another width) with a message that says both."""
    if not Path(path).is_file():
        raise ConfigError(f"init_policy {path!r} does not exist (expected a SimPolicy file written with --checkpoint).")
    blob = SimPolicy.read_checkpoint(path)
    if blob["config"]["caps"] != policy.config()["caps"] or blob["config"]["num_actions"] != policy.num_actions \
            or blob["config"]["hidden"] != policy.hidden:
        raise ConfigError(f"init_policy {path!r} is a policy for observation sizes {blob['config']['caps']} and hidden "
                          f"width {blob['config']['hidden']}; this run's is {policy.config()['caps']} and {policy.hidden}: "
                          f"train it on the same env arguments.")
    policy.load_state_dict(blob["state_dict"])


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
    now, then = asdict(config), {**FIELDS_BEFORE_THEY_EXISTED, **extra["train_config"]}
    differ = sorted(k for k in now.keys() | then.keys() if k not in RESUME_MAY_CHANGE and now.get(k) != then.get(k))
    if differ:
        was = ", ".join(f"{k}={then.get(k)!r} (now {now.get(k)!r})" for k in differ)
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


def main(argv: Sequence[str] | None = None, prog: str = "python -m ttc_gym.training.sim_train") -> int:
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
                  f"entropy {row.get('entropy', float('nan')):.3f}  "
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
