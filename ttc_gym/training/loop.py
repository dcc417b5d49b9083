"""The one training loop both trainers run (TTC-Sim-v0's `sim_train`, the LLM's `llm_train`), read
top to bottom in `run_iterations`; what differs between them — how rollouts are collected, how a
loss step is taken, what a checkpoint holds — is the `TrainerParts` they plug in.

Each iteration:
1. `parts.collect(iteration)`: the iteration's rollouts (the plug point: the simulator's vector
   envs, the LLM's vectorized TTC-Math-v0, Ray workers);
2. `parts.trajectories(rollouts)`: one `algorithms.Trajectory` per rollout;
3. a policy-gradient algorithm (`AlgoConfig.is_rl`) takes one step on the advantages the config's
   algorithm gives (`AlgoConfig.advantages`); an SFT algorithm keeps the rollouts its selection
   accepts (`AlgoConfig.select`) and takes `sft_steps` steps on them (none if it kept nothing);
4. `parts.after_update()` (e.g. the new weights pushed to the engine that samples);
5. one log row (`parts.stats`, the loss, the kept fraction, the wall time) to `RunLog` and `log`;
   with a `--report-to` target on (`AlgoConfig.report_to`, `tracking`), the row and `parts.metrics`
   (the J curve and what the row lacks) go to TensorBoard / W&B too;
6. a checkpoint every `save_every` iterations and at the end (`parts.save`).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ttc_gym.training import algorithms as alg
from ttc_gym.training import tracking
from ttc_gym.training.algo_config import AlgoConfig


class TrainerParts(Protocol):
    """What a trainer plugs into `run_iterations`."""

    def collect(self, iteration: int) -> list[Any]:
        """The rollouts of `iteration` (with the current policy, or the trace source's)."""

    def trajectories(self, rollouts: Sequence[Any]) -> list[alg.Trajectory]:
        """One `Trajectory` per rollout, in order (log-probabilities optional)."""

    def policy_gradient_step(self, rollouts: Sequence[Any], trajectories: Sequence[alg.Trajectory],
                             advantages: Sequence[Any]) -> dict[str, float]:
        """One optimizer step on `algorithms.pg_loss`; returns {"loss": ..., and anything else to log}."""

    def sft_step(self, rollouts: Sequence[Any], trajectories: Sequence[alg.Trajectory]) -> dict[str, float]:
        """One optimizer step of `algorithms.sft_loss` on the kept rollouts; returns {"loss": ...}."""

    def after_update(self) -> None:
        """Whatever follows an update (weights pushed to a sampling engine, ...)."""

    def stats(self, rollouts: Sequence[Any], step: int) -> dict[str, float]:
        """The log row's statistics of the batch (and an evaluation, when one is due at `step`)."""

    def save(self, step: int, history: Sequence[dict]) -> None:
        """Write the checkpoint of `step` (`history`: every log row so far)."""

    def metrics(self, rollouts: Sequence[Any]) -> dict[str, float]:
        """What experiment tracking logs beside the row (`tracking.j_curve_metrics`, ...); called only
        when a `--report-to` target is on."""


def update(config: AlgoConfig, parts: TrainerParts, rollouts: Sequence[Any]) -> dict[str, float]:
    """Step 3 of the loop: the algorithm's update on one iteration's rollouts; returns the loss (and
    what the step logs) and the fraction of rollouts kept (1 for a policy-gradient algorithm)."""
    trajectories = parts.trajectories(rollouts)
    if config.is_rl:
        return {**parts.policy_gradient_step(rollouts, trajectories, config.advantages(trajectories)), "kept": 1.0}
    chosen = {id(t) for t in config.select(trajectories)}
    kept = [(r, t) for r, t in zip(rollouts, trajectories) if id(t) in chosen]
    result: dict[str, float] = {"loss": float("nan")}
    for _ in range(config.sft_steps if kept else 0):
        result = parts.sft_step([r for r, _ in kept], [t for _, t in kept])
    return {**result, "kept": len(kept) / len(rollouts) if len(rollouts) else float("nan")}


def run_iterations(config: AlgoConfig, parts: TrainerParts, *, step: int, history: list[dict], run_log: RunLog,
                   log: Callable[[dict], None] | None = None, wall_before: float = 0.0) -> int:
    """Iterate from `step` to `config.iterations` (the numbered steps of the module docstring);
    appends each log row to `history`. Returns the last step."""
    start = time.perf_counter()
    while step < config.iterations:
        rollouts = parts.collect(step)
        result = update(config, parts, rollouts)
        parts.after_update()
        step += 1
        row = {"step": step, **parts.stats(rollouts, step), **result,
               "wall_s": wall_before + time.perf_counter() - start}
        history.append(row)
        run_log.write(row, parts.metrics(rollouts) if run_log.reporting else None)
        if log:
            log(row)
        if step == config.iterations or (config.save_every and step % config.save_every == 0):
            parts.save(step, history)
    return step


def branch_summary(rollouts: Sequence[Any], outcome_name: str) -> dict[str, float]:
    """What an iteration's `mrt` branches were, for the log row: how many continued and terminated,
    the prefixes' mean length, and each kind's mean outcome (columns `<outcome_name>_continue` /
    `_terminate`, after the trainer's own outcome column); {} when no rollout is a branch. A rollout
    has `branch`, `group`, `prefix_episodes` and `outcome` (both trainers' records do)."""
    cont = [r.outcome for r in rollouts if r.branch == "continue"]
    stop = [r.outcome for r in rollouts if r.branch == "terminate"]
    if not cont and not stop:
        return {}
    prefixes = {r.group: r.prefix_episodes for r in rollouts}
    return {"branches_continue": float(len(cont)), "branches_terminate": float(len(stop)),
            "prefix_episodes": float(np.mean(list(prefixes.values()))),
            f"{outcome_name}_continue": float(np.mean(cont)) if cont else float("nan"),
            f"{outcome_name}_terminate": float(np.mean(stop)) if stop else float("nan")}


def all_failed_groups(rollouts: Sequence[Any]) -> float:
    """Share of an iteration's groups (the rollouts of one problem, or of one `mrt` prefix) in which
    every rollout failed (outcome <= 0): groups without an outcome signal, where a group-normalized
    outcome advantage is zero and only a dense (progress) term can move the policy. A rollout has
    `group` and `outcome`; NaN for no rollouts."""
    failed: dict[Any, bool] = {}
    for r in rollouts:
        failed[r.group] = failed.get(r.group, True) and not r.outcome > 0
    return float(np.mean(list(failed.values()))) if failed else float("nan")


class RunLog:
    """The run's log: one CSV row per iteration (the rows of a resumed run first), and each new row
    (with the extra metrics `write` is given) to the experiment trackers of `reporter`
    (`tracking.make_reporter`: TensorBoard, W&B or none)."""

    def __init__(self, path: str | Path | None, fields: Sequence[str], rows: Sequence[dict] = (),
                 reporter: tracking.MultiReporter | None = None):
        self.fields, self.handle, self.writer = tuple(fields), None, None
        self.reporter = reporter if reporter is not None else tracking.MultiReporter()
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(path, "w", newline="")  # noqa: SIM115  (closed by close())
            self.writer = csv.DictWriter(self.handle, fieldnames=self.fields, restval="", extrasaction="ignore")
            self.writer.writeheader()
            self.writer.writerows(rows)
            self.handle.flush()

    @property
    def reporting(self) -> bool:
        """Whether any experiment tracker is on (the trainers compute the extra metrics only then)."""
        return bool(self.reporter.reporters)

    def write(self, row: dict, metrics: dict | None = None) -> None:
        if self.writer:
            self.writer.writerow(row)
            self.handle.flush()
        if self.reporting:
            self.reporter.log({**{k: row[k] for k in self.fields[1:] if k in row}, **(metrics or {})}, row["step"])

    def close(self) -> None:
        try:
            if self.handle:
                self.handle.close()
        finally:
            self.reporter.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
