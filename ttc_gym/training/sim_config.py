"""The configuration of the TTC-Sim-v0 trainers: the shared `AlgoConfig` plus what only the simulator
trainer has, help text on every field, validated before anything is built (it doubles as the command
line of `ttc_gym.training.sim_train`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ttc_gym.training import algorithms as alg
from ttc_gym.training.algo_config import AlgoConfig, override
from ttc_gym.training.experts import MIXTURES
from ttc_gym.validation import check_float, check_int, unknown_name_error

TRACE_SOURCES = ("policy", "expert")
#: The entropy bonus of the policy-gradient algorithms when none is given (SFT algorithms: 0). Chosen
#: by examples/studies/sim_entropy_sweep.py on a tuning setting that is none of the study's
#: (examples/studies/sim_entropy_sweep.md): with it no GRPO seed collapsed there, at lr 0.02 or 0.005.
#: It was 0 (no bonus) before: --entropy-coef 0 reproduces earlier runs.
DEFAULT_ENTROPY_COEF = 0.03
GROUP_BY = ("problem", "difficulty")


def _help(text: str, **more) -> dict:
    return {"help": text, **more}


@dataclass
class SimTrainConfig(AlgoConfig):
    """Train a softmax policy on TTC-Sim-v0 with GRPO, MRT, STaR, MRT-STaR or plain SFT."""

    # The simulator's small MLP: more, larger batches, a larger step (AlgoConfig's help texts).
    iterations: int = override("iterations", 100)
    group_size: int = override("group_size", 8)
    batch_size: int | None = override("batch_size", 256)
    sft_steps: int = override("sft_steps", 10)
    lr: float = override("lr", 0.01)
    max_episodes: int = override("max_episodes", 10)
    group_by: str = field(default="problem", metadata=_help(
        "what the G rollouts of a group share: 'problem' (same reset seed: same level and same hidden "
        "strategies, fresh env noise; single envs) or 'difficulty' (same level, different problems; "
        "vector envs, several times faster); mrt-star's groups here: the traces of one difficulty level"))
    entropy_coef: float | None = field(default=None, metadata=_help(
        "weight of the entropy bonus of the policy-gradient algorithms: their loss subtracts entropy_coef x the "
        "policy's mean action entropy (nats) over the observations it acted on (the actions with gradient: not "
        "mrt's prefixes nor its terminating branches' forced answers; PPO, Schulman et al. 2017, Eq. 9); >= 0. "
        f"None: {DEFAULT_ENTROPY_COEF} for policy-gradient algorithms (tuned on a setting none of the study's: "
        "examples/studies/sim_entropy_sweep.md), 0 for SFT algorithms (star, mrt-star, sft: maximum likelihood on "
        "kept traces, as their sources fit them; they refuse a positive value)"))
    max_grad_norm: float = field(default=0.0, metadata=_help(
        "clip the gradient's global L2 norm to this before every optimizer step (torch.nn.utils.clip_grad_norm_; "
        "0: no clipping, as the LLM trainer's --max-grad-norm)"))
    hidden: int = field(default=64, metadata=_help("hidden width of the MLP policy (0: linear softmax)"))
    trace_source: str = field(default="policy", metadata=_help(
        "who writes the traces star/mrt-star/sft fit: 'policy' (the current policy: self-training) or "
        "'expert' (ttc_gym.training.experts.HeterogeneousExpert)"))
    expert_spread: float = field(default=1.0, metadata=_help(
        "heterogeneity of the expert (--trace-source expert): probability that a problem's strategy is drawn "
        "from the mixture of gold-free heuristics instead of the one base heuristic (0: one heuristic, 1: the mixture)"))
    expert_mixture: str = field(default="heuristics", metadata=_help(
        "what the expert's spread draws from: 'heuristics' (three gold-free heuristic kinds) or 'strong-weak' (the "
        "accuracy-optimal planner or answer-after-1, mixed by expert_strong_share: heterogeneity at a fixed mean "
        "accuracy; ttc_gym/training/experts.py)"))
    expert_strong_share: float | None = field(default=None, metadata=_help(
        "expert_mixture 'strong-weak': the planner's share (experts.calibrated_strong_share keeps the base accuracy)"))
    init_policy: str | None = field(default=None, metadata=_help(
        "start from the weights of this SimPolicy file (e.g. a base policy another run saved with --checkpoint) "
        "instead of a fresh MLP; its observation and action spaces must be this env's"))
    heterogeneity: float = field(default=0.8, metadata=_help("TTC-Sim-v0 heterogeneity of strategies (0 alike .. 1 dead ends never progress)"))
    prover_samples: int | None = field(default=None, metadata=_help("TTC-Sim-v0 prover: None exact, K a Monte Carlo estimate of K answers"))
    eval_every: int = field(default=0, metadata=_help("evaluate the policy every this many iterations (0: never)"))
    eval_problems: int = field(default=512, metadata=_help("problems per evaluation (fixed seeds)"))
    log_csv: str | None = field(default=None, metadata=_help("write one CSV row per iteration to this path"))
    report_dir: str = field(default="runs/sim", metadata=_help("folder of --report-to's tensorboard/ and wandb/"))
    checkpoint: str | None = field(default=None, metadata=_help(
        "save the trained policy to this path, with the trainer's state for --resume (SimPolicy.load reads it)"))

    OWN_ENV_FIELDS = ("max_episodes", "heterogeneity", "prover_samples")
    #: mrt's prefixes may also be written by the heterogeneous expert (a fixed trace source, as the
    #: LLM trainer's stored traces).
    PREFIX_SOURCES = ("stale", "current", "expert")

    def __post_init__(self) -> None:
        self.check_algorithm()
        if self.group_by not in GROUP_BY:
            raise unknown_name_error("group_by", self.group_by, GROUP_BY)
        if self.branches and self.group_by != "problem":
            raise ValueError(f"group_by {self.group_by!r} does not apply to algo 'mrt': its groups are the branches of "
                             f"one prefix (one problem); use group_by 'problem' or algo 'mrt-online'.")
        if self.trace_source not in TRACE_SOURCES:
            raise unknown_name_error("trace_source", self.trace_source, TRACE_SOURCES)
        self._check_entropy_coef()
        check_float("max_grad_norm", self.max_grad_norm, minimum=0.0)
        check_int("hidden", self.hidden, minimum=0)
        check_float("expert_spread", self.expert_spread, minimum=0.0, maximum=1.0)
        if self.expert_mixture not in MIXTURES:
            raise unknown_name_error("expert_mixture", self.expert_mixture, MIXTURES)
        if (self.expert_mixture == "strong-weak") != (self.expert_strong_share is not None):
            raise ValueError("expert_strong_share goes with expert_mixture 'strong-weak' (both or neither), got "
                             f"expert_mixture={self.expert_mixture!r}, expert_strong_share={self.expert_strong_share!r}.")
        if self.expert_strong_share is not None:
            check_float("expert_strong_share", self.expert_strong_share, minimum=0.0, maximum=1.0)
        check_float("heterogeneity", self.heterogeneity, minimum=0.0, maximum=1.0)
        if self.prover_samples is not None:
            check_int("prover_samples", self.prover_samples, minimum=1)
        check_int("eval_every", self.eval_every, minimum=0)
        check_int("eval_problems", self.eval_problems, minimum=1)
        if not isinstance(self.report_dir, (str, os.PathLike)) or not str(self.report_dir).strip():
            raise ValueError(f"report_dir must be a folder path, got {self.report_dir!r}.")
        self.report_dir = os.fspath(self.report_dir)
        for name in ("log_csv", "checkpoint", "init_policy"):
            value = getattr(self, name)
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
                setattr(self, name, value)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{name} must be a file path or None, got {value!r}.")
        if (self.save_every or self.resume) and not self.checkpoint:
            raise ValueError(f"{'save_every' if self.save_every else 'resume'} needs a checkpoint path (--checkpoint PATH).")
        if self.checkpoint and self.log_csv and Path(self.checkpoint).resolve() == Path(self.log_csv).resolve():
            raise ValueError(f"checkpoint and log_csv must be different files, both are {self.checkpoint!r}.")

    def _check_entropy_coef(self) -> None:
        """Resolve entropy_coef None to the algorithm kind's default; a positive one needs a policy-gradient
        algorithm."""
        if self.entropy_coef is None:
            self.entropy_coef = DEFAULT_ENTROPY_COEF if self.is_rl else 0.0
            return
        self.entropy_coef = check_float("entropy_coef", self.entropy_coef, minimum=0.0)
        if self.entropy_coef > 0 and not self.is_rl:
            raise ValueError(f"entropy_coef {self.entropy_coef} applies to the policy-gradient algorithms "
                             f"({', '.join(alg.RL_ALGOS)}); algo {self.algo!r} fits the kept traces by maximum "
                             f"likelihood, with no entropy term: leave entropy_coef at None or 0.")

    def make_env_kwargs(self) -> dict:
        """The TTC-Sim-v0 arguments this config trains on."""
        return {
            "max_episodes": self.max_episodes, "heterogeneity": self.heterogeneity,
            "prover_samples": self.prover_samples, **self.env_kwargs,
        }
