"""The training algorithms of ttc-gym as plain functions: advantages, losses and trace selection.

Policy-agnostic: nothing here knows what a policy is. A batch is a list of `Trajectory`: one
problem's rollout, i.e. its reasoning *episodes* (one env step each, stored column-wise: the
log-probability of the episode's action or tokens, its progress and its cost) and the final 0/1
outcome. The TTC-Sim-v0 trainer and the LLM trainer build these from their own rollouts and call the
same functions.

Notation (docs/formulation.md §4): trajectory i of group g (the G rollouts of one problem) has episodes
j = 0..n_i-1 with progress p_ij = J_j - J_{j-1} and cost c_ij, and a final outcome o_i in {0, 1}.

* Outcome-only (GRPO): R_i = o_i - cost_coef * sum_j c_ij (cost_coef = 0 by default: the plain 0/1
  reward), A_i = (R_i - mean_g R) / (std_g R + eps), the same for every episode of trajectory i.
* MRT (group-normalized): A_ij = A_i + alpha * (P_ij - mean_g P) / (std_g P + eps), with
  P_ij = sum_{k>=j} p_ik the progress-to-go of episode j (= J_final - J_{j-1}) and mean/std taken
  over every episode of the group. At alpha = 0 this is the outcome-only advantage exactly.
* MRT (termination baseline): A_ij = o_i + alpha * P_ij - cost_coef * C_ij - J_{j-1}: the return of
  continuing from episode j minus the return of answering right before it (a forced answer then is
  correct with probability J_{j-1} and earns no further progress). C_ij is the cost-to-go.
  Not normalized; at alpha = 0 it is REINFORCE with the prover as baseline, not GRPO.

Because progress telescopes, the progress term is potential-based shaping with potential alpha * J:
in expectation both MRT forms push in the same direction as the outcome-only gradient whenever the
prover is exact and the answer is correct with probability J (as in TTC-Sim-v0); what changes is the
variance of the per-episode credit.

The one policy-gradient loss: `policy_gradient_loss` = -mean over tokens of (A * log pi), plus
kl_coef * mean k3-estimate of KL(pi || pi_ref) on the same tokens. `sft_loss` = -mean log pi.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ttc_gym.rewards import check_alpha, j_curve_from_progress
from ttc_gym.validation import check_float, unknown_name_error

#: The policy-gradient algorithms `advantages` dispatches on, and the two forms of MRT's advantage.
ADVANTAGE_ALGOS = ("grpo", "mrt")
MRT_FORMS = ("group", "termination")


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
        j0: J before any episode (needed by the termination-baseline form only).
    """

    group: Hashable
    outcome: float
    progress: np.ndarray
    cost: np.ndarray
    logprobs: torch.Tensor | Sequence[torch.Tensor] | None = None
    ref_logprobs: torch.Tensor | Sequence[torch.Tensor] | None = None
    j0: float = float("nan")

    def __post_init__(self) -> None:
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


def mrt_advantages(
    trajectories: Sequence[Trajectory],
    *,
    alpha: float,
    cost_coef: float = 0.0,
    eps: float = 1e-6,
    scale: bool = True,
) -> list[np.ndarray]:
    """MRT, group-normalized: outcome advantage + alpha * z-score of the progress-to-go.

    A_ij = A_i + alpha * (P_ij - mean_g P) / (std_g P + eps), A_i from `outcome_advantages`, P_ij the
    progress-to-go of episode j, mean and (population) std over all episodes of the group. Episode j is
    credited only with progress made from it on. Exactly `outcome_advantages` when alpha == 0.
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


def termination_advantages(
    trajectories: Sequence[Trajectory], *, alpha: float, cost_coef: float = 0.0
) -> list[np.ndarray]:
    """MRT, termination-baseline form: A_ij = o_i + alpha * P_ij - cost_coef * C_ij - J_{j-1}.

    The return of continuing from episode j (outcome, progress-to-go P_ij, cost-to-go C_ij) minus the
    expected return of answering instead, J_{j-1} (J_{j-1} = j0 + progress before episode j). Needs
    `Trajectory.j0`. No group statistics: usable with G = 1.
    """
    alpha = check_alpha(alpha)
    check_float("cost_coef", cost_coef, minimum=0.0)
    out = []
    for t in trajectories:
        if not np.isfinite(t.j0):
            raise ValueError("termination_advantages needs Trajectory.j0 (J before any episode); got NaN.")
        j_before = j_curve_from_progress(t.j0, t.progress)[:-1]
        cost_to_go = np.cumsum(t.cost[::-1])[::-1]
        out.append(t.outcome + alpha * progress_to_go(t) - cost_coef * cost_to_go - j_before)
    return out


def advantages(
    algo: str,
    trajectories: Sequence[Trajectory],
    *,
    alpha: float,
    mrt_form: str,
    cost_coef: float = 0.0,
    eps: float = 1e-6,
    scale: bool = True,
) -> list[np.ndarray]:
    """The advantages of a batch as a trainer's settings choose them, the one dispatch every trainer
    uses (docs/formulation.md §4): `algo` "grpo" -> `outcome_advantages`; "mrt" with `mrt_form`
    "group" -> `mrt_advantages`, with "termination" -> `termination_advantages` (which has no group
    statistics, so `eps` and `scale` do not apply to it)."""
    if algo not in ADVANTAGE_ALGOS:
        raise unknown_name_error("advantage algo", algo, ADVANTAGE_ALGOS)
    if mrt_form not in MRT_FORMS:
        raise unknown_name_error("mrt_form", mrt_form, MRT_FORMS)
    if algo == "grpo":
        return outcome_advantages(trajectories, cost_coef=cost_coef, eps=eps, scale=scale)
    if mrt_form == "termination":
        return termination_advantages(trajectories, alpha=alpha, cost_coef=cost_coef)
    return mrt_advantages(trajectories, alpha=alpha, cost_coef=cost_coef, eps=eps, scale=scale)


# -- losses ---------------------------------------------------------------------------------------
def policy_gradient_loss(
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
) -> torch.Tensor:
    """-mean(advantages * logprobs) + kl_coef * mean(k3), over aligned 1-D token tensors.

    k3 = exp(ref - logp) - (ref - logp) - 1, the unbiased, non-negative per-token estimate of
    KL(pi || pi_ref) used by GRPO. The only place the policy-gradient loss is written.
    """
    kl_coef = check_float("kl_coef", kl_coef, minimum=0.0)
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
    trajectories: Sequence[Trajectory], advantages: Sequence[np.ndarray], kl_coef: float = 0.0
) -> torch.Tensor:
    """`policy_gradient_loss` over a batch of trajectories (token-level mean, each token weighted by
    its episode's advantage); the KL term uses `Trajectory.ref_logprobs`."""
    if len(advantages) != len(trajectories):
        raise ValueError(f"need one advantage array per trajectory, got {len(advantages)} for {len(trajectories)}.")
    logprobs, adv, ref = flatten_batch(trajectories, advantages)
    if kl_coef > 0.0 and ref is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs on every trajectory.")
    return policy_gradient_loss(logprobs, adv, ref, kl_coef)


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


def mrt_star_select(
    trajectories: Sequence[Trajectory], *, min_total_progress: float = 0.0, tol: float = 1e-9
) -> list[Trajectory]:
    """MRT-STaR: keep the trajectories that end correct AND make progress.

    Rule: outcome >= 0.5, every episode's progress >= -tol (no episode lowers J), and total progress
    (J_final - J_0) > min_total_progress (a lucky guess with no progress is dropped).
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
