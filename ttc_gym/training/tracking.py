"""Experiment tracking for the trainers: ``--report-to tensorboard|wandb|none`` (TRL's ``report_to``).

`make_reporter(report_to, log_dir, ...)` gives a `Reporter` with ``log(metrics, step)`` and
``close()``; both trainers hand it to their `loop.RunLog` (the one place a log row is written), which
sends it each new row and the trainer's `metrics` of the iteration's rollouts. What is logged: every
finite number of the row under its own name (the LLM trainer: reward, outcome, progress, cost, J_0,
J_final, episodes, tokens, loss, kl, entropy, kept; the sim trainer: return, accuracy, episodes,
progress, loss, entropy (the policy's action entropy on the actions of its update, before it), kept,
env_steps and the eval figures, plus `sim_metrics`' cost and tokens) and ``J_curve/episode_<j>``
(`j_curve_metrics`: the mean J after 0, 1, ... episodes).

- ``tensorboard``: `torch.utils.tensorboard.SummaryWriter` event files under ``<log_dir>/tensorboard``
  (read them with TensorBoard, or its ``EventAccumulator``).
- ``wandb``: a Weights & Biases run in ``<log_dir>/wandb``, **offline** unless the environment's
  ``WANDB_MODE`` says otherwise (sync it later with ``wandb sync``); the trainer's config is the
  run's config.
- ``none``: nothing beyond the trainer's CSV. ``auto`` (the LLM trainer's default): TensorBoard when
  it is installed, else none — the trainer's behaviour before this option existed.

Several targets may be given, comma-separated (``tensorboard,wandb``). TensorBoard and W&B come
with the extra ``ttc-gym[tracking]``; asking for one that is not installed raises ImportError
naming it, before any training.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ttc_gym.optional import is_available, require
from ttc_gym.validation import did_you_mean

TARGETS = ("tensorboard", "wandb", "none", "auto")
EXTRA = "tracking"
REPORT_TO_HELP = (
    "experiment tracking: tensorboard, wandb (offline unless WANDB_MODE is set), none, or auto "
    "(tensorboard when installed); comma-separate several. pip install 'ttc-gym[tracking]'"
)


class Reporter(Protocol):
    def log(self, metrics: Mapping[str, Any], step: int) -> None: ...

    def close(self) -> None: ...


def parse_report_to(value: str | Sequence[str]) -> tuple[str, ...]:
    """The targets of a ``--report-to`` value (checked; "auto" resolved; "none" dropped)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(item).strip().lower() for item in items if str(item).strip()]
    for item in items:
        if item not in TARGETS:
            raise ValueError(f"Unknown report_to target {item!r}.{did_you_mean(item, TARGETS)} "
                             f"Expected tensorboard, wandb, none or auto (comma-separated).")
    if "none" in items and len(set(items)) > 1:
        raise ValueError(f"report_to 'none' cannot be combined with other targets, got {value!r}.")
    found: list[str] = []
    for item in items:
        if item == "auto":
            item = "tensorboard" if is_available("tensorboard") else "none"
        if item != "none" and item not in found:
            found.append(item)
    return tuple(found)


def check_report_to(value: str | Sequence[str]) -> tuple[str, ...]:
    """`parse_report_to`, and each target's library importable (ImportError naming the extra)."""
    targets = parse_report_to(value)
    if "tensorboard" in targets:
        require("tensorboard", EXTRA, "--report-to tensorboard")
    if "wandb" in targets:
        require("wandb", EXTRA, "--report-to wandb")
    return targets


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite real numbers of `metrics` (bools, NaN, text and the step itself left out)."""
    out = {}
    for key, value in metrics.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            continue
        if math.isfinite(float(value)):
            out[key] = float(value)
    return out


def j_curve_metrics(curves: Sequence[Sequence[float]]) -> dict[str, float]:
    """``J_curve/episode_<j>``: the mean J after j episodes over the curves that reach j."""
    longest = max((len(c) for c in curves), default=0)
    return {f"J_curve/episode_{j}": float(np.mean([c[j] for c in curves if len(c) > j])) for j in range(longest)}


def sim_metrics(traces: Sequence[Any]) -> dict[str, float]:
    """What the sim trainer's CSV row lacks: mean cost and tokens per rollout, and the J curve (the
    row has the policy's action entropy)."""
    return {
        "cost": float(np.mean([float(np.sum(t.cost)) for t in traces])) if traces else float("nan"),
        "tokens": float(np.mean([t.token_curve[-1] for t in traces])) if traces else float("nan"),
        **j_curve_metrics([t.j_curve for t in traces]),
    }


class TensorBoardReporter:
    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir) / "tensorboard"
        self.writer = SummaryWriter(str(self.log_dir))

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for key, value in scalars(metrics).items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbReporter:
    def __init__(self, log_dir: Path, *, run_name: str | None = None, config: Mapping[str, Any] | None = None,
                 project: str = "ttc-gym") -> None:
        wandb = require("wandb", EXTRA, "--report-to wandb")
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        mode = os.environ.get("WANDB_MODE", "offline")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", project), name=run_name, dir=str(self.log_dir),
                              mode=mode, config=dict(config or {}), reinit="create_new")

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        self.run.log(scalars(metrics), step=int(step))

    def close(self) -> None:
        self.run.finish()


class MultiReporter:
    """Sends each log to every reporter (none: a no-op)."""

    def __init__(self, reporters: Sequence[Reporter] = ()) -> None:
        self.reporters = list(reporters)

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        for reporter in self.reporters:
            reporter.log(metrics, step)

    def close(self) -> None:
        for reporter in self.reporters:
            reporter.close()


def make_reporter(report_to: str | Sequence[str], log_dir: str | os.PathLike[str], *, run_name: str | None = None,
                  config: Mapping[str, Any] | None = None) -> MultiReporter:
    """A reporter for the targets of `report_to` writing under `log_dir` (see the module docstring)."""
    reporters: list[Reporter] = []
    for target in check_report_to(report_to):
        if target == "tensorboard":
            reporters.append(TensorBoardReporter(Path(log_dir)))
        else:
            reporters.append(WandbReporter(Path(log_dir), run_name=run_name, config=config))
    return MultiReporter(reporters)
