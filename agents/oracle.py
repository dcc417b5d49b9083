"""The exact optimal policy of TTC-Sim-v0, by dynamic programming over its public belief-MDP.

It plans with `env.unwrapped.model` (a `ttc_gym.envs.sim_model.SimModel`), the accessor the simulator
documents, and gives J*, the comparator of the regret metrics.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from ttc_gym.actions import MetaAction

# Among equally good actions prefer the cheapest: answer, then continue, verify, switch.
_TIE_ORDER = (MetaAction.ANSWER, MetaAction.CONTINUE, MetaAction.VERIFY, MetaAction.SWITCH)


class OracleAgent:
    """Optimal policy of a TTC-Sim-v0 configuration (exact, for its budget H).

    `value(obs)` is the optimal expected return from `obs`, `expected_return` the value at reset,
    `act(obs)` the optimal action.
    """

    def __init__(self, model: Any):
        self.model = model
        self._q = lru_cache(maxsize=None)(self._q_values)

    @classmethod
    def from_env(cls, env: Any) -> "OracleAgent":
        model = getattr(env.unwrapped, "model", None)
        if model is None or not hasattr(model, "transitions"):
            raise TypeError(
                f"OracleAgent needs an env exposing a transition model (TTC-Sim-v0), got {env.unwrapped!r}."
            )
        return cls(model)

    def _q_values(self, obs: tuple[int, ...]) -> tuple[float, ...]:
        q = []
        for action in MetaAction:
            total = 0.0
            for branch in self.model.transitions(obs, int(action)):
                future = 0.0 if branch.obs is None else self.value(branch.obs)
                total += branch.prob * (branch.reward + future)
            q.append(total)
        return tuple(q)

    def q_values(self, obs) -> np.ndarray:
        return np.array(self._q(tuple(int(x) for x in obs)))

    def value(self, obs) -> float:
        return float(max(self._q(tuple(int(x) for x in obs))))

    def act(self, obs, info: dict | None = None) -> int:
        q = self._q(tuple(int(x) for x in obs))
        best = max(q)
        return int(next(a for a in _TIE_ORDER if q[a] >= best - 1e-12))

    def reset(self, seed: int | None = None) -> None:
        """Deterministic, and it keeps no per-problem state: nothing to reset."""

    @property
    def expected_return(self) -> float:
        return float(sum(p * self.value(obs) for p, obs in self.model.initial_distribution()))

    def expected_return_by_level(self) -> dict[int, float]:
        return {obs[1]: self.value(obs) for _, obs in self.model.initial_distribution()}

    def expected_episodes(self, level: int | None = None) -> float:
        """Expected number of episodes the oracle spends (on one level, or over the level mix)."""
        return self._expected(lambda branch, action: float(action != MetaAction.ANSWER), level)

    def expected_accuracy(self, level: int | None = None) -> float:
        """Expected probability that the oracle's final answer is correct (J* for regret)."""
        return self._expected(lambda branch, action: branch.expected_j if branch.obs is None else 0.0, level)

    def _expected(self, per_branch, level: int | None) -> float:
        starts = [(p, o) for p, o in self.model.initial_distribution() if level is None or o[1] == level]
        if not starts:
            raise ValueError(f"level must be one of the env's difficulty levels, got {level!r}.")
        norm = sum(p for p, _ in starts)
        memo: dict = {}

        def walk(obs):
            if obs in memo:
                return memo[obs]
            total = 0.0
            action = self.act(obs)
            for branch in self.model.transitions(obs, action):
                future = 0.0 if branch.obs is None else walk(branch.obs)
                total += branch.prob * (per_branch(branch, action) + future)
            memo[obs] = total
            return total

        return sum(p * walk(o) for p, o in starts) / norm

    def expected_j_curve(self, level: int | None = None) -> np.ndarray:
        """E[J after i episodes] for i = 0..H under the oracle (held at its last value once it answers)."""
        H = self.model.params.max_episodes
        curve = np.zeros(H + 1)
        starts = [(p, o) for p, o in self.model.initial_distribution() if level is None or o[1] == level]
        norm = sum(p for p, _ in starts)
        dist = {o: p / norm for p, o in starts}
        done_mass_j = 0.0  # sum of prob * final J of trajectories that already answered
        for i in range(H + 1):
            curve[i] = done_mass_j + sum(p * self.model.expected_j(o) for o, p in dist.items())
            nxt: dict = {}
            for obs, p in dist.items():
                action = self.act(obs)
                for branch in self.model.transitions(obs, action):
                    if branch.obs is None:
                        done_mass_j += p * branch.prob * branch.expected_j
                    else:
                        nxt[branch.obs] = nxt.get(branch.obs, 0.0) + p * branch.prob
            dist = nxt
        return curve


def _terminal_accuracy(model: Any, j: float) -> float:
    """Accuracy of the forced answer at the budget's end: J, or 0 when the env does not grade it."""
    return float(j) if getattr(model.params, "answer_on_truncation", True) else 0.0


class _AccuracyDP:
    """V_r(obs) = the best probability of a correct final answer from `obs` with at most r more episodes
    (docs/formulation.md §5, "J*_j"): answer now (J(obs)) or spend an episode and continue optimally;
    after the r-th episode the answer is forced. No episode cost: accuracy only."""

    def __init__(self, model: Any):
        self.model = model
        self._memo: dict = {}

    def q_values(self, obs: tuple[int, ...], remaining: int) -> tuple[float, ...]:
        q = []
        for action in MetaAction:
            if action == MetaAction.ANSWER or remaining <= 0:
                q.append(float(self.model.expected_j(obs)) if action == MetaAction.ANSWER else -1.0)
                continue
            total = 0.0
            for branch in self.model.transitions(obs, int(action)):
                if branch.obs is None or remaining == 1:
                    total += branch.prob * _terminal_accuracy(self.model, branch.expected_j)
                else:
                    total += branch.prob * self.value(branch.obs, remaining - 1)
            q.append(total)
        return tuple(q)

    def value(self, obs: tuple[int, ...], remaining: int) -> float:
        key = (obs, remaining)
        if key not in self._memo:
            self._memo[key] = max(self.q_values(obs, remaining))
        return self._memo[key]


def j_star_curve(model: Any, level: int | None = None) -> np.ndarray:
    """J*_j for j = 0..H on TTC-Sim-v0: the best expected accuracy any policy over observations reaches
    with at most j episodes (per difficulty level by an accuracy-maximizing DP, then averaged with the
    level mix, or on one `level`). Non-decreasing in j. The comparator of the episode regret
    (docs/formulation.md §5)."""
    H = int(model.params.max_episodes)
    starts = [(p, o) for p, o in model.initial_distribution() if level is None or o[1] == level]
    if not starts:
        raise ValueError(f"level must be one of the env's difficulty levels, got {level!r}.")
    norm = sum(p for p, _ in starts)
    dp = _AccuracyDP(model)
    return np.array([sum(p * dp.value(o, j) for p, o in starts) / norm for j in range(H + 1)])


class AccuracyOracleAgent(OracleAgent):
    """The accuracy-optimal policy of a TTC-Sim-v0 configuration at its budget H: it maximizes the
    probability that the final answer is correct, ignoring the episode cost and the progress bonus
    (its expected accuracy is J*_H of `j_star_curve`). `OracleAgent` maximizes the env's return instead.
    Among equally accurate actions it prefers the cheapest (answer, continue, verify, switch).
    """

    def __init__(self, model: Any):
        super().__init__(model)
        self._dp = _AccuracyDP(model)

    def _remaining(self, obs: tuple[int, ...]) -> int:
        return int(self.model.params.max_episodes) - int(obs[0])

    def act(self, obs, info: dict | None = None) -> int:
        key = tuple(int(x) for x in obs)
        q = self._dp.q_values(key, self._remaining(key))
        best = max(q)
        return int(next(a for a in _TIE_ORDER if q[a] >= best - 1e-12))

    def accuracy_value(self, obs) -> float:
        """The best probability of a correct final answer from `obs` within the budget."""
        key = tuple(int(x) for x in obs)
        return float(self._dp.value(key, self._remaining(key)))

    @property
    def expected_return(self) -> float:
        """The env's expected return under this policy (at most `OracleAgent`'s)."""
        return self._expected(lambda branch, action: branch.reward, None)
