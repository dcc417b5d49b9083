"""Agents by name, for the benchmark runner: each name maps to a *string* entry point
(`"ttc_gym.agents.factories:ppo"`) resolved with importlib when a run starts, so `import ttc_gym` loads no agent
code. A spec names an agent and its arguments, or a factory by Python import path:

    oracle                      the exact DP oracle (TTC-Sim-v0)
    answer-after:3              a registered name with one positional argument
    answer-when-confident:threshold=0.8,patience=3
    ppo:/path/to/model.zip      a checkpoint instead of training on the spot
    mypkg.agents:make_agent     any factory `make_agent(env, *args, **kwargs) -> agent`
    mypkg.agents:make_agent:4,mode=fast

A factory is called as `factory(env, *args, **kwargs)` with the env the agent is evaluated on (built at
the run's budget) and returns an agent (`ttc_gym.agent.Agent`): `act(obs, info) -> action`, and
`reset(seed=...)`, which the runner calls before each problem with that problem's seed (an agent with
`act` only is accepted too). An optional `factory.check(*args, **kwargs)` validates the arguments
without building anything; the runner calls it before any compute. An agent's argument defaults live
in its factory's signature (`agent_arguments` reads them there for `--list-agents`), so the summaries
below name arguments but repeat no default.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ttc_gym.errors import TTCGymError
from ttc_gym.validation import did_you_mean, unknown_name_error


@dataclass(frozen=True)
class AgentEntry:
    """A registered agent name.

    Attributes:
        name: what users type (`ttc-gym bench --agents NAME[:ARGS]`).
        entry_point: `"module:attr"` of its factory, imported only when a run starts.
        summary: one line for `ttc-gym bench --list-agents` (the arguments' defaults are read from the
            factory: `agent_arguments`).
        envs: the env ids it runs on (None: any env with a matching action kind).
        action_kinds: the kinds of action it emits: "meta" (the Discrete(4) `MetaAction`s of TTC-Sim-v0
            and TTC-MathMeta-v0) or "text" (the next episode, TTC-Math-v0).
        oracle: True when the agent decides from gold-derived information (J, progress, the outcome,
            the simulator's hidden state) that a deployed system does not have: it cannot be deployed,
            and tables mark it (docs/formulation.md §3). Its summary starts with "ORACLE".
    """

    name: str
    entry_point: str
    summary: str
    envs: tuple[str, ...] | None = None
    action_kinds: tuple[str, ...] = ("meta",)
    oracle: bool = False


AGENTS: dict[str, AgentEntry] = {}


def register_agent(entry: AgentEntry, *, replace: bool = False) -> None:
    """Add an agent name to the registry (e.g. from a plugin); `replace=True` to redefine one."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", entry.name):
        raise ValueError(f"agent names are lowercase words with '-' or '_' (no ':' or '.'), got {entry.name!r}.")
    if ":" not in entry.entry_point:
        raise ValueError(f"entry_point must be 'module:attr', got {entry.entry_point!r}.")
    if entry.name in AGENTS and not replace:
        raise ValueError(f"agent {entry.name!r} is already registered (pass replace=True to redefine it).")
    AGENTS[entry.name] = entry


for _entry in (
    AgentEntry("oracle", "ttc_gym.agents.factories:oracle",
               "return-optimal policy by dynamic programming over the simulator's belief-MDP "
               "(observations plus the simulator's exact model; no gold, no hidden state)",
               envs=("TTC-Sim-v0",)),
    AgentEntry("oracle-accuracy", "ttc_gym.agents.factories:oracle_accuracy",
               "accuracy-optimal policy at the budget by dynamic programming over the simulator's belief-MDP "
               "(ignores the episode cost; 'oracle' maximizes the return)",
               envs=("TTC-Sim-v0",)),
    AgentEntry("q-learning", "ttc_gym.agents.factories:q_learning",
               "tabular Q-learning, trained on the spot for `steps` transitions; `state_fields=a+b` indexes its "
               "table by those observation fields only (state aggregation)"),
    AgentEntry("double-q-learning", "ttc_gym.agents.factories:double_q_learning",
               "tabular Double Q-learning (van Hasselt), trained on the spot for `steps` transitions; "
               "`state_fields=a+b` as q-learning's"),
    AgentEntry("ppo", "ttc_gym.agents.factories:ppo",
               "stable-baselines3 PPO, trained on the spot for `steps` timesteps, or loaded: ppo:PATH.zip"),
    AgentEntry("answer-when-confident", "ttc_gym.agents.factories:answer_when_confident",
               "continue until a gold-free confidence >= threshold (forced answers' agreement; on the sim "
               "E[J | obs]), verify then switch after `patience` stalls"),
    AgentEntry("oracle-answer-when-confident", "ttc_gym.agents.factories:oracle_answer_when_confident",
               "ORACLE: reads gold-derived J; continue until J >= threshold, switch after `patience` stalls",
               oracle=True),
    AgentEntry("never-verify", "ttc_gym.agents.factories:never_verify",
               "answer as soon as a candidate exists, never verify",
               envs=("TTC-Sim-v0",)),
    AgentEntry("answer-after", "ttc_gym.agents.factories:answer_after",
               "continue for exactly k episodes, then answer"),
    AgentEntry("random", "ttc_gym.agents.factories:random_agent",
               "uniformly random meta-actions, reseeded from `seed` and each problem's seed"),
    AgentEntry("llm", "ttc_gym.agents.factories:llm",
               "the env's model writes each episode (at most max_episode_tokens)", action_kinds=("text",)),
    AgentEntry("think-until-budget", "ttc_gym.agents.factories:think_until_budget",
               "never commit; the env forces an answer when the budget runs out", action_kinds=("text",)),
    AgentEntry("budget-forcing", "ttc_gym.agents.factories:budget_forcing",
               "s1-style: replace commits by 'Wait,' before min_episodes", action_kinds=("text",)),
    AgentEntry("stop-when-confident", "ttc_gym.agents.factories:stop_when_confident",
               "commit the prover's majority answer once that share of its forced answers agree",
               action_kinds=("text",)),
    AgentEntry("oracle-stop-when-confident", "ttc_gym.agents.factories:oracle_stop_when_confident",
               "ORACLE: reads gold-derived J; commit the prover's majority answer once J >= threshold",
               action_kinds=("text",), oracle=True),
    AgentEntry("majority-vote", "ttc_gym.agents.factories:majority_vote",
               "think k episodes, then commit the majority of the prover's answers", action_kinds=("text",)),
    AgentEntry("llm-checkpoint", "ttc_gym.agents.factories:llm_checkpoint",
               "a trained checkpoint writes each episode: llm-checkpoint:PATH", action_kinds=("text",)),
):
    register_agent(_entry)


def is_oracle_agent(text: str) -> bool:
    """Whether the agent spec `text` names a registered agent flagged `oracle` (gold-informed); False for
    an import path or an unknown name."""
    head = text.strip().partition(":")[0] if isinstance(text, str) else ""
    entry = AGENTS.get(head)
    return bool(entry is not None and entry.oracle)


_IMPORT_PATH = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


@dataclass(frozen=True)
class AgentSpec:
    """A parsed agent spec; `text` (as given) labels the agent in tables, plots and results."""

    text: str
    entry_point: str
    name: str | None = None  # registry name; None for an import path
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @property
    def entry(self) -> AgentEntry | None:
        return AGENTS.get(self.name) if self.name else None


def _parse_value(text: str) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (int, float, bool, str, type(None))) else text


def _parse_args(text: str, spec: str) -> tuple[tuple, tuple]:
    args: list = []
    kwargs: dict = {}
    if text == "":
        return (), ()
    for part in text.split(","):
        part = part.strip()
        key, eq, value = part.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_]\w*", key.strip()):
            if key.strip() in kwargs:
                raise ValueError(f"agent {spec!r}: argument {key.strip()!r} given twice.")
            kwargs[key.strip()] = _parse_value(value.strip())
        elif kwargs:
            raise ValueError(f"agent {spec!r}: positional argument {part!r} after keyword arguments.")
        else:
            args.append(_parse_value(part))
    return tuple(args), tuple(kwargs.items())


def parse_agent_spec(text: str) -> AgentSpec:
    """`NAME[:ARGS]` (a registered name) or `MODULE:FACTORY[:ARGS]` (an import path); ARGS are
    comma-separated positional values then `key=value` pairs (numbers, True/False/None, or strings)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"an agent spec must be a non-empty string like 'answer-after:3', got {text!r}.")
    text = text.strip()
    head, _, rest = text.partition(":")
    if head in AGENTS:
        args, kwargs = _parse_args(rest, text)
        return AgentSpec(text, AGENTS[head].entry_point, head, args, kwargs)
    attr, _, arg_text = rest.partition(":")
    if rest and _IMPORT_PATH.fullmatch(head) and _IMPORT_PATH.fullmatch(attr) and (
        "." in head or importlib.util.find_spec(head) is not None
    ):
        args, kwargs = _parse_args(arg_text, text)
        return AgentSpec(text, f"{head}:{attr}", None, args, kwargs)
    err = unknown_name_error("agent", head, AGENTS)
    raise ValueError(f"{err} Or give a factory as an import path 'package.module:factory'.")


def resolve_entry_point(entry_point: str) -> Callable:
    """Import `module` and walk `attr` (dotted) of a `"module:attr"` string."""
    module_name, _, attr = entry_point.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"cannot import module {module_name!r} of agent factory {entry_point!r}: {err}") from err
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise AttributeError(
                f"{entry_point!r}: {type(obj).__name__} {getattr(obj, '__name__', obj)!r} has no attribute "
                f"{part!r}.{did_you_mean(part, names)}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"agent factory {entry_point!r} is not callable (got {type(obj).__name__}).")
    return obj


def agent_arguments(entry_point: str) -> str:
    """The arguments of a factory after the env, with their defaults, as `--list-agents` prints them
    (e.g. "threshold=0.9, patience=2"); empty for a factory without arguments."""
    signature = inspect.signature(resolve_entry_point(entry_point))
    parts = []
    for p in list(signature.parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            parts.append(("*" if p.kind == p.VAR_POSITIONAL else "**") + p.name)
        else:
            parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(parts)


def check_agent_spec(spec: AgentSpec, env_id: str, action_kind: str | None = None) -> Callable:
    """Everything that can be checked without building the agent: the env fits, the factory imports,
    the arguments bind to its signature and pass its `check`. Returns the factory."""
    entry = spec.entry
    if entry is not None:
        if entry.envs is not None and env_id not in entry.envs:
            raise ValueError(f"agent {spec.text!r} runs on {', '.join(entry.envs)} only, not on {env_id}.")
        if action_kind is not None and action_kind not in entry.action_kinds:
            raise ValueError(
                f"agent {spec.text!r} emits {'/'.join(entry.action_kinds)} actions; {env_id} takes "
                f"{action_kind} actions."
            )
    factory = resolve_entry_point(spec.entry_point)
    kwargs = dict(spec.kwargs)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        signature = None
    if signature is not None:
        params = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
        names = [p.name for p in params[1:]]  # the first one is the env
        for key in kwargs:
            if key not in names and not takes_any:
                raise ValueError(
                    f"agent {spec.text!r}: unknown argument {key!r}.{did_you_mean(key, names)} "
                    f"It takes: {', '.join(names) or 'no arguments'}."
                )
        try:
            signature.bind(None, *spec.args, **kwargs)
        except TypeError as err:
            raise ValueError(
                f"agent {spec.text!r}: {err} (its factory is {spec.entry_point}{signature}; {AGENT_REQUIREMENTS})."
            ) from None
    check = getattr(factory, "check", None)
    if check is not None:
        try:
            check(*spec.args, **kwargs)
        except (TypeError, ValueError, FileNotFoundError) as err:
            raise type(err)(f"agent {spec.text!r}: {err}") from None
    return factory


AGENT_REQUIREMENTS = (
    "an agent factory is called as factory(env, *args, **kwargs) and returns an agent: an object with a method "
    "act(obs, info) -> action and, optionally, reset(seed=None) (see ttc_gym.agent.Agent)"
)


class NotAnAgent(TTCGymError, TypeError):
    """A factory returned something that is not an agent (`AGENT_REQUIREMENTS`)."""


def agent_problem(agent: Any) -> str | None:
    """Why `agent` is not an agent (`ttc_gym.agent.Agent`), or None when it is one."""
    what = "None" if agent is None else f"{type(agent).__name__} {_short_repr(agent)}"
    if not hasattr(agent, "act"):
        return f"{what}, which has no act(obs, info)"
    if not callable(agent.act):
        return f"{what}, whose act is not a method but {_short_repr(agent.act)}"
    reset = getattr(agent, "reset", None)
    if reset is not None and not callable(reset):
        return f"{what}, whose reset is not a method but {_short_repr(reset)}"
    return None


def _short_repr(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


class AgentBuildError(TTCGymError, ValueError):
    """A factory refused its arguments on the env it was given (what `check` cannot see without the env,
    e.g. an observation field name the env does not have)."""


def build_agent(spec: AgentSpec, env: Any) -> Any:
    """Call the spec's factory on `env`; the result must be an agent (`agent_problem`), else `NotAnAgent`.
    A ValueError or TypeError from the factory becomes an `AgentBuildError` naming the agent."""
    factory = resolve_entry_point(spec.entry_point)
    try:
        agent = factory(env, *spec.args, **dict(spec.kwargs))
    except (ValueError, TypeError) as err:
        env_id = getattr(getattr(env, "spec", None), "id", type(env).__name__)
        raise AgentBuildError(f"agent {spec.text!r} could not be built on {env_id}: {err}") from err
    problem = agent_problem(agent)
    if problem is not None:
        raise NotAnAgent(f"agent {spec.text!r}: its factory {spec.entry_point} returned {problem}; {AGENT_REQUIREMENTS}.")
    return agent
