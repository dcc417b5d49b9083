"""The work of a run: one `WorkItem` per agent, budget and problem; `ItemEvaluator` evaluates one
(picklable: it rebuilds its envs and agents lazily wherever it runs); executors map items to records
(`serial_executor`; `ray_executor` ships them to Ray actors)."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ttc_gym.bench.agent_registry import (
    AgentSpec,
    build_agent,
)
from ttc_gym.budget import Budget
from ttc_gym.bench.config import budget_label
from ttc_gym.bench.plan import WorkItem, jsonable, make_bench_env



# ----------------------------------------------------------------------------------------------------
# Work items, their evaluation, executors


class ItemEvaluator:
    """`evaluate(item) -> record`: runs one problem. Builds (trains) each agent once per budget and
    keeps the last one; picklable without its caches, so it can travel to another process."""

    def __init__(self, env_id: str, env_kwargs: dict, agents: Sequence[AgentSpec], budgets: Sequence[Budget]):
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs)
        self.agents = {a.text: a for a in agents}
        self.budgets = {budget_label(b): b for b in budgets}
        self.env_stamp = {"env_id": env_id, "env_kwargs": jsonable(self.env_kwargs)}  # in every record
        self.on_event: Callable[[str], None] | None = None
        self._envs: dict[str, Any] = {}
        self._agent_key: tuple | None = None
        self._agent: Any = None
        self.build_seconds: dict[tuple, float] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(on_event=None, _envs={}, _agent_key=None, _agent=None)
        return state

    def _say(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)

    def env(self, budget: str):
        if budget not in self._envs:
            self._envs[budget] = make_bench_env(self.env_id, self.env_kwargs, self.budgets[budget])
        return self._envs[budget]

    def agent(self, agent: str, budget: str):
        key = (agent, budget)
        if self._agent_key != key:
            self._agent = None  # free the previous one first
            self._say(f"building {agent} at {budget} ...")
            start = time.perf_counter()
            self._agent = build_agent(self.agents[agent], self.env(budget))
            self._agent_key = key
            self.build_seconds[key] = seconds = time.perf_counter() - start
            self._say(f"built {agent} at {budget} in {seconds:.1f}s")
        return self._agent

    def __call__(self, item: WorkItem) -> dict:
        from ttc_gym.evaluation import run_rollout

        env = _GradingCounter(self.env(item.budget))
        agent = self.agent(item.agent, item.budget)
        start = time.perf_counter()
        try:  # resets the env and the agent with the problem's seed
            record = run_rollout(env, agent, seed=item.seed)
        except KeyError as err:
            raise ValueError(
                f"{self.env_id} did not report info[{err.args[0]!r}]: ttc-gym bench needs envs whose info "
                f"carries J, outcome, episodes_used and tokens_used."
            ) from None
        out = {"agent": item.agent, "budget": item.budget, "problem": item.problem}
        out.update(record.to_dict())
        out["wall_s"] = round(time.perf_counter() - start, 6)
        out["grading_incomplete"] = env.total
        out.update(self.env_stamp)
        return out


class _GradingCounter:
    """The env as `run_rollout` sees it (reset and step pass through), summing `info["grading_incomplete"]`:
    the number of a step's grader comparisons that did not complete (a worker crash or stall), which the
    math envs report as unknown rather than as a verdict. A missing key counts 0 (envs without a grader)."""

    def __init__(self, env: Any):
        self.env = env
        self.total = 0

    def _count(self, info: Any) -> None:
        value = info.get("grading_incomplete", 0) if isinstance(info, dict) else 0
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(
                f"the env reported info['grading_incomplete'] = {value!r}; expected a non-negative integer "
                f"(the number of this step's grader comparisons that did not complete)."
            )
        self.total += int(value)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._count(info)
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self._count(out[-1])
        return out


Executor = Callable[[Sequence[WorkItem], Callable[[WorkItem], dict]], Iterable[dict]]


def serial_executor(items: Sequence[WorkItem], evaluate: Callable[[WorkItem], dict]) -> Iterator[dict]:
    """Evaluate the items one after another in this process, yielding each record as it finishes."""
    for item in items:
        yield evaluate(item)
