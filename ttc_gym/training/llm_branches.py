"""MRT's RL recipe in the LLM trainer (`--algo mrt`): branch from a prefix, continue or terminate.

Per problem of an iteration (MRT §6, Figure 6; CMU-AIRe/MRT `train/rl/README.md`; docs/formulation.md §4):
1. a behaviour policy (`prefix_source`: 'stale', a frozen copy of the policy refreshed every
   `stale_every` iterations — the paper's older policy —, or 'current', the policy itself) writes a
   prefix of k episodes, k drawn uniformly from 0..H-1; an episode that would commit an answer
   (`\\boxed{}`) ends the prefix before it (the prefix is reasoning only); or ('traces',
   `TracePrefixes`) a stored analysed trace's first k episodes are the prefix, and its problem the
   problem: a fixed, off-policy behaviour source, as the shipped trace sets are;
2. `group_size` branches continue from the prefix (the policy writes on until it answers or the
   budget ends) and `terminations` branches terminate at once (the policy's own forced answer there,
   `LLMAgent.answer_batch`), each with its own seed, on TTC-Math-v0 reset to the problem plus the
   prefix (the prover's J at the prefix is each branch's `j0`; the budget counts the prefix).
The prefix is the branches' context: its episodes are in their prompts and never in their token
ids, so no gradient reaches them (`llm_loss.episode_logprobs` scores only the sampled tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ttc_gym.answer_extraction import extract_boxed
from ttc_gym.problems import Problem
from ttc_gym.traces import read_analysed_traces, shipped_trace_file, shipped_trace_sets
from ttc_gym.training.llm_config import LLMTrainConfig
from ttc_gym.training.llm_rollouts import RolloutPlan


def write_prefixes(agent: Any, problems: Sequence[Any], lengths: Sequence[int], seeds: Sequence[int],
                   max_tokens: int | None = None) -> list[tuple[str, ...]]:
    """Prefix i: up to `lengths[i]` episodes `agent` writes for `problems[i]` (seed `seeds[i]`), all
    written together one episode at a time; a prefix stops before an episode that commits an answer,
    and before one that would use up `max_tokens` (the env's token budget, counted by the agent's
    engine as the env counts them): a prefix leaves the branches room to go on."""
    prefixes: list[list[str]] = [[] for _ in problems]
    used = [0] * len(problems)
    active = [i for i, k in enumerate(lengths) if k > 0]
    while active:
        obs = [{"problem": problems[i].question, "episodes": tuple(prefixes[i])} for i in active]
        written = agent.write_batch(obs, [{} for _ in active], seeds=[int(seeds[i]) for i in active])
        still = []
        for i, episode in zip(active, written):
            if extract_boxed(episode.text) is not None:  # it would answer here: the prefix ends before
                continue
            if max_tokens is not None:
                tokens = int(agent.engine.count_tokens(episode.text))
                if used[i] + tokens >= max_tokens:
                    continue
                used[i] += tokens
            prefixes[i].append(episode.text)
            if len(prefixes[i]) < lengths[i]:
                still.append(i)
        active = still
    return [tuple(p) for p in prefixes]


class TracePrefixes:
    """Prefixes from a stored analysed trace set (`prefix_source` 'traces'): `sample` draws a trace and
    returns its problem and its first k episodes, stopping before one that commits an answer or would
    use up the token budget (counted with `count_tokens`, as the env counts them)."""

    def __init__(self, traces: str):
        path = shipped_trace_file(traces) if traces in shipped_trace_sets() else traces
        self.name = f"traces:{traces}"
        self.rows = read_analysed_traces(path)
        if not self.rows:
            raise ValueError(f"prefix_traces {traces!r} holds no trace.")

    def sample(self, rng: np.random.Generator, k: int, count_tokens: Any,
               max_tokens: int | None) -> tuple[Problem, tuple[str, ...]]:
        row = self.rows[int(rng.integers(len(self.rows)))]
        problem = Problem(id=row["problem_id"], question=row["problem"], answer=row["answer"], source=self.name)
        prefix, used = [], 0
        for episode in row["episodes"][:k]:
            text = episode["text"]
            used += int(count_tokens(text)) if max_tokens is not None else 0
            if extract_boxed(text) is not None or (max_tokens is not None and used >= max_tokens):
                break
            prefix.append(text)
        return problem, tuple(prefix)


def plan_branches(config: LLMTrainConfig, source: Any, iteration: int, prefix_agent: Any) -> list[RolloutPlan]:
    """The branch rollouts of `iteration`: `problems_per_iter` problems drawn from `source` and their
    prefixes (written by `prefix_agent`; or, when `source` is a `TracePrefixes`, a stored trace's
    problem and episodes), then per problem `group_size` continuing and `terminations` terminating
    branches (in that order, group = the problem's index); every draw from one generator seeded by
    (seed, iteration)."""
    rng = np.random.default_rng([config.seed, iteration])
    if isinstance(source, TracePrefixes):
        lengths = rng.integers(0, config.max_episodes, size=config.problems_per_iter)  # k uniform over 0..H-1
        drawn = [source.sample(rng, int(k), prefix_agent.engine.count_tokens, config.max_tokens) for k in lengths]
        problems, prefixes = [p for p, _ in drawn], [e for _, e in drawn]
    else:
        problems = [source.sample(rng) for _ in range(config.problems_per_iter)]
        lengths = rng.integers(0, config.max_episodes, size=len(problems))  # k uniform over 0..H-1
        prefix_seeds = rng.integers(0, 2**31, size=len(problems))
        prefixes = write_prefixes(prefix_agent, problems, lengths, prefix_seeds, config.max_tokens)
    kinds = ["continue"] * config.group_size + ["terminate"] * config.terminations
    seeds = rng.integers(0, 2**31, size=len(problems) * len(kinds))
    return [RolloutPlan(group=g, problem=problems[g], seed=int(seeds[g * len(kinds) + b]), prefix=prefixes[g],
                        branch=kind)
            for g in range(len(problems)) for b, kind in enumerate(kinds)]
