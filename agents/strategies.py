"""Classic test-time strategies as TTC-Math-v0 agents, each built on an `LLMAgent` (composition):

- `ThinkUntilBudget`: never commits; the env forces the answer when the budget runs out.
- `BudgetForcing`: s1-style — before `min_episodes`, a commit is cut and replaced by "Wait," so the
  model keeps thinking; afterwards it behaves like the plain LLM agent.
- `StopWhenConfident`: commits the prover's majority answer as soon as the prover's forced answers
  agree enough (the share equal to the majority answer reaches a threshold): gold-free.
- `OracleStopWhenConfident`: the same, but stops when the prover's J reaches the threshold. J is
  graded against the gold answer, so it is an oracle, not a deployable strategy (docs/formulation.md §3).
- `MajorityVote`: thinks for k episodes, then commits the majority vote of all the prover's forced
  answers collected across those episodes (maj@k over episodes, docs/formulation.md §5).

Each follows `ttc_gym.agent.Agent` and is a frozen dataclass of its LLM and its settings, whose
defaults are written once, here (the bench factories take theirs from these classes). `reset(seed=s)`
passes the problem's seed on to the LLM, which re-derives its sampling seed from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ttc_gym.agents.llm import LLMAgent, commit_text
from ttc_gym.answer_extraction import first_box_command
from ttc_gym.metrics import answer_agreement, majority_vote
from ttc_gym.validation import check_float, check_int

KEEP_THINKING = "Let me keep thinking about this."


def keep_thinking(llm: LLMAgent, obs: dict, info: dict) -> str:
    """The LLM's next episode with any commit removed (never empty)."""
    text = without_commit(llm.act(obs, info))
    return text if text.strip() else KEEP_THINKING


def without_commit(text: str) -> str:
    """The episode with any `\\boxed` / `\\fbox` commit (from the first box command on) removed."""
    cut = first_box_command(text)
    return text if cut is None else text[:cut].rstrip(" $([")


@dataclass(frozen=True)
class ThinkUntilBudget:
    llm: LLMAgent

    def reset(self, seed: int | None = None) -> None:
        self.llm.reset(seed=seed)

    def act(self, obs: dict, info: dict) -> str:
        return keep_thinking(self.llm, obs, info)


@dataclass(frozen=True)
class BudgetForcing:
    llm: LLMAgent
    min_episodes: int = 3

    def __post_init__(self) -> None:
        check_int("min_episodes", self.min_episodes, minimum=1)

    def reset(self, seed: int | None = None) -> None:
        self.llm.reset(seed=seed)

    def act(self, obs: dict, info: dict) -> str:
        text = self.llm.act(obs, info)
        if info["episodes_used"] + 1 >= self.min_episodes:
            return text
        cut = without_commit(text)
        return (cut + " Wait,").strip() if cut != text or not cut.strip() else text


@dataclass(frozen=True)
class StopWhenConfident:
    """Think until the prover's K forced answers agree (the share equal to the most common one,
    `ttc_gym.metrics.answer_agreement`, reaches `threshold`), then commit that answer. Gold-free: the
    forced answers are compared with one another, never graded."""

    llm: LLMAgent
    threshold: float = 0.75

    def __post_init__(self) -> None:
        check_float("threshold", self.threshold, minimum=0.0, maximum=1.0)

    def reset(self, seed: int | None = None) -> None:
        self.llm.reset(seed=seed)

    def confident(self, info: dict) -> bool:
        return answer_agreement(info.get("prover_answers", ())) >= self.threshold

    def act(self, obs: dict, info: dict) -> str:
        answer = majority_vote([a for a in info.get("prover_answers", ()) if a])
        if answer is not None and self.confident(info):
            return commit_text(answer)
        return keep_thinking(self.llm, obs, info)


@dataclass(frozen=True)
class OracleStopWhenConfident(StopWhenConfident):
    """ORACLE (reads gold-derived J): `StopWhenConfident` that stops once the prover's J (from `info`)
    reaches `threshold`. J is graded against the gold answer, which a deployed system does not have;
    bench tables mark this agent as an oracle (docs/formulation.md §3)."""

    def confident(self, info: dict) -> bool:
        return info["J"] >= self.threshold


@dataclass(frozen=True)
class MajorityVote:
    llm: LLMAgent
    k: int = 2
    _pool: list = field(default_factory=list, init=False, repr=False, compare=False)  # this problem's answers

    def __post_init__(self) -> None:
        check_int("k", self.k, minimum=1)

    def reset(self, seed: int | None = None) -> None:
        self._pool.clear()
        self.llm.reset(seed=seed)

    def act(self, obs: dict, info: dict) -> str:
        if info["episodes_used"] > 0:  # the prover's answers after the last episode
            self._pool.extend(a for a in info.get("prover_answers", ()) if a)
        if info["episodes_used"] >= self.k:
            vote = majority_vote(self._pool)
            if vote is not None:
                return commit_text(vote)
        return keep_thinking(self.llm, obs, info)
