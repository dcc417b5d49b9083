"""Rollouts of the LLM trainer: what one rollout records (`Rollout`), which rollouts an iteration
runs (`plan_iteration`), the vectorized TTC-Math-v0 they run on (`make_envs`), and the collection
itself (`collect_batch`: all of an iteration's rollouts together; `collect`: one, its reference)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttc_gym.envs.math_vector import unbatch
from ttc_gym.training import algorithms as alg
from ttc_gym.training.llm_config import LLMTrainConfig


def episode_ids(engine: Any, episode: Any) -> list[int]:
    """The token ids of a `ttc_gym.agents.llm.Episode`: as sampled, or its text's tokens when it was not
    sampled as such (a committed final answer)."""
    if episode.token_ids:
        return list(episode.token_ids)
    return list(engine.tokenizer(episode.text, add_special_tokens=False)["input_ids"])


@dataclass
class Rollout:
    """One rollout of one problem: the prompt and text of each episode (and their token ids) and
    what the env said."""

    group: int
    prompts: list[str] = field(default_factory=list)
    episodes: list[str] = field(default_factory=list)
    prompt_ids: list[list[int]] = field(default_factory=list)  # each prompt as the engine encoded it
    episode_ids: list[list[int]] = field(default_factory=list)  # each episode's sampled token ids
    progress: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    reward: float = 0.0
    outcome: float = 0.0
    j0: float = 0.0
    j_final: float = 0.0
    branch: str | None = None  # None: from the problem's start; "continue" / "terminate": a branch of a prefix (mrt)
    prefix_episodes: int = 0  # the episodes of the prefix it starts after (context, not trained)

    def record(self, episode: Any, ids: list[int], reward: float, info: dict) -> None:
        """One episode (a `ttc_gym.agents.llm.Episode`, `ids` its token ids), the step's reward and
        the env's info of it."""
        self.prompts.append(episode.prompt)
        self.prompt_ids.append(list(episode.prompt_ids))
        self.episodes.append(episode.text)
        self.episode_ids.append(ids)
        self.progress.append(float(info["progress"]))
        self.cost.append(float(info.get("cost", 0.0)))
        self.reward += float(reward)
        self.outcome, self.j_final = float(info["outcome"]), float(info["J"])

    def trajectory(self) -> alg.Trajectory:
        return alg.Trajectory(group=self.group, outcome=self.outcome, progress=np.array(self.progress),
                              cost=np.array(self.cost), j0=self.j0, branch=self.branch)


@dataclass(frozen=True)
class RolloutPlan:
    """What one rollout of an iteration runs: its group, its problem, and its seed (the env's
    reset seed and the agent's seed of its episodes, so that the G rollouts of a group differ); for
    a branch of `mrt` (`llm_branches.py`), the prefix it starts after and whether it continues or
    terminates (answers at once)."""

    group: int
    problem: Any
    seed: int
    prefix: tuple[str, ...] = ()
    branch: str | None = None


def plan_iteration(config: LLMTrainConfig, source: Any, iteration: int) -> list[RolloutPlan]:
    """The rollouts of `iteration`: `problems_per_iter` problems drawn from `source` (a
    `ttc_gym.problems.ProblemSource`), `group_size` rollouts of each, each with its own seed; all
    drawn from one generator seeded by (seed, iteration)."""
    rng = np.random.default_rng([config.seed, iteration])
    problems = [source.sample(rng) for _ in range(config.problems_per_iter)]
    seeds = rng.integers(0, 2**31, size=len(problems) * config.group_size)
    return [RolloutPlan(group=k // config.group_size, problem=problems[k // config.group_size], seed=int(s))
            for k, s in enumerate(seeds)]


def math_env_kwargs(config: LLMTrainConfig) -> dict:
    """The TTC-Math-v0 arguments `config` sets (the engines are given apart)."""
    return dict(source=config.source, alpha=config.alpha, max_episodes=config.max_episodes,
                max_tokens=config.max_tokens, num_prover_samples=config.num_prover_samples, **config.env_kwargs)


def make_envs(config: LLMTrainConfig, engine: Any, prover_engine: Any = None, source: Any = None,
              num_envs: int | None = None) -> Any:
    """The vectorized TTC-Math-v0 the trainer rolls out on: one sub-env per rollout of an iteration
    (`batch_size`), autoreset disabled (a finished rollout is not stepped again), the policy's
    `engine` as the env's (it counts the episodes' tokens and gives the forced final answer), the
    prover on `prover_engine` (None: the policy's engine); `source` (a ProblemSource) replaces
    `config.source`; `num_envs` replaces `batch_size` (a Ray worker's shard)."""
    import gymnasium as gym

    import ttc_gym  # noqa: F401  (registers the envs)

    kwargs = math_env_kwargs(config)
    if source is not None:
        kwargs["source"] = source
    return gym.make_vec("TTC-Math-v0", num_envs=config.batch_size if num_envs is None else num_envs, vectorization_mode="vector_entry_point",
                        autoreset_mode="disabled", engine=engine, prover_engine=prover_engine, **kwargs)


def collect(env: Any, agent: Any, plan: RolloutPlan) -> Rollout:
    """Roll `agent` out on one planned rollout to its end on a single TTC-Math-v0 env, one step per
    episode (the reference for `collect_batch`)."""
    obs, info = env.reset(seed=plan.seed, options={"problem": plan.problem})
    rollout = Rollout(group=plan.group, j0=float(info["J"]), j_final=float(info["J"]))
    done = False
    while not done:
        episode = agent.write_batch([obs], [info], seeds=[plan.seed])[0]
        obs, reward, terminated, truncated, info = env.step(episode.text)
        rollout.record(episode, episode_ids(agent.engine, episode), reward, info)
        done = terminated or truncated
    return rollout


def collect_batch(envs: Any, agent: Any, plans: Sequence[RolloutPlan]) -> list[Rollout]:
    """All planned rollouts together on the vectorized TTC-Math-v0 `envs` (one sub-env each,
    autoreset disabled): reset every sub-env to its problem, then, until every rollout is done, one
    `agent.write_batch` call writes each unfinished rollout's next episode (each with its own seed)
    and one `envs.step` scores them all (one prover batch); finished sub-envs get the action None.
    Rollout k is exactly what `collect` gives for `plans[k]` alone (tested)."""
    if envs.num_envs != len(plans):
        raise ValueError(f"collect_batch needs one sub-env per rollout: {len(plans)} rollouts, "
                         f"num_envs={envs.num_envs}.")
    options: dict = {"problems": [p.problem for p in plans]}
    if any(p.prefix for p in plans):  # branches of mrt: each sub-env starts after its prefix
        options["prefixes"] = [list(p.prefix) or None for p in plans]
    obs, infos = envs.reset(seed=[p.seed for p in plans], options=options)
    obs, infos = unbatch(obs, infos)
    rollouts = [Rollout(group=p.group, j0=float(info["J"]), j_final=float(info["J"]), branch=p.branch,
                        prefix_episodes=len(p.prefix)) for p, info in zip(plans, infos)]
    done = np.zeros(len(plans), dtype=bool)
    while not done.all():
        active = np.flatnonzero(~done)
        written = _write(agent, active, obs, infos, plans)
        actions: list[str | None] = [None] * len(plans)
        for k, episode in zip(active, written):
            actions[k] = episode.text
        step_obs, rewards, terminated, truncated, step_infos = envs.step(actions)
        obs, step_infos = unbatch(step_obs, step_infos)
        for k, episode in zip(active, written):
            infos[k] = step_infos[k]
            rollouts[k].record(episode, episode_ids(agent.engine, episode), rewards[k], infos[k])
        done |= terminated | truncated
    return rollouts


def _write(agent: Any, active: np.ndarray, obs: list, infos: list, plans: Sequence[RolloutPlan]) -> list:
    """The next episode of each active rollout: a terminating branch's forced answer
    (`LLMAgent.answer_batch`), else the policy's next episode (`LLMAgent.write_batch`)."""
    stops = [k for k in active if plans[k].branch == "terminate"]
    goes = [k for k in active if plans[k].branch != "terminate"]
    written = {}
    if goes:
        written.update(zip(goes, agent.write_batch([obs[k] for k in goes], [infos[k] for k in goes],
                                                   seeds=[plans[k].seed for k in goes])))
    if stops:
        written.update(zip(stops, agent.answer_batch([obs[k] for k in stops], seeds=[plans[k].seed for k in stops])))
    return [written[k] for k in active]
