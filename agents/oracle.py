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

    def _key(self, obs, info: dict | None = None) -> tuple[int, ...]:
        """The model's observation: with a hidden episode count (`observe_episodes=False`) it is read
        from `info["episodes_used"]` (`SimModel.planning_obs`)."""
        planning = getattr(self.model, "planning_obs", None)
        return planning(obs, info) if planning is not None else tuple(int(x) for x in obs)

    def q_values(self, obs) -> np.ndarray:
        return np.array(self._q(tuple(int(x) for x in obs)))

    def value(self, obs) -> float:
        return float(max(self._q(tuple(int(x) for x in obs))))

    def act(self, obs, info: dict | None = None) -> int:
        """The optimal action at an env observation (with a hidden episode count, `info` must carry
        `episodes_used`; `SimModel.planning_obs` raises otherwise)."""
        return self._act_planned(self._key(obs, info))

    def _act_planned(self, key: tuple[int, ...]) -> int:
        """The optimal action at a model observation (episode count included)."""
        q = self._q(key)
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
        """Expected probability that the oracle's final answer is correct (J* for regret); an
        unanswered problem (`answer_on_truncation=False`) counts as wrong."""
        return self._expected(lambda branch, action: _answer_prob(branch), level)

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
            action = self._act_planned(obs)
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
                action = self._act_planned(obs)
                for branch in self.model.transitions(obs, action):
                    if branch.obs is None:  # J held at its final value (the prover's, not the graded answer)
                        done_mass_j += p * branch.prob * branch.expected_j
                    else:
                        nxt[branch.obs] = nxt.get(branch.obs, 0.0) + p * branch.prob
            dist = nxt
        return curve


def _answer_prob(branch: Any) -> float:
    """Probability that the answer committed on a branch that ends the problem is correct (0 when
    none is committed, or on a branch that goes on)."""
    if branch.obs is not None:
        return 0.0
    return float(getattr(branch, "answer_prob", branch.expected_j))


def _answer_now(model: Any, obs: tuple[int, ...]) -> float:
    """Accuracy of answering at `obs`: the policy's own answer (`SimModel.answer_j`, which differs from
    the prover's J with `answer_mismatch` > 0)."""
    answer_j = getattr(model, "answer_j", None)
    return float(answer_j(obs) if answer_j is not None else model.expected_j(obs))


def _terminal_accuracy(model: Any, obs: tuple[int, ...] | None, j: float) -> float:
    """Accuracy of the forced answer at the budget's end: that of the policy's own answer at `obs`,
    or 0 when the env does not grade it."""
    if not getattr(model.params, "answer_on_truncation", True):
        return 0.0
    return _answer_now(model, obs) if obs is not None else float(j)


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
                q.append(_answer_now(self.model, obs) if action == MetaAction.ANSWER else -1.0)
                continue
            total = 0.0
            for branch in self.model.transitions(obs, int(action)):
                if branch.obs is None:  # the env's own budget ended: the branch knows its answer's accuracy
                    total += branch.prob * _answer_prob(branch)
                elif remaining == 1:  # budget j < H: the answer forced after the j-th episode
                    total += branch.prob * _terminal_accuracy(self.model, branch.obs, branch.expected_j)
                else:
                    total += branch.prob * self.value(branch.obs, remaining - 1)
            q.append(total)
        return tuple(q)

    def value(self, obs: tuple[int, ...], remaining: int) -> float:
        # With t + remaining <= H the budget ends exactly when `remaining` does, and the answer forced
        # then is worth the same whether the env's truncation or the j-th episode forces it: the value
        # does not depend on the episode count t, so states that differ only in t share one entry.
        horizon = getattr(getattr(self.model, "params", None), "max_episodes", None)
        key = (obs[1:], remaining) if horizon is not None and obs[0] + remaining <= horizon else (obs, remaining)
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

    def _act_planned(self, key: tuple[int, ...]) -> int:
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


# ---- TTC-Replay-v0: DP over the stored traces ----------------------------------------------------------

class ReplayOracle:
    """ORACLE† of TTC-Replay-v0: the optimal policy per problem, by dynamic programming over its stored
    traces (`env.unwrapped.dataset`), with the env's rewards and budget (`env.unwrapped.settings`).

    It knows which problem and trace it is on and every stored J (graded against the gold answer), so
    no deployable policy reaches it: it is the ceiling line of a study, not an agent to deploy. Its
    state is (trace, decision point, episodes used, tokens used); the actions and their outcomes are
    the env's spec: answer earns `p_correct` of the point; continue / verify move to the next point
    (or answer where the trace ended); switch moves to the first point of each other trace with equal
    probability; each spent episode earns `alpha * progress - episode_cost`, and when it exhausts the
    budget the forced answer earns `p_correct` of the point reached (with `answer_on_truncation`).
    `expected_return(problem_id)` averages the optimal value over the equally likely starting traces.
    """

    def __init__(self, dataset: Any, settings: Any):
        self.dataset = dataset
        self.settings = settings
        self._budget = settings.budget
        self._problems = {p.problem_id: p for p in dataset.problems}
        self._memo: dict = {}

    @classmethod
    def from_env(cls, env: Any) -> "ReplayOracle":
        unwrapped = env.unwrapped
        if not hasattr(unwrapped, "dataset") or not hasattr(unwrapped, "settings"):
            raise TypeError(f"ReplayOracle needs TTC-Replay-v0 (an env with dataset and settings), got {unwrapped!r}.")
        return cls(unwrapped.dataset, unwrapped.settings)

    def _move(self, problem: Any, trace: int, pos: int, episodes: int, tokens: int, new_trace: int, new_pos: int,
              gained_tokens: int) -> float:
        """Expected return of spending one episode to reach (new_trace, new_pos), then acting optimally."""
        s = self.settings
        old, new = problem.traces[trace].points[pos], problem.traces[new_trace].points[new_pos]
        reward = s.alpha * (new.j - old.j) - s.episode_cost
        episodes, tokens = episodes + 1, tokens + gained_tokens
        if self._budget.exhausted(episodes, tokens):
            return reward + (new.p_correct if s.answer_on_truncation else 0.0)
        return reward + self._value(problem, new_trace, new_pos, episodes, tokens)

    def _q(self, problem: Any, trace: int, pos: int, episodes: int, tokens: int) -> tuple[float, ...]:
        key = (problem.problem_id, trace, pos, episodes, tokens if self.settings.max_tokens is not None else 0)
        q = self._memo.get(key)
        if q is not None:
            return q
        points = problem.traces[trace].points
        answer = points[pos].p_correct
        if pos == len(points) - 1:
            cont = answer  # the trace ended: continue / verify commit the answer
        else:
            cont = self._move(problem, trace, pos, episodes, tokens, trace, pos + 1,
                              points[pos + 1].tokens - points[pos].tokens)
        n = len(problem.traces)
        targets = [i for i in range(n) if i != trace] or [trace]
        switch = 0.0
        for t in targets:
            first = min(1, len(problem.traces[t].points) - 1)
            switch += self._move(problem, trace, pos, episodes, tokens, t, first,
                                 problem.traces[t].points[first].tokens)
        switch /= len(targets)
        q = [0.0] * len(MetaAction)
        q[MetaAction.CONTINUE] = q[MetaAction.VERIFY] = cont
        q[MetaAction.SWITCH], q[MetaAction.ANSWER] = switch, answer
        self._memo[key] = q = tuple(q)
        return q

    def _value(self, problem: Any, trace: int, pos: int, episodes: int, tokens: int) -> float:
        return max(self._q(problem, trace, pos, episodes, tokens))

    def _problem(self, problem_id: str) -> Any:
        try:
            return self._problems[problem_id]
        except KeyError:
            raise KeyError(f"problem_id {problem_id!r} is not among the oracle's {len(self._problems)} problems.") from None

    def q_values(self, problem_id: str, trace_index: int, position: int, episodes: int = 0, tokens: int = 0) -> np.ndarray:
        """Optimal expected return of each action at a state (actions indexed by `MetaAction`)."""
        return np.array(self._q(self._problem(problem_id), int(trace_index), int(position), int(episodes), int(tokens)))

    def expected_return(self, problem_id: str) -> float:
        """The optimal expected return on `problem_id` from reset (starting trace uniformly drawn)."""
        problem = self._problem(problem_id)
        return float(np.mean([self._value(problem, i, 0, 0, 0) for i in range(len(problem.traces))]))

    def expected_returns(self) -> dict[str, float]:
        """`expected_return` of every problem of the dataset, by problem_id."""
        return {pid: self.expected_return(pid) for pid in self._problems}

    def act(self, obs, info: dict) -> int:
        """The optimal action at the env's state, read from `info` (problem_id, trace_index,
        trace_position, episodes_used, tokens_used); among equally good ones the cheapest."""
        q = self.q_values(info["problem_id"], info["trace_index"], info["trace_position"], info["episodes_used"],
                          info["tokens_used"])
        best = q.max()
        return int(next(a for a in _TIE_ORDER if q[a] >= best - 1e-12))

    def reset(self, seed: int | None = None) -> None:
        """Deterministic; its memo holds for every problem: nothing to reset."""
