"""A heterogeneous expert for TTC-Sim-v0: on each problem it follows one test-time strategy drawn at
random, so the quality of its traces varies from trace to trace (the "heterogeneous base policy" of
the verifier-free vs verifier-based theory, docs/formulation.md §7). `spread` sets how heterogeneous:
with probability 1 - spread a problem gets the one base heuristic, with probability `spread` a
strategy drawn from the mixture; spread 0 is a single heuristic, 1 the full mixture.

Gold-free (docs/formulation.md §3): every strategy decides from its observation and the gold-free
parts of `info` (the episode count), never from J, progress or the outcome.

* base: `NeverVerify(2)`: continue; switch after 2 episodes without progress; answer at the first
  candidate.
* mixture (each kind with probability 1/3, its parameters drawn too):
  `AnswerAfterK(k)`, k uniform in 1..H: thinks k episodes on the first strategy, never switches;
  `NeverVerify(patience)`, patience in {1, 2, 3};
  `AnswerWhenConfident(threshold, patience)`, threshold in {0.9, 0.99}, patience in {1, 2}: answers
  once E[J | observation] under the env's public model (`env.unwrapped.model`, gold-free) reaches
  the threshold, checks then switches when it stalls (needs `model`).

Until this version the third kind was `OracleAnswerWhenConfident`, which reads the prover's J from
`info` (gold-derived): that expert was an oracle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ttc_gym.agents.heuristics import AnswerAfterK, AnswerWhenConfident, NeverVerify
from ttc_gym.envs.sim_model import OBS_FIELDS
from ttc_gym.validation import check_float, check_int

STRATEGIES = ("answer_after_k", "never_verify", "answer_when_confident")
BASE_STRATEGY = "never_verify(2)"


class _BaseFields:
    """Shows a heuristic the first-release observation fields only (OBS_FIELDS), not the `kept_steps`
    field TTC-Sim-v0 appends when `switch_keep` > 0: the expert is defined on those six fields (the
    heuristics themselves accept the longer observation)."""

    def __init__(self, agent: Any):
        self.agent = agent

    def reset(self, seed: int | None = None) -> None:
        self.agent.reset(seed)

    def act(self, obs, info: dict) -> int:
        return self.agent.act(np.asarray(obs)[: len(OBS_FIELDS)], info)

    def __repr__(self) -> str:
        return repr(self.agent)


class HeterogeneousExpert:
    """Draws one gold-free heuristic agent per problem from an explicit seed.

    Args:
        max_episodes: the env's budget H (the range of AnswerAfterK's k).
        seed: seeds the draws.
        spread: probability that a problem's strategy is drawn from the mixture instead of being the
            base heuristic (0: one heuristic; 1: the full mixture).
        model: the env's public model (`env.unwrapped.model`), needed by `AnswerWhenConfident` when
            spread > 0.
    """

    def __init__(self, max_episodes: int, seed: int = 0, spread: float = 1.0, model: Any = None):
        self.max_episodes = check_int("max_episodes", max_episodes, minimum=1)
        self.spread = check_float("spread", spread, minimum=0.0, maximum=1.0)
        if self.spread > 0 and not callable(getattr(model, "expected_j", None)):
            raise TypeError(
                "HeterogeneousExpert with spread > 0 needs the env's public model (env.unwrapped.model, "
                f"with expected_j) for its gold-free confidence, got {model!r}."
            )
        self.model = model
        self._rng = np.random.default_rng(seed)

    def draw(self):
        rng = self._rng
        mixed = rng.random() < self.spread
        kind = STRATEGIES[int(rng.integers(len(STRATEGIES)))]
        if not mixed:
            agent = NeverVerify(2)
        elif kind == "answer_after_k":
            agent = AnswerAfterK(int(rng.integers(1, self.max_episodes + 1)))
        elif kind == "never_verify":
            agent = NeverVerify(int(rng.integers(1, 4)))
        else:
            agent = AnswerWhenConfident(float(rng.choice([0.9, 0.99])), int(rng.integers(1, 3)), model=self.model)
        agent = _BaseFields(agent)
        agent.reset()
        return agent

    def agents(self, n: int) -> list:
        """One freshly drawn agent per problem of a batch of n."""
        return [self.draw() for _ in range(n)]
