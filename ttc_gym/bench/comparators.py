"""The comparators of a run's regrets, per budget: J* (a number, the env's exact curve, or a curve from
the run's own records) and C0 (docs/formulation.md §5)."""

from __future__ import annotations



from ttc_gym.bench.agent_registry import (
    resolve_entry_point,
)
from ttc_gym.bench.report import BEST_PREFIX
from ttc_gym.bench.config import MAJ_CONVENTION, TOKEN_REGRET_CONVENTION, budget_label
from ttc_gym.bench.plan import BenchPlan, make_bench_env



# ----------------------------------------------------------------------------------------------------
# Comparators per budget: J* and C0


def comparators(plan: BenchPlan) -> dict[str, dict]:
    """J* and C0 (None: decided from the records) at each budget."""
    out = {}
    profile = plan.profile
    j_star_fn = resolve_entry_point(profile.j_star) if plan.j_star is None and profile.j_star else None
    c0_fn = resolve_entry_point(profile.budget_tokens) if profile.budget_tokens else None
    for budget in plan.budgets:
        env = make_bench_env(plan.env_id, plan.env_kwargs, budget) if (j_star_fn or c0_fn) else None
        if plan.j_star_from is not None:  # per problem, from the records (report.j_star_from_records)
            j_star = 1.0
            source = ("best prefix: the best J any agent reached within j episodes, per problem (oracle comparator)"
                      if plan.j_star_from == BEST_PREFIX else f"agent {plan.j_star_from}'s J curve, per problem")
        elif plan.j_star is not None:
            j_star, source = plan.j_star, "given"
        elif j_star_fn is not None:
            j_star, source = j_star_fn(env), profile.j_star
        else:
            j_star, source = 1.0, "perfect solver"
        # A curve J*_j (j = 0..H: the best accuracy reachable with j episodes) or one number for every j.
        j_star_curve = [float(x) for x in j_star] if isinstance(j_star, (list, tuple)) else None
        j_star = j_star_curve[-1] if j_star_curve else float(j_star)
        c0 = int(c0_fn(env)) if c0_fn is not None else budget.max_tokens
        if env is not None:
            env.close()
        out[budget_label(budget)] = {
            "max_episodes": budget.max_episodes, "max_tokens": budget.max_tokens,
            "j_star": j_star, "j_star_source": source, "budget_tokens": c0,
            # which comparator the episode regret used: "curve J*_j" (j_star_curve) or "scalar J*"
            "episode_regret_comparator": "curve J*_j" if (j_star_curve or plan.j_star_from) else "scalar J*",
            # which convention the token regret used (MRT's notebook one is metrics.mrt_normalized_token_regret)
            "token_regret_convention": TOKEN_REGRET_CONVENTION,
            # what the table's maj@k column is (MRT's maj@k at one prefix is metrics.maj_at_k_one_prefix)
            "maj_convention": MAJ_CONVENTION,
        }
        if j_star_curve:
            out[budget_label(budget)]["j_star_curve"] = j_star_curve
        if plan.j_star_from is not None:
            out[budget_label(budget)]["j_star_from"] = plan.j_star_from
    return out
