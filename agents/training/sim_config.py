"""The configuration of the TTC-Sim-v0 trainers: one dataclass, help text on every field, validated
before anything is built (it doubles as the command line of `ttc_gym.agents.training.sim_train`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ttc_gym.agents.training import algorithms as alg
from ttc_gym.agents.training.tracking import REPORT_TO_HELP, parse_report_to
from ttc_gym.rewards import check_alpha
from ttc_gym.validation import check_float, check_int, unknown_name_error

# The algorithm names come from the tables of `algorithms` (docs/formulation.md §4 says what each computes).
RL_ALGOS = alg.RL_ALGOS
SFT_ALGOS = alg.SFT_ALGOS
ALGOS = alg.ALGOS
MRT_FORMS = tuple(alg.MRT_FORMS)
TRACE_SOURCES = ("policy", "expert")
GROUP_BY = ("problem", "difficulty")
MAX_SEED = 2**63 - 1  # the policy's torch generators take seeds below 2**64 (and the trainer uses seed + 1)


def _help(text: str, **more) -> dict:
    return {"help": text, **more}


@dataclass
class SimTrainConfig:
    """Train a softmax policy on TTC-Sim-v0 with GRPO, MRT, STaR, MRT-STaR or plain SFT."""

    algo: str = field(default="mrt", metadata=_help(
        alg.algo_help(ALGOS) + " (mrt-star's groups here: the traces of one difficulty level; "
        "mrt-star-threshold with min_total_progress 0)"))
    seed: int = field(default=0, metadata=_help("seeds the policy's weights and sampling, the problems and the env noise"))
    iterations: int = field(default=100, metadata=_help("policy updates (grpo/mrt) or collect-filter-fit rounds (star/mrt-star/sft)"))
    batch_size: int = field(default=256, metadata=_help("trajectories rolled out per iteration (problems x group size)"))
    group_size: int = field(default=8, metadata=_help("G rollouts of the same problem (grpo/mrt); must divide batch_size"))
    group_by: str = field(default="problem", metadata=_help(
        "what the G rollouts of a group share: 'problem' (same reset seed: same level and same hidden "
        "strategies, fresh env noise; single envs) or 'difficulty' (same level, different problems; "
        "vector envs, several times faster)"))
    alpha: float = field(default=1.0, metadata=_help(
        "weight of the progress credit (mrt, mrt-rtg); >= 0, 0 gives grpo (unused by --mrt-form termination)"))
    mrt_form: str = field(default="group", metadata=_help("the baseline of mrt: " + alg.algo_help(MRT_FORMS)))
    cost_coef: float = field(default=0.0, metadata=_help("weight of the env's episode cost in the training return (0: the papers' 0/1 reward)"))
    kl_coef: float = field(default=0.0, metadata=_help("weight of KL(policy || initial policy) in the RL loss"))
    lr: float = field(default=0.01, metadata=_help("Adam learning rate"))
    hidden: int = field(default=64, metadata=_help("hidden width of the MLP policy (0: linear softmax)"))
    adv_scale: bool = field(default=True, metadata=_help(
        "divide group-centred returns by the group's std (GRPO); --no-adv-scale keeps them unscaled (Dr. GRPO)"))
    adv_eps: float = field(default=1e-6, metadata=_help("epsilon added to group standard deviations"))
    sft_steps: int = field(default=10, metadata=_help("gradient steps on the kept traces per round (star/mrt-star/sft)"))
    trace_source: str = field(default="policy", metadata=_help(
        "who writes the traces star/mrt-star/sft fit: 'policy' (the current policy: self-training) or "
        "'expert' (ttc_gym.agents.training.experts.HeterogeneousExpert)"))
    expert_spread: float = field(default=1.0, metadata=_help(
        "heterogeneity of the expert (--trace-source expert): probability that a problem's strategy is drawn "
        "from the mixture of gold-free heuristics instead of the one base heuristic (0: one heuristic, 1: the mixture)"))
    max_episodes: int = field(default=10, metadata=_help("TTC-Sim-v0 budget H (episodes per problem)"))
    heterogeneity: float = field(default=0.8, metadata=_help("TTC-Sim-v0 heterogeneity of strategies (0 alike .. 1 dead ends never progress)"))
    prover_samples: int | None = field(default=None, metadata=_help("TTC-Sim-v0 prover: None exact, K a Monte Carlo estimate of K answers"))
    env_kwargs: dict = field(default_factory=dict, metadata=_help("other TTC-Sim-v0 arguments, as a JSON object"))
    eval_every: int = field(default=0, metadata=_help("evaluate the policy every this many iterations (0: never)"))
    eval_problems: int = field(default=512, metadata=_help("problems per evaluation (fixed seeds)"))
    log_csv: str | None = field(default=None, metadata=_help("write one CSV row per iteration to this path"))
    report_to: str = field(default="none", metadata=_help(REPORT_TO_HELP))
    report_dir: str = field(default="runs/sim", metadata=_help("folder of --report-to's tensorboard/ and wandb/"))
    checkpoint: str | None = field(default=None, metadata=_help(
        "save the trained policy to this path, with the trainer's state for --resume (SimPolicy.load reads it)"))
    save_every: int = field(default=0, metadata=_help(
        "also save the checkpoint every this many iterations (0: only at the end); needs --checkpoint"))
    resume: bool = field(default=False, metadata=_help(
        "continue the run saved in --checkpoint (same config; --iterations may grow), or start it if there is none"))

    def __post_init__(self) -> None:
        alg.check_algo(self.algo, self.mrt_form, ALGOS)
        if self.group_by not in GROUP_BY:
            raise unknown_name_error("group_by", self.group_by, GROUP_BY)
        if self.trace_source not in TRACE_SOURCES:
            raise unknown_name_error("trace_source", self.trace_source, TRACE_SOURCES)
        check_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        check_int("iterations", self.iterations, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("group_size", self.group_size, minimum=1)
        if self.batch_size % self.group_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of group_size ({self.group_size}): "
                f"each problem is rolled out group_size times."
            )
        alg.check_group_size(self.algo, self.mrt_form, self.group_size)
        check_alpha(self.alpha)
        check_float("cost_coef", self.cost_coef, minimum=0.0)
        check_float("kl_coef", self.kl_coef, minimum=0.0)
        check_float("lr", self.lr, minimum=0.0)
        check_int("hidden", self.hidden, minimum=0)
        check_float("adv_eps", self.adv_eps, minimum=0.0)
        check_int("sft_steps", self.sft_steps, minimum=1)
        check_float("expert_spread", self.expert_spread, minimum=0.0, maximum=1.0)
        check_int("max_episodes", self.max_episodes, minimum=1)
        check_float("heterogeneity", self.heterogeneity, minimum=0.0, maximum=1.0)
        if self.prover_samples is not None:
            check_int("prover_samples", self.prover_samples, minimum=1)
        if not isinstance(self.env_kwargs, dict):
            raise TypeError(f"env_kwargs must be a dict, got {self.env_kwargs!r}.")
        clash = {"max_episodes", "heterogeneity", "prover_samples"} & set(self.env_kwargs)
        if clash:
            raise ValueError(f"set {sorted(clash)} through their own config fields, not env_kwargs.")
        parse_report_to(self.report_to)
        check_int("eval_every", self.eval_every, minimum=0)
        check_int("eval_problems", self.eval_problems, minimum=1)
        check_int("save_every", self.save_every, minimum=0)
        for name in ("log_csv", "checkpoint"):
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

    @property
    def problems_per_batch(self) -> int:
        return self.batch_size // self.group_size

    def make_env_kwargs(self) -> dict:
        """The TTC-Sim-v0 arguments this config trains on."""
        return {
            "max_episodes": self.max_episodes, "heterogeneity": self.heterogeneity,
            "prover_samples": self.prover_samples, **self.env_kwargs,
        }
