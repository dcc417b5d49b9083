"""`prepare`: a `BenchConfig` checked and resolved into a `BenchPlan` before any compute (env id, budgets,
agents, comparators, the output folder and its state); nothing is computed yet."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ttc_gym.bench.agent_registry import (
    AGENT_REQUIREMENTS,
    AgentSpec,
    NotAnAgent,
    agent_problem,
    check_agent_spec,
    parse_agent_spec,
)
from ttc_gym.bench.folder_lock import check_unlocked
from ttc_gym.bench.profiles import EnvProfile, profile_for
from ttc_gym.bench.report import BEST_PREFIX
from ttc_gym.bench.results_file import (
    RESULTS_FILE,
    read_results,
    record_key,
)
from ttc_gym.bench.run_identity import (
    CONFIG_FILE,
    config_differences,
    foreign_records,
    read_stored_config,
    vouch_for_records,
)
from ttc_gym.budget import Budget
from ttc_gym.validation import check_float, check_int, did_you_mean, unknown_name_error
from ttc_gym.bench.config import BenchConfig, RANK_METRICS, budget_kwargs, budget_label, parse_budget



@dataclass
class BenchPlan:
    """A validated configuration, every default resolved. Nothing has been computed yet."""

    env_id: str
    profile: EnvProfile
    env_kwargs: dict
    agents: list[AgentSpec]
    budgets: list[Budget]
    num_problems: int
    base_seed: int
    j_star: float | None
    rank_by: str
    out_dir: Path
    j_star_from: str | None = None
    done: set = field(default_factory=set)  # (agent, budget label, seed) already in results.jsonl
    notices: list = field(default_factory=list)  # one line each, for the user (resume's findings)

    @property
    def budget_labels(self) -> list[str]:
        return [budget_label(b) for b in self.budgets]

    def identity(self) -> dict:
        """What a resumed run must share with the run it continues."""
        return {
            "env_id": self.env_id,
            "env_kwargs": jsonable(self.env_kwargs),
            "agents": [a.text for a in self.agents],
            "budgets": [{"max_episodes": b.max_episodes, "max_tokens": b.max_tokens} for b in self.budgets],
            "num_problems": self.num_problems,
            "base_seed": self.base_seed,
            "j_star": self.j_star,
        }

    def work_items(self) -> list["WorkItem"]:
        return [
            WorkItem(agent.text, label, i, self.base_seed + i)
            for agent in self.agents
            for label in self.budget_labels
            for i in range(self.num_problems)
        ]


def jsonable(value: Any) -> Any:
    """`value` as JSON would store it; objects JSON cannot hold (e.g. an engine passed in env_kwargs) by
    their repr, or their type when the repr holds a memory address, so that the stored configuration does not change from one process to the next."""

    def stable(obj: Any) -> Any:
        if isinstance(obj, (np.generic, np.ndarray, set, tuple)):
            return json_default(obj)
        text = repr(obj)  # a dataclass's repr is stable; a default one holds a memory address
        return text if " at 0x" not in text else f"<{type(obj).__module__}.{type(obj).__qualname__}>"

    return json.loads(json.dumps(value, default=stable))


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return repr(obj)


def _check_env_id(env_id: Any):
    import gymnasium as gym

    import ttc_gym  # noqa: F401  (registers the envs)

    if not isinstance(env_id, str) or env_id not in gym.registry:
        ours = ttc_gym.env_ids()
        raise ValueError(
            f"Unknown env {env_id!r}.{did_you_mean(str(env_id), list(gym.registry))} "
            f"ttc-gym envs: {', '.join(ours)} (any registered Gymnasium env whose info reports J, outcome, "
            f"episodes_used and tokens_used works too)."
        )


def _check_budgets(values: Sequence[Any], profile: EnvProfile) -> list[Budget]:
    budgets = []
    for value in values:
        try:
            budget = parse_budget(value)
        except (TypeError, ValueError) as err:
            raise type(err)(f"invalid budget {value!r}: {err}") from None
        label = budget_label(budget)
        if budget.max_tokens is not None and "max_tokens" not in profile.budget_kwargs:
            raise ValueError(
                f"budget {label}: {profile.env_id} budgets are episode counts H only (no token budget C0); "
                f"write e.g. {budget.max_episodes or 4}."
            )
        if budget.max_episodes is None and profile.episodes_required:
            raise ValueError(f"budget {label}: {profile.env_id} needs an episode budget H (write H or H:C0).")
        if profile.max_episodes is not None and budget.max_episodes is not None and budget.max_episodes > profile.max_episodes:
            raise ValueError(
                f"budget {label}: {profile.env_id} allows at most H = {profile.max_episodes} episodes, "
                f"got {budget.max_episodes}."
            )
        if profile.max_tokens is not None and budget.max_tokens is not None and budget.max_tokens > profile.max_tokens:
            raise ValueError(
                f"budget {label}: {profile.env_id} allows at most C0 = {profile.max_tokens} tokens, "
                f"got {budget.max_tokens}."
            )
        if label in [budget_label(b) for b in budgets]:
            raise ValueError(f"budget {label} is listed twice.")
        budgets.append(budget)
    if not budgets:
        raise ValueError(f"no budgets given and {profile.env_id} has no default budgets; pass --budgets.")
    return budgets


def output_folder(config: BenchConfig) -> Path:
    """The run's output folder: `config.out_dir`, or bench_out/ENV_ID when it is None. An empty or blank
    path is an error, not the default (it would silently write where another run may)."""
    if config.out_dir is None:
        return Path("bench_out", config.env_id)
    if not isinstance(config.out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a folder path (a string), got {config.out_dir!r}.")
    if not os.fspath(config.out_dir).strip():
        raise ValueError(
            f"the output folder (--out) is empty ({os.fspath(config.out_dir)!r}): give a folder path, or leave "
            f"--out out for the default bench_out/{config.env_id}."
        )
    return Path(config.out_dir)


def _check_out_dir(out_dir: Path) -> None:
    """Create the folder and write a file in it: the only test of writability that cannot lie."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-", delete=True) as probe:
            probe.write(b"ok")
            probe.flush()
    except OSError as err:
        raise PermissionError(f"output folder {str(out_dir)!r} is not writable: {err.strerror or err}.") from None


def prepare(config: BenchConfig, *, resume: bool = False, overwrite: bool = False) -> BenchPlan:
    """Validate everything a run needs, before any compute: env, budgets, agents (names, arguments,
    factories importable), problems, seeds, output folder, and with `resume` that the folder's results
    come from the same configuration. Raises ValueError / TypeError / PermissionError / FileNotFoundError."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue a run, or start it over.")
    _check_env_id(config.env_id)
    profile = profile_for(config.env_id)
    if not isinstance(config.env_kwargs, dict):
        raise TypeError(f"env_kwargs must be a dict, got {config.env_kwargs!r}.")
    clash = sorted(set(config.env_kwargs) & {"max_episodes", "max_tokens"})
    if clash:
        raise ValueError(f"set {', '.join(clash)} through budgets (--budgets), not env kwargs.")
    budgets = _check_budgets(list(config.budgets) or list(profile.default_budgets), profile)

    specs = [parse_agent_spec(text) for text in (list(config.agents) or list(profile.default_agents))]
    if not specs:
        raise ValueError(f"no agents given and {config.env_id} has no default agents; pass --agents.")
    seen = set()
    for spec in specs:
        if spec.text in seen:
            raise ValueError(f"agent {spec.text!r} is listed twice.")
        seen.add(spec.text)

    num_problems = config.num_problems if config.num_problems is not None else profile.default_problems
    check_int("num_problems", num_problems, minimum=1)
    check_int("base_seed", config.base_seed, minimum=0)
    j_star = None if config.j_star is None else check_float("j_star", config.j_star, minimum=0.0, maximum=1.0)
    j_star_from = config.j_star_from or None
    if j_star_from is not None:
        if j_star is not None:
            raise ValueError(f"give j_star ({j_star}) or j_star_from ({j_star_from!r}), not both: each sets the comparator.")
        names = [spec.text for spec in specs]
        if j_star_from != BEST_PREFIX and j_star_from not in names:
            raise unknown_name_error("j_star_from", j_star_from, [BEST_PREFIX, *names])
    rank_by = config.rank_by or profile.rank_by
    if rank_by not in RANK_METRICS:
        raise unknown_name_error("rank_by metric", rank_by, RANK_METRICS)

    factories = [check_agent_spec(spec, config.env_id, profile.action_kind) for spec in specs]
    if profile.cheap_make:  # the env's own argument checks, at every budget
        for budget in budgets:
            env = make_bench_env(config.env_id, config.env_kwargs, budget)
            env.close()
    for spec, factory in zip(specs, factories):
        if spec.name is None:  # registered names are agent factories; an import path may be anything
            _check_factory_makes_an_agent(spec, factory, config.env_id, config.env_kwargs, budgets[0], profile)

    out_dir = output_folder(config)
    _check_out_dir(out_dir)
    check_unlocked(out_dir)  # another run writing there: say so now, before anything else about the folder
    plan = BenchPlan(
        env_id=config.env_id, profile=profile, env_kwargs=dict(config.env_kwargs), agents=specs,
        budgets=budgets, num_problems=num_problems, base_seed=int(config.base_seed), j_star=j_star,
        rank_by=rank_by, out_dir=out_dir, j_star_from=j_star_from,
    )
    check_folder_state(plan, resume=resume, overwrite=overwrite)
    return plan


def check_folder_state(plan: BenchPlan, *, resume: bool, overwrite: bool) -> None:
    """What the output folder already holds, against what this run asks: with `resume`, results of this
    configuration only (`plan.done`: their keys); without, no results unless `overwrite`."""
    out_dir = plan.out_dir
    results_path, config_path = out_dir / RESULTS_FILE, out_dir / CONFIG_FILE
    has_results = results_path.exists() and results_path.stat().st_size > 0
    plan.notices, plan.done = [], set()
    if not resume:
        if has_results and not overwrite:
            raise FileExistsError(
                f"{out_dir} already holds results ({RESULTS_FILE}); resume to continue that run "
                f"(ttc-gym bench --resume), or start over with --overwrite, which keeps the old results as a "
                f"backup ({RESULTS_FILE}.bak-DATE)."
            )
        return
    current = plan.identity()
    records = read_results(results_path).records
    stored, problem = read_stored_config(config_path, list(current))
    if stored is not None:
        details = config_differences(stored, current)
        if details:
            raise ValueError(
                f"cannot resume: {out_dir} holds results of a different configuration ({details}). Resume with "
                f"the configuration stored in {config_path.name}, or give this run another output folder (--out)."
            )
        foreign = foreign_records(records, plan.env_id, current["env_kwargs"])
        if foreign:  # e.g. left by two runs that wrote to one folder at once
            raise ValueError(
                f"cannot resume: {results_path} holds {foreign}; they are not results of the configuration in "
                f"{config_path.name}. Give this run another output folder (--out), or move those records out "
                f"of {RESULTS_FILE}."
            )
    elif records:
        why_not = vouch_for_records(records, plan.env_id, current["env_kwargs"], current["agents"], plan.budget_labels)
        if why_not:
            raise ValueError(
                f"cannot resume: {config_path} {problem}, so the configuration of the {len(records)} results in "
                f"{RESULTS_FILE} is unknown, and the records cannot vouch for themselves: {why_not}. Restore "
                f"{config_path.name} (from a backup, or the run that made these results), or give this run "
                f"another output folder (--out); the results there are kept as they are."
            )
        plan.notices.append(
            f"{config_path} {problem}; every record in {RESULTS_FILE} names this run's env, env kwargs, agents and "
            f"budgets, so the run resumes and writes {config_path.name} anew."
        )
    plan.done = {record_key(r) for r in records}


def _check_factory_makes_an_agent(
    spec: AgentSpec, factory: Callable, env_id: str, env_kwargs: dict, budget: Budget, profile: EnvProfile
) -> None:
    """That an import-path factory returns an agent, before any compute. Where making the env is cheap, the
    factory is called once on the first budget's env (a factory that trains pays that once more); else
    only a return annotation that names a class without act() is caught here (the rest when it is built)."""
    if not profile.cheap_make:
        annotated = _annotated_return(factory)
        if isinstance(annotated, type) and not callable(getattr(annotated, "act", None)):
            raise NotAnAgent(
                f"agent {spec.text!r}: its factory {spec.entry_point} returns {annotated.__name__} (its return "
                f"annotation), which has no act(obs, info); {AGENT_REQUIREMENTS}."
            )
        return
    env = make_bench_env(env_id, env_kwargs, budget)
    try:
        agent = factory(env, *spec.args, **dict(spec.kwargs))
    except (TypeError, AttributeError) as err:  # what calling a callable that is not an agent factory raises
        raise NotAnAgent(
            f"agent {spec.text!r}: calling its factory {spec.entry_point}(env"
            f"{''.join(', ' + repr(a) for a in spec.args)}{''.join(f', {k}={v!r}' for k, v in spec.kwargs)}) "
            f"failed ({type(err).__name__}: {err}); {AGENT_REQUIREMENTS}."
        ) from err
    except ValueError as err:
        raise ValueError(f"agent {spec.text!r}: {err}") from err
    finally:
        env.close()
    problem = agent_problem(agent)
    if problem is not None:
        raise NotAnAgent(f"agent {spec.text!r}: its factory {spec.entry_point} returned {problem}; {AGENT_REQUIREMENTS}.")


def _annotated_return(factory: Callable) -> Any:
    """What `factory` says it returns: the class itself for a class, else its return annotation (None when
    it has none or it cannot be resolved)."""
    import typing

    if isinstance(factory, type):
        return factory
    try:
        return typing.get_type_hints(factory).get("return")  # `-> None` gives NoneType
    except Exception:  # unresolvable forward references, builtins: nothing to check
        return None


def make_bench_env(env_id: str, env_kwargs: dict, budget: Budget):
    import gymnasium as gym

    try:
        return gym.make(env_id, **env_kwargs, **budget_kwargs(budget))
    except (TypeError, ValueError) as err:
        raise type(err)(f"{env_id} at budget {budget_label(budget)}: {err}") from None


@dataclass(frozen=True)
class WorkItem:
    """One problem for one agent at one budget."""

    agent: str  # the agent spec text
    budget: str  # the budget label ("H=4")
    problem: int  # index i of the problem
    seed: int  # base_seed + i

    @property
    def key(self) -> tuple:
        return (self.agent, self.budget, self.seed)
