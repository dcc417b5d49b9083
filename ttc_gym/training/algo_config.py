"""The one algorithm configuration every trainer shares: which algorithm (`algorithms.ALGOS`), its
settings (alpha, baselines, KL, the SFT rounds), the batch shape (problems x group size), the
optimizer's step size and where the run is reported (`report_to`: `tracking`), with help text on
every field and every check written once.

`SimTrainConfig` (TTC-Sim-v0) and `LLMTrainConfig` (TTC-Math-v0) extend it with what only their
trainer has; the TRL adapter (`ttc_gym/integrations/trl_grpo.py`) builds one from its arguments. A
trainer whose defaults differ (the simulator's small MLP takes lr 0.01 and 100 iterations) says so
with `override`, keeping this help text. The algorithms themselves: `algorithms.py`
(docs/formulation.md §4 gives each one's formula).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttc_gym.rewards import check_alpha
from ttc_gym.training import algorithms as alg
from ttc_gym.training.tracking import REPORT_TO_HELP, parse_report_to
from ttc_gym.validation import check_float, check_int, unknown_name_error

DEFAULT_PROBLEMS_PER_ITER = 2  # when neither batch_size nor problems_per_iter is given
MAX_SEED = 2**63 - 1  # torch generators take seeds below 2**64 (and the trainers use seed + 1)


def _help(text: str, **more) -> dict:
    return {"help": text, **more}


@dataclass
class AlgoConfig:
    """The algorithm and its settings, shared by every trainer."""

    algo: str = field(default="mrt", metadata=_help(
        alg.algo_help(alg.ALGOS) + " (a group: the group_size rollouts of one problem)"))
    seed: int = field(default=0, metadata=_help("seeds the problems, the rollouts' sampling and the policy's weights"))
    iterations: int = field(default=10, metadata=_help(
        "policy updates (policy-gradient algorithms) or collect-filter-fit rounds (SFT algorithms)"))
    problems_per_iter: int | None = field(default=None, metadata=_help(
        f"problems rolled out per iteration (default {DEFAULT_PROBLEMS_PER_ITER}, or batch_size / group_size)"))
    group_size: int = field(default=4, metadata=_help(
        "G rollouts of the same problem per iteration; must divide batch_size"))
    batch_size: int | None = field(default=None, metadata=_help(
        "rollouts per iteration (problems_per_iter x group_size); a multiple of group_size"))
    alpha: float = field(default=1.0, metadata=_help(
        "weight of the progress credit (mrt, mrt-online(-raw), mrt-rtg; unused by mrt-termination) and of progress in the "
        "logged reward; >= 0, 0 gives grpo"))
    cost_coef: float = field(default=0.0, metadata=_help(
        "weight of the env's episode cost in the training return (0: the papers' 0/1 reward)"))
    adv_scale: bool = field(default=True, metadata=_help(
        "divide group-centred returns by the group's std (GRPO); --no-adv-scale keeps them unscaled (Dr. GRPO)"))
    adv_eps: float = field(default=1e-6, metadata=_help("epsilon added to group standard deviations"))
    kl_coef: float = field(default=0.0, metadata=_help(
        "weight of the k3 estimate of KL(policy || initial policy) in the policy-gradient loss"))
    mrt_credit: str = field(default="group", metadata=_help(
        "mrt: 'group' normalizes the returns across a prefix's continuing and terminating branches together; "
        "'termination' subtracts the terminating branches' mean return (CMU-AIRe/MRT train/rl/README.md)"))
    terminations: int | None = field(default=None, metadata=_help(
        "mrt: branches per prefix that terminate at once (answer there); default: group_size, the even split "
        "of MRT Figure 6 (group_size branches continue)"))
    prefix_source: str = field(default="stale", metadata=_help(
        "mrt: who writes the prefix of k episodes (k uniform over 0..max_episodes-1): 'stale' (a frozen copy "
        "of the policy, refreshed every stale_every iterations: the paper's older policy) or 'current' (the "
        "policy itself); a trainer may offer more"))
    stale_every: int = field(default=10, metadata=_help(
        "mrt with prefix_source 'stale': iterations between refreshes of the frozen prefix policy (ours: the "
        "sources do not give it)"))
    min_total_progress: float = field(default=0.0, metadata=_help(
        "mrt-star-threshold: keep rollouts whose J_final - J_0 exceeds this"))
    sft_steps: int = field(default=1, metadata=_help(
        "SFT algorithms (star, mrt-star, ...): gradient steps on the kept rollouts per round"))
    lr: float = field(default=1e-5, metadata=_help("learning rate of the optimizer (> 0)"))
    max_episodes: int = field(default=4, metadata=_help("the env's budget H (episodes per problem)"))
    env_kwargs: dict = field(default_factory=dict, metadata=_help("other arguments of the env, as a JSON object"))
    save_every: int = field(default=0, metadata=_help(
        "also write a checkpoint every this many iterations (0: only at the end)"))
    resume: bool = field(default=False, metadata=_help(
        "continue the run saved at the checkpoint (same config; --iterations may grow), or start it if there is none"))
    report_to: str = field(default="none", metadata=_help(REPORT_TO_HELP))

    #: The env arguments a trainer sets through its own fields, never through env_kwargs.
    OWN_ENV_FIELDS = ("max_episodes",)
    #: Who may write `mrt`'s prefixes in this trainer (a subclass may add its own sources).
    PREFIX_SOURCES = ("stale", "current")

    def __post_init__(self) -> None:
        self.check_algorithm()

    def check_algorithm(self) -> None:
        """Every check of the shared fields (a ValueError or TypeError saying what was expected)."""
        alg.check_algo(self.algo)
        check_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        check_int("iterations", self.iterations, minimum=1)
        check_int("group_size", self.group_size, minimum=1)
        self._resolve_batch()
        alg.check_group_size(self.algo, self.group_size)
        self.alpha = check_alpha(self.alpha)
        check_float("cost_coef", self.cost_coef, minimum=0.0)
        check_float("adv_eps", self.adv_eps, minimum=0.0)
        check_float("kl_coef", self.kl_coef, minimum=0.0)
        self._check_branching()
        check_float("min_total_progress", self.min_total_progress)
        check_int("sft_steps", self.sft_steps, minimum=1)
        if check_float("lr", self.lr) <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}.")
        check_int("max_episodes", self.max_episodes, minimum=1)
        if not isinstance(self.env_kwargs, dict):
            raise TypeError(f"env_kwargs must be a dict (a JSON object), got {self.env_kwargs!r}.")
        clash = set(self.OWN_ENV_FIELDS) & set(self.env_kwargs)
        if clash:
            raise ValueError(f"set {sorted(clash)} through their own config fields (or the trainer), not env_kwargs.")
        check_int("save_every", self.save_every, minimum=0)
        parse_report_to(self.report_to)

    def _resolve_batch(self) -> None:
        """Fill the one of batch_size and problems_per_iter that was not given from the other."""
        if self.batch_size is None:
            problems = DEFAULT_PROBLEMS_PER_ITER if self.problems_per_iter is None else self.problems_per_iter
            self.problems_per_iter = check_int("problems_per_iter", problems, minimum=1)
            self.batch_size = self.problems_per_iter * self.group_size
            return
        check_int("batch_size", self.batch_size, minimum=1)
        if self.batch_size % self.group_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of group_size ({self.group_size}): "
                             f"each problem is rolled out group_size times.")
        if self.problems_per_iter is not None and self.problems_per_iter * self.group_size != self.batch_size:
            raise ValueError(f"batch_size ({self.batch_size}) != problems_per_iter ({self.problems_per_iter}) x "
                             f"group_size ({self.group_size}); give one of batch_size and problems_per_iter.")
        self.problems_per_iter = self.batch_size // self.group_size

    def _check_branching(self) -> None:
        """`mrt`'s branch settings: a known credit and prefix source, a group of at least two branches
        (one terminating for the termination credit)."""
        if self.mrt_credit not in alg.MRT_CREDITS:
            raise unknown_name_error("mrt_credit", self.mrt_credit, alg.MRT_CREDITS)
        if self.prefix_source not in self.PREFIX_SOURCES:
            raise unknown_name_error("prefix_source", self.prefix_source, self.PREFIX_SOURCES)
        check_int("stale_every", self.stale_every, minimum=1)
        if self.terminations is None:
            self.terminations = self.group_size
        check_int("terminations", self.terminations, minimum=0)
        if not alg.branches_from_prefix(self.algo):
            return
        if self.mrt_credit == "termination" and self.terminations < 1:
            raise ValueError("mrt_credit 'termination' subtracts the terminating branches' return: terminations must "
                             "be >= 1.")
        if self.group_size + self.terminations < 2:
            raise ValueError(f"algo 'mrt' normalizes across a prefix's branches: group_size ({self.group_size}) + "
                             f"terminations ({self.terminations}) must be >= 2.")

    @property
    def branches(self) -> bool:
        """The algorithm trains on branches of a prefix (`algorithms.branches_from_prefix`: `mrt`)."""
        return alg.branches_from_prefix(self.algo)

    @property
    def is_rl(self) -> bool:
        """A policy-gradient algorithm (`algorithms.RL_ALGOS`), else an SFT one."""
        return self.algo in alg.RL_ALGOS

    def advantages(self, trajectories: Sequence[alg.Trajectory]) -> list[np.ndarray]:
        """`algorithms.advantages` with this config's settings."""
        return alg.advantages(self.algo, trajectories, alpha=self.alpha, cost_coef=self.cost_coef,
                              eps=self.adv_eps, scale=self.adv_scale, credit=self.mrt_credit)

    def select(self, trajectories: Sequence[alg.Trajectory]) -> list[alg.Trajectory]:
        """`algorithms.select` with this config's settings (the SFT algorithms)."""
        return alg.select(self.algo, trajectories, min_total_progress=self.min_total_progress)


def override(name: str, default: Any, help: str | None = None) -> Any:
    """A subclass's own default for the AlgoConfig field `name`, keeping its help text (or `help`)."""
    metadata = dict(AlgoConfig.__dataclass_fields__[name].metadata)
    if help is not None:
        metadata["help"] = help
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)
