"""The training algorithms of ttc-gym as plain functions: advantages, losses and trace selection,
and the tables that name them (the one place a trainer, a config or a command line learns which
algorithms exist: `ADVANTAGES`, `SELECTORS`, `RL_ALGOS`, `SFT_ALGOS`, `ALGOS`).

Policy-agnostic: nothing here knows what a policy is. A batch is a list of `Trajectory`: one
problem's rollout, i.e. its reasoning *episodes* (one env step each, stored column-wise: the
log-probability of the episode's action or tokens, its progress and its cost) and the final 0/1
outcome. The TTC-Sim-v0 trainer and the LLM trainer build these from their own rollouts and call the
same functions.

Notation (docs/formulation.md §4): trajectory i of group g (the G rollouts of one problem) has episodes
j = 0..n_i-1 with progress p_ij = J_j - J_{j-1} and cost c_ij, and a final outcome o_i in {0, 1}.
Each name credits episode j of trajectory i with:

* `grpo` (outcome-only RL): A_i = (R_i - mean_g R) / (std_g R + eps), R_i = o_i - cost_coef * sum_j
  c_ij (cost_coef = 0 by default: the plain 0/1 reward); the same for every episode of trajectory i.
* `mrt` (MRT (RL), the paper's recipe, `mrt_advantages`): the rollouts are branches of a prefix
  (written by an older policy), m that continue and m that terminate at once; a branch's return is
  R = o - cost_coef * C + alpha * (J_end - J_prefix) (the last term for continuing branches only),
  credited as (R - mean R) / (std R + eps) over the prefix's branches together (or R - mean
  R_termination), on the branch's own episodes only. MRT §6, Figure 6; CMU-AIRe/MRT `train/rl/README.md`.
* `mrt-online` (`online_advantages`): A_ij = (R_i - mean_g R + alpha * p_ij) / sqrt(var_g R + alpha^2
  var_g p), episode j's own progress inside the group normalization (MRT-online, v0.1 release).
* `mrt-online-raw` (ttc-gym's `mrt` before): A_ij = A_i + alpha * p_ij, A_i GRPO's advantage, the
  progress added raw, outside the normalization.
* `mrt-termination` (MRT code's termination baseline, `train/rl/README.md`): A_ij = o_i - cost_coef * C_ij -
  J_{j-1}, the reward of the rollout minus the reward of terminating at the prefix before episode j.
* `mrt-rtg` (ttc-gym's first `mrt`, kept under an honest name): A_ij = A_i + alpha * (P_ij - mean_g P)
  / (std_g P + eps) with P_ij = sum_{k>=j} p_ik = J_final - J_{j-1}, the progress-to-go: the
  reward-to-go gradient of o + alpha * sum_j p_j (without our z-score), i.e. shaping with potential
  alpha * J: outcome-only RL's optimum only where every ending's expected outcome is its J_final (the
  answer forced at the budget's end; not with TTC-Sim-v0's answer_on_truncation=False).

The trace selections of the SFT algorithms (`SELECTORS`): `star` keeps the rollouts that end correct;
`mrt-star` keeps, per group, the correct rollouts of maximal progress (MRT §6, Figure 6);
`mrt-star-threshold` keeps correct rollouts none of whose episodes lowers J and whose total progress
exceeds a threshold (ttc-gym's earlier rule); `sft` keeps every rollout (verifier-free cloning).

The one policy-gradient loss: `policy_gradient_loss` = -mean over tokens of (A * log pi), plus
kl_coef * mean k3-estimate of KL(pi || pi_ref) on the same tokens, minus entropy_coef * the mean
entropy of the policy on them (`mean_entropy`, PPO's entropy bonus). `sft_loss` = -mean log pi.

Adding an algorithm: write its advantage function (or selection rule) here and add it to
`ADVANTAGES` (or `SELECTORS`); the configs, their command lines and both trainers take the names
from these tables.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ttc_gym.rewards import check_alpha, j_curve_from_progress
from ttc_gym.validation import check_float, unknown_name_error

#: What a rollout is, relative to a prefix: None (from the start), or a branch of `mrt`'s recipe.
BRANCH_KINDS = (None, "continue", "terminate")
#: `mrt`'s two credits over one prefix's branches (`mrt_advantages`).
MRT_CREDITS = ("group", "termination")


@dataclass
class Trajectory:
    """One rollout of one problem, its episodes stored column-wise.

    Attributes:
        group: problem id; trajectories with equal `group` are the G rollouts of one problem.
        outcome: final correctness, 0 or 1.
        progress: (n,) progress of each episode, J_j - J_{j-1} (0 for an answering step).
        cost: (n,) cost of each episode (e.g. the env's episode cost; 0 for an answering step).
        logprobs: the policy's log-probabilities, with gradient: a (n,) tensor (one action per
            episode, TTC-Sim-v0) or a list of n 1-D tensors (one entry per token of each episode,
            LLM). None for selection-only use.
        ref_logprobs: the same under a reference policy (no gradient), for the KL term.
        j0: J before any episode (for a branch rollout: J at the prefix it starts from); needed by the
            termination-baseline forms and by `mrt`.
        branch: None for a rollout from the problem's start; "continue" or "terminate" for a rollout
            branched from a prefix (`mrt`, the paper's recipe): one that reasons on from the prefix, or
            one that answers at once there. Its `progress`, `cost` and `logprobs` cover its own
            episodes only (the prefix is context, never trained).
    """

    group: Hashable
    outcome: float
    progress: np.ndarray
    cost: np.ndarray
    logprobs: torch.Tensor | Sequence[torch.Tensor] | None = None
    ref_logprobs: torch.Tensor | Sequence[torch.Tensor] | None = None
    j0: float = float("nan")
    branch: str | None = None

    def __post_init__(self) -> None:
        if self.branch not in BRANCH_KINDS:
            raise ValueError(f"branch must be one of {BRANCH_KINDS}, got {self.branch!r}.")
        self.progress = np.asarray(self.progress, dtype=np.float64).reshape(-1)
        self.cost = np.asarray(self.cost, dtype=np.float64).reshape(-1)
        if self.progress.shape != self.cost.shape:
            raise ValueError(
                f"progress and cost need one entry per episode, got {self.progress.size} and {self.cost.size}."
            )

    @property
    def num_episodes(self) -> int:
        return int(self.progress.size)

    @property
    def total_progress(self) -> float:
        return float(self.progress.sum())


# -- grouping and normalization -------------------------------------------------------------------
def group_indices(trajectories: Sequence[Trajectory]) -> list[list[int]]:
    """Indices of the trajectories of each group, groups in order of first appearance."""
    groups: dict = {}
    for i, t in enumerate(trajectories):
        groups.setdefault(t.group, []).append(i)
    return list(groups.values())


def _zscore(values: np.ndarray, eps: float, scale: bool) -> np.ndarray:
    centered = values - values.mean()
    denom = values.std() + eps
    # All values equal (std 0): centered is all zeros, and stays so even with eps = 0.
    return centered / denom if scale and denom > 0 else centered


def _check_eps(eps: float) -> float:
    return check_float("eps", eps, minimum=0.0)


# -- advantages -----------------------------------------------------------------------------------
def outcome_returns(trajectories: Sequence[Trajectory], cost_coef: float = 0.0) -> np.ndarray:
    """R_i = outcome_i - cost_coef * total cost_i."""
    check_float("cost_coef", cost_coef, minimum=0.0)
    return np.array([t.outcome - cost_coef * t.cost.sum() for t in trajectories], dtype=np.float64)


def outcome_advantages(
    trajectories: Sequence[Trajectory], *, cost_coef: float = 0.0, eps: float = 1e-6, scale: bool = True
) -> list[np.ndarray]:
    """GRPO: (R_i - mean_g R) / (std_g R + eps) (population std), repeated over trajectory i's episodes.

    `scale=False` drops the division by the std (Dr. GRPO). A group whose returns are all equal gets
    advantage 0. Returns one (n_i,) array per trajectory.
    """
    eps = _check_eps(eps)
    returns = outcome_returns(trajectories, cost_coef)
    adv = np.zeros(len(trajectories))
    for idx in group_indices(trajectories):
        adv[idx] = _zscore(returns[idx], eps, scale)
    return [np.full(t.num_episodes, a) for t, a in zip(trajectories, adv)]


def progress_to_go(trajectory: Trajectory) -> np.ndarray:
    """P_j = sum_{k>=j} progress_k (reward-to-go of the progress reward), = J_final - J_{j-1}."""
    return np.cumsum(trajectory.progress[::-1])[::-1].copy()


def _branches_of(trajectories: Sequence[Trajectory]) -> None:
    """`mrt` takes branch rollouts only (`Trajectory.branch` set), with a finite `j0` (J at the prefix)."""
    full = [i for i, t in enumerate(trajectories) if t.branch is None]
    if full:
        raise ValueError(
            f"algo 'mrt' (the paper's recipe) credits rollouts branched from a prefix (Trajectory.branch "
            f"'continue' or 'terminate'), got {len(full)} rollout(s) from the start (e.g. trajectory {full[0]}); "
            f"the trainers' branching collection makes them. For full on-policy rollouts use 'mrt-online'."
        )
    bad = [i for i, t in enumerate(trajectories) if not np.isfinite(t.j0)]
    if bad:
        raise ValueError(f"algo 'mrt' needs J at the prefix (Trajectory.j0) of every branch; trajectory {bad[0]} has NaN.")


def branch_returns(trajectories: Sequence[Trajectory], *, alpha: float, cost_coef: float = 0.0) -> np.ndarray:
    """The return of each branch of `mrt`: R = outcome - cost_coef * cost of its own episodes, plus for
    a continuing branch alpha * (J_end - J_prefix), its progress over the prefix as one scalar.

    J_prefix is `Trajectory.j0`, the prover's J at the prefix (J of answering there); J_end = J_prefix
    + the sum of the branch's per-episode progress, the prover's J after its last episode (progress
    telescopes). A terminating branch writes no reasoning episode: its progress is 0 by definition.
    """
    alpha = check_alpha(alpha)
    check_float("cost_coef", cost_coef, minimum=0.0)
    return np.array([
        t.outcome - cost_coef * t.cost.sum() + (alpha * t.total_progress if t.branch == "continue" else 0.0)
        for t in trajectories
    ], dtype=np.float64)


def mrt_advantages(
    trajectories: Sequence[Trajectory],
    *,
    alpha: float,
    cost_coef: float = 0.0,
    eps: float = 1e-6,
    scale: bool = True,
    credit: str = "group",
) -> list[np.ndarray]:
    """MRT (RL), the paper's recipe (`mrt`): credit for branches of a prefix that continue or terminate.

    Sources: MRT (arXiv 2503.07572) §6 and the caption of Figure 6 ("the RL variant ... starts from a
    partial rollout ... samples on-policy rollouts that terminate ... and continue ... Normalizing
    rewards across this set of traces allows us to implicitly compute the progress bonus"; the policy
    is updated with "an aggregation of this dense reward and the final 0/1 outcome reward"), and the
    CMU-AIRe/MRT repository's `train/rl/README.md` (the termination reward baseline, A = R -
    R_termination) and `train/sft/README.md` (`sft_suffix`: the prefix is context, only the suffix is
    trained). A group (`Trajectory.group`) is one prefix: its "continue" and "terminate" branches.

    Each branch's return R is `branch_returns`: outcome (and cost), plus alpha times its progress over
    the prefix for a continuing branch. Credit, one scalar per branch repeated over its own episodes:
    * credit="group": (R - mean R) / (std R + eps) over the union of the prefix's continuing and
      terminating branches (population std; `scale=False` centres only). The terminating branches'
      outcomes estimate the value of stopping at the prefix, so a continuing branch is credited by how
      it compares with them: the progress bonus computed implicitly, as the caption says.
    * credit="termination": R - mean over the prefix's terminating branches of their R (the repo's
      termination baseline; needs at least one terminating branch per prefix; no scaling).
    With alpha = 0, credit="group" and no terminating branch this is exactly GRPO on the suffixes
    (`outcome_advantages`). What the sources leave open and we chose: the scalar progress measure
    (the prover's J, as every other form here, instead of the paper's implicit one alone), alpha, and
    the population std; the split and the prefix's behaviour policy are the trainers' (AlgoConfig).
    """
    if credit not in MRT_CREDITS:
        raise unknown_name_error("mrt_credit", credit, MRT_CREDITS)
    eps = _check_eps(eps)
    _branches_of(trajectories)
    returns = branch_returns(trajectories, alpha=alpha, cost_coef=cost_coef)
    adv = np.zeros(len(trajectories))
    for idx in group_indices(trajectories):
        if credit == "group":
            adv[idx] = _zscore(returns[idx], eps, scale)
            continue
        stops = [i for i in idx if trajectories[i].branch == "terminate"]
        if not stops:
            raise ValueError(
                f"mrt_credit 'termination' needs terminating branches at every prefix; prefix (group) "
                f"{trajectories[idx[0]].group!r} has none. Set terminations >= 1, or use mrt_credit 'group'."
            )
        adv[idx] = returns[idx] - returns[stops].mean()
    return [np.full(t.num_episodes, a) for t, a in zip(trajectories, adv)]


def online_advantages(
    trajectories: Sequence[Trajectory],
    *,
    alpha: float,
    cost_coef: float = 0.0,
    eps: float = 1e-6,
    scale: bool = True,
) -> list[np.ndarray]:
    """MRT-online (`mrt-online`): per-episode progress credit inside the group normalization.

    A_ij = (R_i - mean_g R + alpha * p_ij) / (sqrt(var_g R + alpha^2 var_g p) + eps), with R_i the
    outcome return (`outcome_returns`), var_g R its population variance over the group's rollouts (as
    GRPO), p_ij = J_j - J_{j-1} episode j's own progress and var_g p its variance over every episode of
    the group. The outcome and the progress term share one denominator, the std of their sum, so the
    progress term moves with the group's scale instead of being added raw (`mrt-online-raw`, about a
    tenth of the outcome term at alpha = 1 in a group of mixed outcomes). `scale=False`: centred only.

    Source: MRT-online, the CMU-AIRe/MRT v0.1 release (on-policy traces, forced-termination branches at
    every episode boundary giving each episode's progress, alpha = 1): its README describes a
    per-episode progress reward normalized with the outcome; the exact normalization is not given
    there, so this one is ours. Why the progress is NOT centred by a group mean: verl's RFC on
    per-turn rewards (volcengine/verl issue 7244) shows that subtracting a per-turn baseline whose
    number of terms depends on the trajectory's own stopping turn is an action-dependent baseline, a
    hidden length bonus or penalty; p_ij already has an action-independent baseline, J_{j-1} (the
    value of answering at the prefix), and each episode is credited with its own progress only (no
    sum over later turns, unlike prime-rl's turn_credit smear, PR 3282, or `mrt-rtg`), so no term
    grows with the number of episodes. A group whose outcomes and progress are all equal gets its
    progress unscaled (the denominator would be 0). Exactly `outcome_advantages` when alpha == 0.
    """
    alpha = check_alpha(alpha)
    eps = _check_eps(eps)
    returns = outcome_returns(trajectories, cost_coef)
    out = [np.zeros(t.num_episodes) for t in trajectories]
    for idx in group_indices(trajectories):
        progress = np.concatenate([trajectories[i].progress for i in idx]) if idx else np.zeros(0)
        spread = np.sqrt(returns[idx].var() + alpha**2 * (progress.var() if progress.size else 0.0))
        denom = spread + eps if scale and spread > 0 else 1.0
        centred = returns[idx] - returns[idx].mean()
        for i, c in zip(idx, centred):
            out[i] = (c + alpha * trajectories[i].progress) / denom
    return out


def online_raw_advantages(
    trajectories: Sequence[Trajectory],
    *,
    alpha: float,
    cost_coef: float = 0.0,
    eps: float = 1e-6,
    scale: bool = True,
) -> list[np.ndarray]:
    """`mrt-online-raw` (ttc-gym's `mrt` before the paper's recipe took the name): A_ij = A_i +
    alpha * p_ij, GRPO's normalized outcome advantage plus episode j's own raw progress.

    The progress term sits outside the group normalization: added as is, whatever the group's
    outcome spread (`online_advantages` puts it inside). The policy gradient of MRT §6, Eq. 2 read
    with per-episode rewards (the outcome fine-tuning loss + alpha * sum_j r_prg(z_j; c_{j-1}), each
    episode's log-probability weighted by r(x, z) + alpha * r_prg(x, z_{0:j})), with J_{j-1} from
    the prover as the progress baseline. Kept so that the studies made with it can be rerun.
    Exactly `outcome_advantages` when alpha == 0.
    """
    alpha = check_alpha(alpha)
    base = outcome_advantages(trajectories, cost_coef=cost_coef, eps=eps, scale=scale)
    if alpha == 0.0:
        return base
    return [b + alpha * t.progress for b, t in zip(base, trajectories)]


def progress_to_go_advantages(
    trajectories: Sequence[Trajectory],
    *,
    alpha: float,
    cost_coef: float = 0.0,
    eps: float = 1e-6,
    scale: bool = True,
) -> list[np.ndarray]:
    """`mrt-rtg`: outcome advantage + alpha * group z-score of the progress-to-go.

    A_ij = A_i + alpha * (P_ij - mean_g P) / (std_g P + eps), A_i from `outcome_advantages`, P_ij =
    sum_{k>=j} p_ik = J_final - J_{j-1} the progress-to-go of episode j, mean and (population) std
    over all episodes of the group (`scale=False`: centred only). This is the reward-to-go policy
    gradient of the return o + alpha * sum_j p_j: because progress telescopes, it is potential-based
    shaping with potential alpha * J, which has the same optimal policy as outcome-only RL; it
    changes the variance and scale of the credit, not its target. Not MRT's estimator (see `mrt_advantages`).
    Exactly `outcome_advantages` when alpha == 0.
    """
    alpha = check_alpha(alpha)
    eps = _check_eps(eps)
    base = outcome_advantages(trajectories, cost_coef=cost_coef, eps=eps, scale=scale)
    if alpha == 0.0:
        return base
    out = list(base)
    for idx in group_indices(trajectories):
        to_go = [progress_to_go(trajectories[i]) for i in idx]
        flat = np.concatenate(to_go) if to_go else np.zeros(0)
        if flat.size == 0:
            continue
        z = _zscore(flat, eps, scale)
        start = 0
        for i, p in zip(idx, to_go):
            out[i] = base[i] + alpha * z[start : start + p.size]
            start += p.size
    return out


def termination_advantages(trajectories: Sequence[Trajectory], *, cost_coef: float = 0.0) -> list[np.ndarray]:
    """MRT's termination baseline (`mrt-termination`): A_ij = o_i - cost_coef * C_ij - J_{j-1}.

    The MRT code's recipe (`train/rl/README.md`): advantage = reward of the rollout - reward of the
    termination action, in place of GRPO's group mean. Here the rollout's reward from episode j on
    is its outcome minus the cost-to-go C_ij = sum_{k>=j} c_ik, and terminating at the prefix before
    episode j (a forced answer there) earns J_{j-1} = j0 + sum_{k<j} p_ik. Progress is already inside
    this difference (o - J_{j-1} = (o - J_final) + sum_{k>=j} p_ik), so no alpha * progress term is
    added: ttc-gym's earlier form added alpha * progress-to-go on top and counted progress twice.
    No group statistics: usable with G = 1. Needs `Trajectory.j0`. The README leaves the rollout reward's scale as is (no
    normalization), and so do we.
    """
    check_float("cost_coef", cost_coef, minimum=0.0)
    out = []
    for t in trajectories:
        if not np.isfinite(t.j0):
            raise ValueError("termination_advantages needs Trajectory.j0 (J before any episode); got NaN.")
        j_before = j_curve_from_progress(t.j0, t.progress)[:-1]
        cost_to_go = np.cumsum(t.cost[::-1])[::-1]
        out.append(t.outcome - cost_coef * cost_to_go - j_before)
    return out


#: The policy-gradient algorithms: name -> (advantage estimator, the options of `advantages` it
#: takes). docs/formulation.md §4 gives each one's formula.
ADVANTAGES: dict[str, tuple[Callable[..., list[np.ndarray]], tuple[str, ...]]] = {
    "grpo": (outcome_advantages, ("cost_coef", "eps", "scale")),
    "mrt": (mrt_advantages, ("alpha", "cost_coef", "eps", "scale", "credit")),
    "mrt-online": (online_advantages, ("alpha", "cost_coef", "eps", "scale")),
    "mrt-online-raw": (online_raw_advantages, ("alpha", "cost_coef", "eps", "scale")),
    "mrt-termination": (termination_advantages, ("cost_coef",)),
    "mrt-rtg": (progress_to_go_advantages, ("alpha", "cost_coef", "eps", "scale")),
}
#: The policy-gradient algorithms that use no group baseline (usable with G = 1).
_GROUPLESS = {"mrt-termination"}
#: The algorithms that train on branches of a prefix (`Trajectory.branch`), not on rollouts from the
#: start: a trainer collects them with its branching collection.
BRANCHING = {"mrt"}


def branches_from_prefix(algo: str) -> bool:
    """True when `algo` trains on rollouts branched from a prefix (the paper's MRT recipe)."""
    return algo in BRANCHING


def needs_groups(algo: str) -> bool:
    """True when `algo` subtracts a group baseline over a problem's rollouts and so needs group_size >= 2
    (`mrt`'s group is a prefix's continuing and terminating branches together: checked by its trainer)."""
    return algo in ADVANTAGES and algo not in _GROUPLESS | BRANCHING


def check_group_size(algo: str, group_size: int) -> None:
    """An algorithm with a group baseline (`needs_groups`) needs at least two rollouts per problem."""
    if needs_groups(algo) and group_size < 2:
        raise ValueError(
            f"algo {algo!r} normalizes rewards within groups and needs group_size >= 2, got {group_size}."
        )


def check_algo(algo: str, algos: Sequence[str] | None = None) -> None:
    """`algo` is one of `algos` (default `ALGOS`), or a ValueError with a "did you mean"."""
    algos = ALGOS if algos is None else tuple(algos)
    if algo not in algos:
        raise unknown_name_error("algo", algo, algos)


def advantages(
    algo: str,
    trajectories: Sequence[Trajectory],
    *,
    alpha: float = 1.0,
    cost_coef: float = 0.0,
    eps: float = 1e-6,
    scale: bool = True,
    credit: str = "group",
) -> list[np.ndarray]:
    """The advantages of a batch as a trainer's settings choose them, the one dispatch every trainer
    uses (docs/formulation.md §4), through `ADVANTAGES`: "grpo" -> `outcome_advantages`, "mrt" ->
    `mrt_advantages` (`credit`: "group" or "termination"), "mrt-online" -> `online_advantages`,
    "mrt-online-raw" -> `online_raw_advantages`, "mrt-termination" -> `termination_advantages`,
    "mrt-rtg" -> `progress_to_go_advantages`. Each estimator gets only the options it takes (the
    termination baseline, with no group statistics and no bonus, takes none of alpha, eps, scale)."""
    if algo not in ADVANTAGES:
        raise unknown_name_error("advantage algo", algo, ADVANTAGES)
    fn, takes = ADVANTAGES[algo]
    options = {"alpha": alpha, "cost_coef": cost_coef, "eps": eps, "scale": scale, "credit": credit}
    return fn(trajectories, **{k: v for k, v in options.items() if k in takes})


# -- losses ---------------------------------------------------------------------------------------
def mean_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """The mean entropy (nats) of the distributions whose log-probabilities are the rows of
    `log_probs` ((B, A): one row per action or token taken, over every action or vocabulary entry):
    mean_b -sum_a pi(a|s_b) log pi(a|s_b), with gradient. 0 for an empty batch."""
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs must be (rows, actions), got shape {tuple(log_probs.shape)}.")
    if log_probs.shape[0] == 0:
        return log_probs.sum() * 0.0
    return -(log_probs.exp() * log_probs).sum(-1).mean()


def policy_gradient_loss(
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
) -> torch.Tensor:
    """-mean(advantages * logprobs) + kl_coef * mean(k3) - entropy_coef * entropy, over aligned 1-D
    token tensors.

    k3 = exp(ref - logp) - (ref - logp) - 1, the unbiased, non-negative per-token estimate of
    KL(pi || pi_ref) used by GRPO. `entropy` (a scalar with gradient, `mean_entropy` over the same
    tokens' distributions) is the entropy bonus of PPO / A2C (Schulman et al. 2017, "Proximal Policy
    Optimization Algorithms", Eq. 9: the objective adds c2 * S[pi](s_t); Mnih et al. 2016, A3C):
    maximizing it keeps the policy from collapsing onto one action early. The only place the
    policy-gradient loss is written.
    """
    kl_coef = check_float("kl_coef", kl_coef, minimum=0.0)
    entropy_coef = check_float("entropy_coef", entropy_coef, minimum=0.0)
    if entropy_coef > 0.0 and (entropy is None or entropy.numel() != 1):
        raise ValueError("entropy_coef > 0 needs the entropy: a scalar tensor (mean_entropy over the batch's tokens).")
    if logprobs.shape != advantages.shape or logprobs.ndim != 1:
        raise ValueError(
            f"logprobs and advantages must be aligned 1-D tensors, got {tuple(logprobs.shape)} and "
            f"{tuple(advantages.shape)}."
        )
    if logprobs.numel() == 0:
        return logprobs.sum() * 0.0
    loss = -(advantages.detach() * logprobs).mean()
    if kl_coef > 0.0:
        if ref_logprobs is None or ref_logprobs.shape != logprobs.shape:
            raise ValueError("kl_coef > 0 needs ref_logprobs aligned with logprobs.")
        delta = ref_logprobs.detach() - logprobs
        loss = loss + kl_coef * (torch.exp(delta) - delta - 1.0).mean()
    if entropy_coef > 0.0:
        loss = loss - entropy_coef * entropy.reshape(())
    return loss


def _tokens(logprobs, n: int, what: str) -> tuple[torch.Tensor, list[int]]:
    """Flatten one trajectory's log-probs to tokens, with the token count of each episode."""
    if isinstance(logprobs, torch.Tensor):
        flat = logprobs.reshape(-1)
        if flat.numel() != n:
            raise ValueError(f"a (n,) {what} tensor needs one entry per episode ({n}), got {flat.numel()}.")
        return flat, [1] * n
    parts = list(logprobs)
    if len(parts) != n:
        raise ValueError(f"{what} needs one tensor per episode ({n}), got {len(parts)}.")
    if n == 0:
        return torch.zeros(0), []
    return torch.cat([p.reshape(-1) for p in parts]), [p.numel() for p in parts]


def flatten_batch(
    trajectories: Sequence[Trajectory], advantages: Sequence[np.ndarray] | None = None
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Token-level (logprobs, advantages repeated over each episode's tokens, ref_logprobs or None)."""
    lps, advs, refs = [], [], []
    for i, t in enumerate(trajectories):
        if t.logprobs is None:
            raise ValueError(f"trajectory {i} has no logprobs; losses need the policy's log-probabilities.")
        lp, counts = _tokens(t.logprobs, t.num_episodes, "logprobs")
        lps.append(lp)
        if advantages is not None:
            a = np.asarray(advantages[i], dtype=np.float64)
            if a.shape != (t.num_episodes,):
                raise ValueError(f"advantages[{i}] needs shape ({t.num_episodes},), got {a.shape}.")
            advs.append(torch.as_tensor(np.repeat(a, counts), dtype=lp.dtype))
        if t.ref_logprobs is not None:
            refs.append(_tokens(t.ref_logprobs, t.num_episodes, "ref_logprobs")[0])
    if not lps:
        raise ValueError("the batch holds no trajectory.")
    logprobs = torch.cat(lps)
    adv = torch.cat(advs) if advantages is not None else None
    ref = torch.cat(refs) if refs and len(refs) == len(lps) else None
    return logprobs, adv, ref


def pg_loss(
    trajectories: Sequence[Trajectory], advantages: Sequence[np.ndarray], kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None, entropy_coef: float = 0.0,
) -> torch.Tensor:
    """`policy_gradient_loss` over a batch of trajectories (token-level mean, each token weighted by
    its episode's advantage); the KL term uses `Trajectory.ref_logprobs`; `entropy`: the policy's
    `mean_entropy` over the tokens that carry log-probabilities here (the trainer computes it: a
    Trajectory holds only the taken tokens' log-probabilities)."""
    if len(advantages) != len(trajectories):
        raise ValueError(f"need one advantage array per trajectory, got {len(advantages)} for {len(trajectories)}.")
    logprobs, adv, ref = flatten_batch(trajectories, advantages)
    if kl_coef > 0.0 and ref is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs on every trajectory.")
    return policy_gradient_loss(logprobs, adv, ref, kl_coef, entropy, entropy_coef)


def nll_loss(logprobs: torch.Tensor) -> torch.Tensor:
    """-mean(logprobs) over a 1-D token tensor: the one place the SFT loss is written."""
    if logprobs.numel() == 0:
        return logprobs.sum() * 0.0
    return -logprobs.reshape(-1).mean()


def sft_loss(trajectories: Sequence[Trajectory]) -> torch.Tensor:
    """Supervised fine-tuning (max log-likelihood): -mean over all tokens of the batch of log pi."""
    return nll_loss(flatten_batch(trajectories)[0])


# -- trace selection (STaR / rejection sampling) --------------------------------------------------
def star_select(trajectories: Sequence[Trajectory]) -> list[Trajectory]:
    """STaR / rejection sampling: keep the trajectories that end correct (outcome >= 0.5, i.e. 1)."""
    return [t for t in trajectories if t.outcome >= 0.5]


def mrt_star_select(trajectories: Sequence[Trajectory], *, tol: float = 1e-9) -> list[Trajectory]:
    """MRT-STaR (`mrt-star`): per group, the correct trajectories of maximal progress.

    MRT §6, Figure 6: "the STaR variant selectively retains only reasoning traces that maximize
    progress and are also followed by correct solutions". Among the trajectories of a group (same
    `Trajectory.group`: the rollouts of one problem, which share J_0) that end correct, keep every
    one whose total progress J_final - J_0 (the sum of its episodes' progress, the quantity MRT's
    progress bonus sums to along a trace) is within `tol` of the group's largest; ties are all kept.
    The figure does not say how many traces per problem survive or how ties break: we keep all that
    tie, and nothing else. A trace that lowers J in one episode and recovers later is kept if its
    total is maximal (unlike `mrt_star_threshold_select`); a lucky correct guess with less progress
    than another correct rollout of its problem is dropped. A group of one: its trace if correct.
    """
    tol = check_float("tol", tol, minimum=0.0)
    correct = [t for t in trajectories if t.outcome >= 0.5]
    best: dict = {}
    for t in correct:
        best[t.group] = max(best.get(t.group, -np.inf), t.total_progress)
    return [t for t in correct if t.total_progress >= best[t.group] - tol]


def mrt_star_threshold_select(
    trajectories: Sequence[Trajectory], *, min_total_progress: float = 0.0, tol: float = 1e-9
) -> list[Trajectory]:
    """`mrt-star-threshold`: keep the trajectories that end correct AND never lose progress.

    ttc-gym's earlier MRT-STaR rule (not the paper's, see `mrt_star_select`): outcome >= 0.5, every
    episode's progress >= -tol (no episode lowers J), and total progress (J_final - J_0) >
    min_total_progress (a lucky guess with no progress is dropped). Needs no groups.
    """
    return [
        t
        for t in trajectories
        if t.outcome >= 0.5
        and (t.num_episodes == 0 or float(t.progress.min()) >= -tol)
        and t.total_progress > min_total_progress
    ]


def select_all(trajectories: Sequence[Trajectory]) -> list[Trajectory]:
    """Verifier-free cloning: keep every trajectory."""
    return list(trajectories)


#: The SFT algorithms: name -> (trace selection, the options of `select` it takes).
SELECTORS: dict[str, tuple[Callable[..., list[Trajectory]], tuple[str, ...]]] = {
    "star": (star_select, ()),
    "mrt-star": (mrt_star_select, ()),
    "mrt-star-threshold": (mrt_star_threshold_select, ("min_total_progress",)),
    "sft": (select_all, ()),
}


def select(algo: str, trajectories: Sequence[Trajectory], *, min_total_progress: float = 0.0) -> list[Trajectory]:
    """The trajectories the SFT algorithm `algo` keeps, through `SELECTORS` (the one dispatch every
    trainer uses); `min_total_progress` goes to the selections that take it (`mrt-star-threshold`)."""
    if algo not in SELECTORS:
        raise unknown_name_error("selection algo", algo, SELECTORS)
    fn, takes = SELECTORS[algo]
    options = {"min_total_progress": check_float("min_total_progress", min_total_progress)}
    return fn(trajectories, **{k: v for k, v in options.items() if k in takes})


#: Every algorithm name, from the tables above: policy-gradient ones, then SFT ones.
RL_ALGOS: tuple[str, ...] = tuple(ADVANTAGES)
SFT_ALGOS: tuple[str, ...] = tuple(SELECTORS)
ALGOS: tuple[str, ...] = RL_ALGOS + SFT_ALGOS

#: One line per algorithm, for the trainers' --help (`algo_help`).
DESCRIPTIONS: dict[str, str] = {
    "grpo": "outcome-only policy gradient, group-normalized 0/1 reward",
    "mrt": "MRT (RL), the paper's recipe: branches of a prefix written by an older policy continue or terminate; "
           "outcome + alpha * progress over the prefix, normalized across both (or minus the terminating branches' "
           "mean: --mrt-credit termination); only the branches' own tokens are trained",
    "mrt-online": "MRT-online: each episode credited with its own progress inside the group normalization "
                  "(outcome and progress share the group's scale)",
    "mrt-online-raw": "ttc-gym's earlier mrt: group-normalized outcome advantage + alpha * each episode's raw progress",
    "mrt-termination": "MRT code's termination baseline: outcome minus J of answering at the prefix (no alpha; "
                       "G = 1 allowed)",
    "mrt-rtg": "outcome advantage + alpha * group z-score of the progress-to-go (shaping with potential alpha*J: "
               "grpo's optimum only when the answer is forced at the budget's end)",
    "star": "SFT on the traces that end correct",
    "mrt-star": "SFT on the correct traces of maximal progress in their group (MRT's selection)",
    "mrt-star-threshold": "SFT on the correct traces in which no episode lowers J and J rises by more than "
                          "min_total_progress",
    "sft": "SFT on every trace (verifier-free cloning)",
}


def algo_help(names: Sequence[str]) -> str:
    """'name: what it computes; ...' for `names`, from `DESCRIPTIONS` (docs/formulation.md §4)."""
    return "; ".join(f"{n}: {DESCRIPTIONS.get(n, 'see docs/formulation.md §4')}" for n in names)
