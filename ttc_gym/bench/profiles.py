"""What the benchmark runner knows about each env: how a budget becomes env kwargs, the largest budget
the env allows, the comparator J* of the regret metrics, and the defaults of `ttc-gym bench --env ID`.
Entry points are strings (`"ttc_gym.agents.factories:sim_j_star"`), imported only when a run needs them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvProfile:
    """Attributes:
    env_id: the Gymnasium id.
    budget_kwargs: the env kwargs a budget may set: "max_episodes" (H) and/or "max_tokens" (C0).
    max_episodes, max_tokens: the largest H / C0 the env accepts (None: no known limit).
    episodes_required: every budget must set H (the env needs max_episodes).
    action_kind: "meta" (Discrete(4) MetaAction) or "text"; None when unknown.
    default_agents, default_budgets, default_problems: what a run without --agents/--budgets/--problems uses
        (an agent at its defaults is named without arguments: they live in its factory). Gold-free
        agents, plus an oracle one (`AgentEntry.oracle`, marked in tables) as a gold-informed reference.
    rank_by: the metric the table ranks by by default.
    j_star: "module:attr" of `f(env) -> float | list[float]`: J* at the env's budget, or the curve J*_j
        (j = 0..H, the best accuracy reachable with j episodes) that the episode regret then uses
        (docs/formulation.md §5); None: J* = 1 (a perfect solver).
    budget_tokens: "module:attr" of `f(env) -> int`, C0 for the token regret; None: the budget's
        max_tokens, or else the most tokens any agent used at that budget.
    cheap_make: making the env costs nothing (no model to load): the runner makes one per budget while
        validating, to surface the env's own argument errors before any compute.
    note: printed under the table.
    """

    env_id: str
    budget_kwargs: tuple[str, ...] = ("max_episodes",)
    max_episodes: int | None = None
    max_tokens: int | None = None
    episodes_required: bool = True
    action_kind: str | None = None
    default_agents: tuple[str, ...] = ()
    default_budgets: tuple[int | str, ...] = ()
    default_problems: int = 100
    rank_by: str = "return"
    j_star: str | None = None
    budget_tokens: str | None = None
    cheap_make: bool = False
    note: str = ""


# The meta-action envs over LLM reasoning (live or stored) compare the same gold-free rules, and the oracle.
META_DEFAULT_AGENTS = ("answer-when-confident", "answer-after:1", "answer-after", "random",
                       "oracle-answer-when-confident")

PROFILES: dict[str, EnvProfile] = {
    "TTC-Sim-v0": EnvProfile(
        env_id="TTC-Sim-v0",
        budget_kwargs=("max_episodes",),
        max_episodes=1000,
        action_kind="meta",
        default_agents=(
            "oracle", "q-learning", "ppo", "answer-when-confident", "never-verify", "answer-after", "random",
            "oracle-answer-when-confident",
        ),
        default_budgets=(2, 4, 10),
        default_problems=1000,
        rank_by="return",
        j_star="ttc_gym.agents.factories:sim_j_star",
        budget_tokens="ttc_gym.agents.factories:sim_budget_tokens",
        cheap_make=True,
        note=(
            "Learners are trained on the spot for each budget, briefly (their default steps: ttc-gym bench "
            "--list-agents; 90-99% of the oracle's return at these budgets; 'ppo:steps=200000' trains "
            "longer). J*_j = the best accuracy reachable with j episodes (accuracy DP, `oracle-accuracy` reaches J*_H); tokens are simulated (256 per "
            "episode). The oracle maximizes return, which charges episode_cost per episode; the regrets "
            "charge nothing for compute, so a policy that spends its whole budget verifying can match or "
            "beat the oracle's regret. oracle-answer-when-confident reads J, computed from the hidden slip: it "
            "knows more than any policy over observations, the DP oracle among them."
        ),
    ),
    # The LLM envs: budgets in episodes and tokens, J* = 1 unless a comparator is stated (--j-star).
    "TTC-Math-v0": EnvProfile(
        env_id="TTC-Math-v0",
        budget_kwargs=("max_episodes", "max_tokens"),
        action_kind="text",
        default_agents=("llm", "think-until-budget", "stop-when-confident:0.5", "majority-vote:1",
                        "oracle-stop-when-confident:0.5"),
        default_budgets=(2,),
        default_problems=8,
        rank_by="accuracy",
        note=(
            "Default model SmolLM2-135M-Instruct on CPU, K = 8 forced answers per episode, episodes of "
            "at most max_episode_tokens tokens (ttc-gym bench --list-agents). Eight problems give wide intervals: use --problems 100 (or a GPU engine) for a "
            "real comparison. J* = 1 (a perfect solver) unless --j-star or --j-star-from is given."
        ),
    ),
    "TTC-MathMeta-v0": EnvProfile(
        env_id="TTC-MathMeta-v0",
        budget_kwargs=("max_episodes", "max_tokens"),
        action_kind="meta",
        default_agents=META_DEFAULT_AGENTS,
        default_problems=20,
        rank_by="accuracy",
    ),
    # Stored traces (the shipped SmolLM2 set by default): no model, simulator speed.
    "TTC-Replay-v0": EnvProfile(
        env_id="TTC-Replay-v0",
        budget_kwargs=("max_episodes", "max_tokens"),
        action_kind="meta",
        default_agents=META_DEFAULT_AGENTS,
        default_budgets=(2, 4, 8),
        default_problems=200,
        rank_by="return",
        cheap_make=True,
        note="Problems are drawn from the shipped analysed trace set (--env-kwarg data=PATH for another; "
             "split=test for held-out problems). J* = 1 unless --j-star or --j-star-from is given.",
    ),
}


def profile_for(env_id: str) -> EnvProfile:
    """The env's profile, or a generic one (episode budgets, no defaults) for any other Gymnasium env."""
    return PROFILES.get(env_id) or EnvProfile(env_id=env_id)
