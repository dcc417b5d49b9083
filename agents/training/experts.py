"""A heterogeneous expert for TTC-Sim-v0: on each problem it follows one test-time strategy drawn at
random from a mixture of fixed heuristics, so the quality of its traces varies a lot from trace to
trace (the "heterogeneous base policy" of the verifier-free vs verifier-based theory, docs/formulation.md §7).

Mixture (each with probability 1/3, parameters drawn too):
* `AnswerAfterK(k)`, k uniform in 1..H: thinks k episodes on the first strategy, never switches;
* `NeverVerify(patience)`, patience in {1, 2, 3}: switches when stuck, answers at the first candidate;
* `OracleAnswerWhenConfident(threshold, patience)`, threshold in {0.9, 0.99}, patience in {1, 2}: reads the
  prover's J from `info` (which the policy's observation does not show) and answers once confident.
"""

from __future__ import annotations

import numpy as np

from ttc_gym.agents.heuristics import AnswerAfterK, NeverVerify, OracleAnswerWhenConfident
from ttc_gym.validation import check_int

STRATEGIES = ("answer_after_k", "never_verify", "answer_when_confident")


class HeterogeneousExpert:
    """Draws one heuristic agent per problem from an explicit seed."""

    def __init__(self, max_episodes: int, seed: int = 0):
        self.max_episodes = check_int("max_episodes", max_episodes, minimum=1)
        self._rng = np.random.default_rng(seed)

    def draw(self):
        kind = STRATEGIES[int(self._rng.integers(len(STRATEGIES)))]
        if kind == "answer_after_k":
            agent = AnswerAfterK(int(self._rng.integers(1, self.max_episodes + 1)))
        elif kind == "never_verify":
            agent = NeverVerify(int(self._rng.integers(1, 4)))
        else:
            agent = OracleAnswerWhenConfident(float(self._rng.choice([0.9, 0.99])), int(self._rng.integers(1, 3)))
        agent.reset()
        return agent

    def agents(self, n: int) -> list:
        """One freshly drawn agent per problem of a batch of n."""
        return [self.draw() for _ in range(n)]
