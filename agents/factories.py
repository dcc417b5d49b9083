"""Agent factories for the benchmark runner (`ttc-gym bench`), one per registered agent name.

A factory is `factory(env, *args, **kwargs) -> agent`: it gets the env the agent will be evaluated on
(already built at the run's budget, so its spaces, `env.spec` and the env's documented accessors —
`env.unwrapped.model` on TTC-Sim-v0, `env.unwrapped.engine` and `.template` on the math envs — are at
hand) and the arguments of the agent spec (`"answer-after:3"` -> `answer_after(env, 3)`). The agent
follows `ttc_gym.agent.Agent`: the runner calls `reset(seed=...)` with each problem's seed, then `act`.

Defaults are written once: a factory's argument defaults are read from the class it builds (a
frozen dataclass of settings: `AnswerAfterK.k`, `BudgetForcing.min_episodes`, `QLearningConfig`,
`PPOSettings`, `LLMSettings`, ...), and `ttc-gym bench --list-agents` shows them from the signature.

Each factory carries `check(*args, **kwargs)` (`_checked`): the runner calls it before any compute to
validate the arguments (bad thresholds, missing checkpoint files), so that an error in the last agent
of a list is not found after the first one has trained. Training happens inside the factory, on the
spot, with fixed seeds: the same spec and env give the same agent.

The benchmark (`ttc_gym.bench`) names these factories by strings (`"ttc_gym.agents.factories:ppo"`),
resolved when a run starts.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym

from ttc_gym.agents.heuristics import (
    AnswerAfterK,
    AnswerWhenConfident,
    NeverVerify,
    OracleAnswerWhenConfident,
    RandomAgent,
)
from ttc_gym.agents.llm import LLMAgent
from ttc_gym.agents.sb3 import MemoizedPolicyAgent, PPOSettings, load_ppo, train_ppo
from ttc_gym.agents.strategies import (
    BudgetForcing,
    MajorityVote,
    OracleStopWhenConfident,
    StopWhenConfident,
    ThinkUntilBudget,
)
from ttc_gym.agents.tabular import QLearningConfig
from ttc_gym.validation import check_float, check_int, unknown_name_error


def _checked(validate: Callable[..., Any]):
    """Give the decorated factory its `check(*args, **kwargs)`: the spec's arguments bound to the
    factory's signature, its defaults filled in, and passed by name to `validate` (which raises on a
    bad value). The check thus sees exactly what the factory would get, and no default is repeated."""

    def attach(factory: Callable) -> Callable:
        signature = inspect.signature(factory)
        env_param = next(iter(signature.parameters))

        def check(*args: Any, **kwargs: Any) -> None:
            bound = signature.bind(None, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop(env_param)
            validate(**arguments)

        factory.check = check
        return factory

    return attach


# ----------------------------------------------------------------------------------------------------
# Fixed test-time strategies (cheap: built in microseconds)


@_checked(AnswerAfterK)
def answer_after(env, k: int = AnswerAfterK.k) -> AnswerAfterK:
    """Think (continue) for exactly k episodes, then answer."""
    return AnswerAfterK(k)


@_checked(AnswerWhenConfident)
def answer_when_confident(
    env, threshold: float = AnswerWhenConfident.threshold, patience: int = AnswerWhenConfident.patience
) -> AnswerWhenConfident:
    """Continue until a gold-free confidence reaches `threshold` (the agreement of the prover's forced
    answers; on TTC-Sim-v0, E[J | observation] under the env's public model); verify, then switch
    approach, when it stalls for `patience` episodes."""
    return AnswerWhenConfident(threshold, patience, model=getattr(env.unwrapped, "model", None))


@_checked(OracleAnswerWhenConfident)
def oracle_answer_when_confident(
    env, threshold: float = OracleAnswerWhenConfident.threshold, patience: int = OracleAnswerWhenConfident.patience
) -> OracleAnswerWhenConfident:
    """ORACLE: continue until the prover's gold-graded J reaches `threshold`; switch after `patience` stalls."""
    return OracleAnswerWhenConfident(threshold, patience)


@_checked(NeverVerify)
def never_verify(env, patience: int = NeverVerify.patience) -> NeverVerify:
    """TTC-Sim-v0 hand policy: answer as soon as a candidate exists, never verify."""
    return NeverVerify(patience)


@_checked(lambda seed: RandomAgent(gym.spaces.Discrete(1), seed))
def random_agent(env, seed: int = RandomAgent.seed) -> RandomAgent:
    """Uniformly random meta-actions, reseeded from `seed` and each problem's seed."""
    return RandomAgent(env.action_space, seed)


# ----------------------------------------------------------------------------------------------------
# The exact oracle (TTC-Sim-v0)


@_checked(lambda: None)
def oracle(env):
    """The exact optimal policy by dynamic programming over the simulator's public belief-MDP."""
    from ttc_gym.agents.oracle import OracleAgent

    return OracleAgent.from_env(env)


def oracle_accuracy(env):
    """The accuracy-optimal policy at the budget (DP over the simulator's belief-MDP, no episode cost)."""
    from ttc_gym.agents.oracle import AccuracyOracleAgent

    return AccuracyOracleAgent.from_env(env)


def sim_j_star(env) -> list[float]:
    """J*_j for j = 0..H on TTC-Sim-v0: the best accuracy reachable with j episodes, by an
    accuracy-maximizing DP per difficulty level averaged with the level mix (docs/formulation.md §5)."""
    from ttc_gym.agents.oracle import OracleAgent, j_star_curve

    return [float(x) for x in j_star_curve(OracleAgent.from_env(env).model)]


def sim_budget_tokens(env) -> int:
    """C0 on TTC-Sim-v0: H episodes of `tokens_per_episode` tokens each."""
    params = env.unwrapped.model.params
    return int(params.max_episodes * params.tokens_per_episode)


# ----------------------------------------------------------------------------------------------------
# Learners, trained on the spot (fixed seeds) or loaded from a checkpoint


def _env_id_and_kwargs(env) -> tuple[str, dict]:
    spec = env.spec
    if spec is None:
        raise TypeError("learning agents need an env made by gym.make (with a spec) to build training envs.")
    return spec.id, dict(spec.kwargs)


def _check_q(steps: int, seed: int, num_envs: int, state_fields=None) -> QLearningConfig:
    check_int("num_envs", num_envs, minimum=1)
    _split_state_fields(state_fields)
    return QLearningConfig(total_steps=steps, seed=seed)


def _split_state_fields(state_fields) -> tuple[str, ...] | None:
    """`"a+b+c"` or a sequence of names -> a tuple of names (None stays None)."""
    if state_fields is None:
        return None
    names = state_fields.split("+") if isinstance(state_fields, str) else state_fields
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) and n.strip() for n in names):
        return tuple(n.strip() for n in names)
    raise ValueError("state_fields must be observation field names, as 'episodes_used+agreement' or a list of "
                     f"strings, got {state_fields!r}.")


def _state_field_indices(env, state_fields) -> tuple[int, ...] | None:
    """The indices of the named fields in the env's observation (its documented `obs_fields`)."""
    names = _split_state_fields(state_fields)
    if names is None:
        return None
    known = getattr(env.unwrapped, "obs_fields", None)
    if known is None:
        raise TypeError(f"state_fields needs an env that names its observation fields (`obs_fields`); "
                        f"{type(env.unwrapped).__name__} does not.")
    for name in names:
        if name not in known:
            raise unknown_name_error("observation field", name, known)
    return tuple(known.index(name) for name in names)


@_checked(_check_q)
def q_learning(env, steps: int = QLearningConfig.total_steps, seed: int = QLearningConfig.seed, num_envs: int = 256,
               state_fields: str | Sequence[str] | None = None):
    """Tabular Q-learning trained for `steps` transitions on `num_envs` copies of the env (its
    vectorized twin when it has one); the other settings are `QLearningConfig`'s. `state_fields`
    (names from the env's `obs_fields`, e.g. "episodes_used+agreement+trace_ended") aggregates the
    state: the table sees those fields only (`QLearningAgent`)."""
    from ttc_gym.agents.tabular import QLearningAgent

    return _train_tabular(QLearningAgent, env, steps, seed, num_envs, state_fields)


@_checked(_check_q)
def double_q_learning(env, steps: int = QLearningConfig.total_steps, seed: int = QLearningConfig.seed,
                      num_envs: int = 256, state_fields: str | Sequence[str] | None = None):
    """Tabular Double Q-learning (van Hasselt 2010; `ttc_gym.agents.tabular.DoubleQLearningAgent`), trained
    as `q_learning` is."""
    from ttc_gym.agents.tabular import DoubleQLearningAgent

    return _train_tabular(DoubleQLearningAgent, env, steps, seed, num_envs, state_fields)


def _train_tabular(agent_class, env, steps: int, seed: int, num_envs: int, state_fields):
    config = _check_q(steps, seed, num_envs, state_fields)
    fields = _state_field_indices(env, state_fields)
    env_id, kwargs = _env_id_and_kwargs(env)
    try:
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    except Exception:  # no numpy-vectorized twin: a synchronous vector env of copies
        envs = gym.make_vec(env_id, num_envs=min(num_envs, 16), vectorization_mode="sync", **kwargs)
    agent = agent_class(envs.single_observation_space, envs.single_action_space, fields)
    agent.train(envs, config)
    envs.close()
    return agent


def _check_ppo(path: str | None, steps: int, seed: int, n_envs: int) -> PPOSettings:
    if path is not None:
        if not isinstance(path, str) or not os.path.isfile(path):
            raise FileNotFoundError(f"ppo checkpoint {path!r} is not a file (expected a .zip saved by PPO.save).")
    return PPOSettings(steps=steps, seed=seed, n_envs=n_envs)


@_checked(_check_ppo)
def ppo(env, path: str | None = None, steps: int = PPOSettings.steps, seed: int = PPOSettings.seed,
        n_envs: int = PPOSettings.n_envs):
    """stable-baselines3 PPO: loaded from `path` (a .zip checkpoint), else trained for `steps`
    timesteps on `n_envs` copies of the env (the other settings: `PPOSettings`)."""
    settings = _check_ppo(path, steps, seed, n_envs)
    if path is not None:
        return MemoizedPolicyAgent(load_ppo(path, env.observation_space))
    env_id, kwargs = _env_id_and_kwargs(env)
    return MemoizedPolicyAgent(train_ppo(env_id, kwargs, settings))


# ----------------------------------------------------------------------------------------------------
# LLM agents and test-time strategies (TTC-Math-v0): they share the env's engine, so one model is loaded

_LLM_AGENT_DEFAULTS = {name: p.default for name, p in inspect.signature(LLMAgent).parameters.items()}


@dataclass(frozen=True)
class LLMSettings:
    """How the bench's LLM agents write episodes; the defaults are `LLMAgent`'s own."""

    max_episode_tokens: int = _LLM_AGENT_DEFAULTS["max_episode_tokens"]
    temperature: float = _LLM_AGENT_DEFAULTS["temperature"]
    seed: int = _LLM_AGENT_DEFAULTS["seed"]

    def __post_init__(self) -> None:
        check_int("max_episode_tokens", self.max_episode_tokens, minimum=1)
        check_float("temperature", self.temperature, minimum=0.0)
        check_int("seed", self.seed, minimum=0)

    def build(self, engine: Any, template: Any) -> LLMAgent:
        return LLMAgent(engine, max_episode_tokens=self.max_episode_tokens, temperature=self.temperature,
                        template=template, seed=self.seed)


def _env_llm(env, settings: LLMSettings) -> LLMAgent:
    """An LLM agent on the env's own engine and prompt template."""
    engine = getattr(env.unwrapped, "engine", None)
    if engine is None:
        raise TypeError(f"LLM agents need an env with an engine (TTC-Math-v0), got {env.unwrapped!r}.")
    return settings.build(engine, env.unwrapped.template)


# A strategy's settings are checked by building it without an LLM: its __post_init__ checks them.
_NO_LLM: Any = None


@_checked(LLMSettings)
def llm(env, max_episode_tokens: int = LLMSettings.max_episode_tokens,
        temperature: float = LLMSettings.temperature, seed: int = LLMSettings.seed) -> LLMAgent:
    """The env's model writes each episode (one paragraph, at most max_episode_tokens)."""
    return _env_llm(env, LLMSettings(max_episode_tokens, temperature, seed))


@_checked(LLMSettings)
def think_until_budget(env, max_episode_tokens: int = LLMSettings.max_episode_tokens) -> ThinkUntilBudget:
    """Never commit: think until the budget runs out, then the env forces the answer."""
    return ThinkUntilBudget(_env_llm(env, LLMSettings(max_episode_tokens)))


@_checked(lambda min_episodes, max_episode_tokens: (BudgetForcing(_NO_LLM, min_episodes),
                                                    LLMSettings(max_episode_tokens)))
def budget_forcing(env, min_episodes: int = BudgetForcing.min_episodes,
                   max_episode_tokens: int = LLMSettings.max_episode_tokens) -> BudgetForcing:
    """s1-style budget forcing: replace early commits by 'Wait,' until min_episodes."""
    return BudgetForcing(_env_llm(env, LLMSettings(max_episode_tokens)), min_episodes)


@_checked(lambda threshold, max_episode_tokens: (StopWhenConfident(_NO_LLM, threshold),
                                                 LLMSettings(max_episode_tokens)))
def stop_when_confident(env, threshold: float = StopWhenConfident.threshold,
                        max_episode_tokens: int = LLMSettings.max_episode_tokens) -> StopWhenConfident:
    """Commit the prover's majority answer once that share of its forced answers agree on it."""
    return StopWhenConfident(_env_llm(env, LLMSettings(max_episode_tokens)), threshold)


@_checked(lambda threshold, max_episode_tokens: (OracleStopWhenConfident(_NO_LLM, threshold),
                                                 LLMSettings(max_episode_tokens)))
def oracle_stop_when_confident(env, threshold: float = OracleStopWhenConfident.threshold,
                               max_episode_tokens: int = LLMSettings.max_episode_tokens) -> OracleStopWhenConfident:
    """ORACLE: commit the prover's majority answer once its gold-graded J (from info) reaches threshold."""
    return OracleStopWhenConfident(_env_llm(env, LLMSettings(max_episode_tokens)), threshold)


@_checked(lambda k, max_episode_tokens: (MajorityVote(_NO_LLM, k), LLMSettings(max_episode_tokens)))
def majority_vote(env, k: int = MajorityVote.k, max_episode_tokens: int = LLMSettings.max_episode_tokens) -> MajorityVote:
    """Think k episodes, then commit the majority of all the prover's forced answers so far."""
    return MajorityVote(_env_llm(env, LLMSettings(max_episode_tokens)), k)


# ----------------------------------------------------------------------------------------------------
# A trained LLM checkpoint (ttc_gym.training.llm_train) writes the episodes; the env's prover keeps its engine


def _check_llm_checkpoint(path, max_episode_tokens, temperature, seed, device) -> LLMSettings:
    if not isinstance(path, str) or not path:
        raise ValueError("llm-checkpoint needs a checkpoint folder: llm-checkpoint:runs/mrt_cpu/checkpoint-2")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(
            f"llm-checkpoint: {path!r} is not a model folder (no config.json); give a checkpoint-N folder "
            f"written by `ttc-gym train --env TTC-Math-v0`."
        )
    if not isinstance(device, str) or not device:
        raise ValueError(f"device must be a torch device string such as 'cpu' or 'cuda', got {device!r}.")
    return LLMSettings(max_episode_tokens, temperature, seed)


_CHECKPOINT_ENGINES: dict = {}


@_checked(_check_llm_checkpoint)
def llm_checkpoint(env, path: str | None = None, max_episode_tokens: int = LLMSettings.max_episode_tokens,
                   temperature: float = LLMSettings.temperature, seed: int = LLMSettings.seed, device: str = "cpu"):
    """A trained checkpoint (a HF model folder, e.g. runs/mrt/checkpoint-N) writes each episode."""
    settings = _check_llm_checkpoint(path, max_episode_tokens, temperature, seed, device)
    key = (os.path.abspath(path), str(device))
    if key not in _CHECKPOINT_ENGINES:  # loaded once per process, reused across budgets
        from ttc_gym.engines.transformers_engine import TransformersEngine

        _CHECKPOINT_ENGINES[key] = TransformersEngine(path, device=device, name=f"checkpoint:{path}")
    return settings.build(_CHECKPOINT_ENGINES[key], getattr(env.unwrapped, "template", None))
