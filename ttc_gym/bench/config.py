"""The benchmark's configuration: what to run (`BenchConfig`, its fields' help text the command line's
`ttc-gym bench` options), budgets and their labels, the files a run writes and the metrics it ranks by."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ttc_gym.bench.results_file import RESULTS_FILE
from ttc_gym.bench.run_identity import CONFIG_FILE
from ttc_gym.budget import Budget

DEFAULT_ENV = "TTC-Math-v0"  # the main job: `ttc-gym bench` with no --env
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
TABLE_FILE = "table.txt"
PLOT_FILES = ("accuracy_vs_tokens.png", "j_curves.png", "regret.png", "maj_at_k.png")
OUTPUT_FILES = (RESULTS_FILE, CONFIG_FILE, SUMMARY_JSON, SUMMARY_CSV, TABLE_FILE) + PLOT_FILES
RANK_METRICS = ("return", "accuracy", "maj_accuracy", "maj_one_prefix", "token_regret", "mrt_token_regret",
                "episode_regret", "episodes", "tokens")


# ----------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class BenchConfig:
    """What to run. Empty / None fields take the env's defaults (`ttc_gym.bench.profiles`)."""

    env_id: str = field(default=DEFAULT_ENV, metadata={"help": "registered env id (`ttc-gym envs` lists them)"})
    agents: Sequence[str] = field(default=(), metadata={"help": "agent specs (NAME[:ARGS] or module:factory); "
                                                                "default: the env's default set"})
    budgets: Sequence[Any] = field(
        default=(), metadata={"help": "budgets: H (episodes), H:C0 (episodes and tokens) or :C0 (tokens); "
                                      "default: the env's"}
    )
    num_problems: int | None = field(default=None, metadata={"help": "problems per agent and budget; default: the env's"})
    base_seed: int = field(default=0, metadata={"help": "problem i uses seed base_seed + i"})
    env_kwargs: dict = field(default_factory=dict, metadata={"help": "extra gym.make arguments (not budgets), "
                                                                     "e.g. heterogeneity=0.5"})
    j_star: float | None = field(
        default=None, metadata={"help": "comparator accuracy J* of the regrets (default: the oracle's on TTC-Sim-v0, "
                                        "else 1)"}
    )
    j_star_from: str | None = field(
        default=None,
        metadata={"help": "comparator curve J*_j per problem from this run's records: 'best-prefix' (the best J "
                          "any agent reached within j episodes; an oracle comparator) or an agent's name"},
    )
    rank_by: str | None = field(default=None, metadata={"help": "metric the table ranks by: " + ", ".join(RANK_METRICS)})
    out_dir: str | None = field(default=None, metadata={"help": "output folder (default bench_out/ENV_ID)"})


# What the summary's regret and majority-vote figures are (docs/formulation.md §5), named in every budget.
TOKEN_REGRET_CONVENTION = (
    "token regret: ttc-gym's, J(tokens) from J_0 at 0 tokens through each episode's end, held to C0; "
    "J* - area / C0 (metrics.normalized_token_regret). MRT token regret (LLM envs): MRT's notebook, "
    "J = 0 at 0 tokens, each point at prompt + reasoning + mean forced-answer tokens, 1 - area / C0 "
    "(metrics.mrt_normalized_token_regret)"
)
MAJ_CONVENTION = (
    "maj@k pooled: majority vote of the forced answers pooled over episodes 1..k "
    "(metrics.maj_pooled_over_episodes). maj@K 1 prefix (LLM envs): MRT's, the K forced answers at the "
    "rollout's last prefix, ties 1/2 (metrics.maj_at_k_one_prefix_graded)"
)


def budget_label(budget: Budget) -> str:
    parts = []
    if budget.max_episodes is not None:
        parts.append(f"H={budget.max_episodes}")
    if budget.max_tokens is not None:
        parts.append(f"C0={budget.max_tokens}")
    return ",".join(parts)


def budget_kwargs(budget: Budget) -> dict:
    return {k: v for k, v in (("max_episodes", budget.max_episodes), ("max_tokens", budget.max_tokens)) if v is not None}


def parse_budget(value: Any) -> Budget:
    """`Budget`, int H, dict, or a string "H", "H:C0" or ":C0" -> Budget (errors say what was expected)."""
    if isinstance(value, Budget):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"max_episodes", "max_tokens"}
        if unknown:
            raise ValueError(f"a budget dict takes max_episodes and max_tokens, got {sorted(unknown)}.")
        return Budget(max_episodes=value.get("max_episodes"), max_tokens=value.get("max_tokens"))
    if isinstance(value, str):
        text = value.strip()
        episodes, colon, tokens = text.partition(":")

        def as_int(part: str, what: str) -> int | None:
            if part.strip() == "":
                return None
            try:
                return int(part)
            except ValueError:
                raise ValueError(
                    f"budget {value!r}: {what} must be an integer, got {part!r} "
                    f"(write H, H:C0 or :C0, e.g. 4, 4:2048 or :2048)."
                ) from None

        h, c0 = as_int(episodes, "H (episodes)"), as_int(tokens, "C0 (tokens)") if colon else None
        if h is None and c0 is None:
            raise ValueError(f"budget {value!r} is empty (write H, H:C0 or :C0, e.g. 4, 4:2048 or :2048).")
        return Budget(max_episodes=h, max_tokens=c0)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"a budget must be an integer H (episodes) or a string 'H:C0', got {value!r}.")
    return Budget(max_episodes=int(value), max_tokens=None)
