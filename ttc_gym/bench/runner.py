"""The benchmark runner: agents x budgets x problems on one env, with seeds.

Problem i is `env.reset(seed=base_seed + i)` for every agent and budget, so all agents face the same
problems and differences between them can be tested pairwise; the agent is reset with the same seed
(`ttc_gym.agent.Agent`), so a stochastic agent's actions on problem i do not depend on what ran before. Every finished problem is appended to
`results.jsonl` at once (a killed run loses nothing; `resume=True` skips what is there), then the
summary, table and plots are made from that file alone. One run at a time writes an output folder
(`folder_lock`); each record names the env and env kwargs it was made with, so a resumed run continues
only its own configuration's results (`run_identity`); damaged lines are skipped and recomputed
(`results_file`).

Work goes through an *executor*: `executor(items, evaluate) -> iterable of records`, serial by default.
`evaluate` is an `ItemEvaluator`, picklable (it rebuilds its envs and agents lazily wherever it runs), so
an executor may ship items to worker processes or Ray actors and yield records as they finish, in any
order; nothing else changes.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ttc_gym.bench.agent_registry import (
    AGENT_REQUIREMENTS,
    AgentSpec,
    NotAnAgent,
    agent_problem,
    build_agent,
    check_agent_spec,
    parse_agent_spec,
    resolve_entry_point,
)
from ttc_gym.bench.folder_lock import FolderLock, OutputFolderBusy, check_unlocked, describe_holder
from ttc_gym.bench.profiles import EnvProfile, profile_for
from ttc_gym.bench.report import BEST_PREFIX
from ttc_gym.bench.results_file import (
    RESULTS_FILE,
    ResultsWriter,
    read_results,
    record_key,
    record_problem,
    repair_results,
)
from ttc_gym.bench.run_identity import (
    CONFIG_FILE,
    config_differences,
    foreign_records,
    read_stored_config,
    vouch_for_records,
)
from ttc_gym.budget import Budget
from ttc_gym.jsonl_log import move_to_backup
from ttc_gym.validation import check_float, check_int, did_you_mean, unknown_name_error

DEFAULT_ENV = "TTC-Sim-v0"
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

    env_id: str = field(default=DEFAULT_ENV, metadata={"help": "registered env id"})
    agents: Sequence[str] = field(default=(), metadata={"help": "agent specs (NAME[:ARGS] or module:factory)"})
    budgets: Sequence[Any] = field(
        default=(), metadata={"help": "budgets: H (episodes), H:C0 (episodes and tokens) or :C0 (tokens)"}
    )
    num_problems: int | None = field(default=None, metadata={"help": "problems per agent and budget"})
    base_seed: int = field(default=0, metadata={"help": "problem i uses seed base_seed + i"})
    env_kwargs: dict = field(default_factory=dict, metadata={"help": "extra gym.make kwargs (not budgets)"})
    j_star: float | None = field(
        default=None, metadata={"help": "comparator accuracy J* of the regrets (default: oracle on the sim, else 1)"}
    )
    j_star_from: str | None = field(
        default=None,
        metadata={"help": "comparator curve J*_j per problem from this run's records: 'best-prefix' (the best J "
                          "any agent reached within j episodes; an oracle comparator) or an agent's name"},
    )
    rank_by: str | None = field(default=None, metadata={"help": "metric the table ranks by"})
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
            "env_kwargs": _jsonable(self.env_kwargs),
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


def _jsonable(value: Any) -> Any:
    """`value` as JSON would store it; objects JSON cannot hold (e.g. an engine passed in env_kwargs) by
    their repr, or their type when the repr holds a memory address, so that the stored configuration does not change from one process to the next."""

    def stable(obj: Any) -> Any:
        if isinstance(obj, (np.generic, np.ndarray, set, tuple)):
            return _json_default(obj)
        text = repr(obj)  # a dataclass's repr is stable; a default one holds a memory address
        return text if " at 0x" not in text else f"<{type(obj).__module__}.{type(obj).__qualname__}>"

    return json.loads(json.dumps(value, default=stable))


def _json_default(obj: Any) -> Any:
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
            env = _make_env(config.env_id, config.env_kwargs, budget)
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
    _check_folder_state(plan, resume=resume, overwrite=overwrite)
    return plan


def _check_folder_state(plan: BenchPlan, *, resume: bool, overwrite: bool) -> None:
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
    env = _make_env(env_id, env_kwargs, budget)
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


def _make_env(env_id: str, env_kwargs: dict, budget: Budget):
    import gymnasium as gym

    try:
        return gym.make(env_id, **env_kwargs, **budget_kwargs(budget))
    except (TypeError, ValueError) as err:
        raise type(err)(f"{env_id} at budget {budget_label(budget)}: {err}") from None


# ----------------------------------------------------------------------------------------------------
# Work items, their evaluation, executors


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


class ItemEvaluator:
    """`evaluate(item) -> record`: runs one problem. Builds (trains) each agent once per budget and
    keeps the last one; picklable without its caches, so it can travel to another process."""

    def __init__(self, env_id: str, env_kwargs: dict, agents: Sequence[AgentSpec], budgets: Sequence[Budget]):
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs)
        self.agents = {a.text: a for a in agents}
        self.budgets = {budget_label(b): b for b in budgets}
        self.env_stamp = {"env_id": env_id, "env_kwargs": _jsonable(self.env_kwargs)}  # in every record
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
            self._envs[budget] = _make_env(self.env_id, self.env_kwargs, self.budgets[budget])
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


# ----------------------------------------------------------------------------------------------------
# Comparators per budget: J* and C0


def comparators(plan: BenchPlan) -> dict[str, dict]:
    """J* and C0 (None: decided from the records) at each budget."""
    out = {}
    profile = plan.profile
    j_star_fn = resolve_entry_point(profile.j_star) if plan.j_star is None and profile.j_star else None
    c0_fn = resolve_entry_point(profile.budget_tokens) if profile.budget_tokens else None
    for budget in plan.budgets:
        env = _make_env(plan.env_id, plan.env_kwargs, budget) if (j_star_fn or c0_fn) else None
        if plan.j_star_from is not None:  # per problem, from the records (report.j_star_from_records)
            j_star = 1.0
            source = ("best prefix: the best J any agent reached within j episodes, per problem (oracle comparator)"
                      if plan.j_star_from == BEST_PREFIX else f"agent {plan.j_star_from}'s J curve, per problem")
        elif plan.j_star is not None:
            j_star, source = plan.j_star, "given"
        elif j_star_fn is not None:
            j_star, source = j_star_fn(env), profile.j_star
        else:
            j_star, source = 1.0, "perfect solver"
        # A curve J*_j (j = 0..H: the best accuracy reachable with j episodes) or one number for every j.
        j_star_curve = [float(x) for x in j_star] if isinstance(j_star, (list, tuple)) else None
        j_star = j_star_curve[-1] if j_star_curve else float(j_star)
        c0 = int(c0_fn(env)) if c0_fn is not None else budget.max_tokens
        if env is not None:
            env.close()
        out[budget_label(budget)] = {
            "max_episodes": budget.max_episodes, "max_tokens": budget.max_tokens,
            "j_star": j_star, "j_star_source": source, "budget_tokens": c0,
            # which comparator the episode regret used: "curve J*_j" (j_star_curve) or "scalar J*"
            "episode_regret_comparator": "curve J*_j" if (j_star_curve or plan.j_star_from) else "scalar J*",
            # which convention the token regret used (MRT's notebook one is metrics.mrt_normalized_token_regret)
            "token_regret_convention": TOKEN_REGRET_CONVENTION,
            # what the table's maj@k column is (MRT's maj@k at one prefix is metrics.maj_at_k_one_prefix)
            "maj_convention": MAJ_CONVENTION,
        }
        if j_star_curve:
            out[budget_label(budget)]["j_star_curve"] = j_star_curve
        if plan.j_star_from is not None:
            out[budget_label(budget)]["j_star_from"] = plan.j_star_from
    return out


# ----------------------------------------------------------------------------------------------------
# The run


class OutputNotWritten(OSError):
    """Writing to the output folder failed (a full disk, a file made read-only): the message says what is
    saved and how to continue; `errno` is the cause's."""

    exit_code = 1

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


def _why(err: OSError) -> str:
    return f"{err.strerror or err}" + (f" (errno {err.errno})" if err.errno else "")


@dataclass
class BenchResult:
    plan: BenchPlan
    summary: dict
    files: dict[str, Path]
    computed: int  # problems evaluated by this call (the rest came from results.jsonl)
    elapsed_s: float
    notices: list = field(default_factory=list)  # what run_bench told the user (one line each)


def run_bench(
    config: BenchConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    executor: Executor = serial_executor,
    progress: bool = True,
    plots: bool = True,
    console: Any = None,
    notify: Callable[[str], None] | None = None,
) -> BenchResult:
    """Validate, evaluate what is not in `results.jsonl` yet, then write summary.json/.csv, table.txt
    and the plots, print the table, and return the summary. The output folder is locked for the run
    (`ttc_gym.bench.folder_lock`): a second run on it raises `OutputFolderBusy` at once.

    With `overwrite`, the old results.jsonl and bench_config.json are kept as backups (`NAME.bak-DATE`).
    With `resume`, damaged lines of results.jsonl (cut short, not JSON, not a complete record) are
    skipped and their problems computed again. `notify(line)` gets one line per such finding (default:
    printed to stderr); `BenchResult.notices` holds them too."""
    start = time.perf_counter()
    notices: list[str] = []

    def say(message: str) -> None:
        notices.append(message)
        if notify is not None:
            notify(message)
        else:
            print(f"ttc-gym bench: notice: {message}", file=sys.stderr)

    plan = prepare(config, resume=resume, overwrite=overwrite)
    with FolderLock(plan.out_dir) as lock:  # one run per output folder, until this one ends
        if lock.stale_holder is not None:
            say(f"{plan.out_dir}: took over the lock of {describe_holder(lock.stale_holder)}, a bench that ended "
                f"without releasing it (killed?).")
        _check_folder_state(plan, resume=resume, overwrite=overwrite)  # again, now that no one else writes
        return _run_locked(plan, overwrite=overwrite, executor=executor, progress=progress, plots=plots,
                           console=console, say=say, notices=notices, start=start)


def _run_locked(
    plan: BenchPlan, *, overwrite: bool, executor: Executor, progress: bool, plots: bool, console: Any,
    say: Callable[[str], None], notices: list, start: float,
) -> BenchResult:
    """`run_bench` once the output folder is this process's: evaluate, write, summarize."""
    from ttc_gym.bench.report import print_table, summarize_results, write_summary

    out = plan.out_dir
    results_path = out / RESULTS_FILE
    items = plan.work_items()
    total = len(items)
    todo = [item for item in items if item.key not in plan.done]
    resume_hint = "rerun with resume (ttc-gym bench --resume) to continue"

    def not_written(what: str, err: OSError, saved: int, computed: int = 0) -> OutputNotWritten:
        by_this_run = f" ({computed} by this run)" if computed else ""
        return OutputNotWritten(
            f"cannot write {what}: {_why(err)}. {saved} of {total} problems are saved in {results_path}"
            f"{by_this_run}; free some disk space or make {out} writable, then {resume_hint}.", err.errno,
        )

    try:
        if overwrite:
            kept = [move_to_backup(out / name) for name in (RESULTS_FILE, CONFIG_FILE)]
            for name in OUTPUT_FILES:  # ours only: the folder may hold other things
                if (out / name).is_file():
                    (out / name).unlink()
            if kept[0] is not None:
                also = f" (and {kept[1].name})" if kept[1] is not None else ""
                say(f"starting over: the previous results are kept as {kept[0]}{also}.")
        for message in plan.notices:
            say(message)
        read = read_results(results_path)
        backup = repair_results(results_path, read)  # cut a torn last line off, drop damaged lines
        if read.damaged:
            say(read.notice(results_path, backup=backup))
        comps = comparators(plan)
        (out / CONFIG_FILE).write_text(json.dumps({"config": plan.identity(), "comparators": comps}, indent=2) + "\n")
    except OSError as err:
        raise not_written(str(err.filename or out / CONFIG_FILE), err, total - len(todo)) from err

    evaluator = ItemEvaluator(plan.env_id, plan.env_kwargs, plan.agents, plan.budgets)
    computed = 0
    if todo:
        from tqdm.auto import tqdm

        try:
            writer = ResultsWriter(results_path)
        except OSError as err:
            raise not_written(str(results_path), err, total - len(todo)) from err
        with writer, tqdm(
            total=len(todo), desc=f"bench {plan.env_id}", unit="problem", disable=not progress,
            dynamic_ncols=True,
        ) as bar:
            evaluator.on_event = bar.write if progress else None
            for record in executor(todo, evaluator):
                try:
                    writer.append(json.dumps(record, default=_json_default) + "\n")
                except OSError as err:
                    raise not_written(str(results_path), err, total - len(todo) + computed, computed) from err
                computed += 1
                bar.set_postfix_str(f"{record['agent']} {record['budget']}", refresh=False)
                bar.update(1)

    records = read_results(results_path).records
    summary = summarize_results(
        records, agents=[a.text for a in plan.agents], budgets=comps, num_problems=plan.num_problems,
        base_seed=plan.base_seed, rank_by=plan.rank_by, env_id=plan.env_id, note=plan.profile.note,
    )
    files = {"results": results_path, "config": out / CONFIG_FILE}
    try:
        files.update(write_summary(summary, out))
        files["table"] = print_table(summary, console=console, path=out / TABLE_FILE)
        if plots:
            from ttc_gym.bench.plots import make_plots

            files.update(make_plots(summary, out))
    except OSError as err:
        raise OutputNotWritten(
            f"all {total} problems are saved in {results_path}, but writing {err.filename or 'the summary'} "
            f"failed: {_why(err)}; free some disk space or make {out} writable, then rerun with resume "
            f"(ttc-gym bench --resume) to write the summary, table and plots.", err.errno,
        ) from err
    return BenchResult(plan, summary, files, computed, time.perf_counter() - start, notices)
