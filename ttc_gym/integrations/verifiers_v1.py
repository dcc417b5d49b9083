"""TTC-Math-v0 as a verifiers 0.4 environment (verifiers' v1 API: `import verifiers.v1 as vf`).

    pip install 'ttc-gym[verifiers-v1]'          # verifiers>=0.4,<0.5 and uv; not beside [openenv]/[verifiers]
    vf-eval ttc-gym-verifiers --env.agent.runtime.type subprocess \\
        --env.taskset.source procedural:1 --env.taskset.num-examples 16 -m MODEL --client.base-url URL

verifiers 0.4 finds a taskset by a top-level module name, here `ttc_gym_verifiers` (taskset id
"ttc-gym-verifiers"), which re-exports this module's `__all__`: one `vf.Taskset`
(`TTCMathTaskset`), one `vf.Env` (`TTCMathEnv`, the env verifiers picks for this taskset) and one
`vf.Harness` (`TTCChatHarness`, verifiers' tool-less `null` chat harness, so a role left unpinned
chats instead of getting the `bash` harness). Its agent runtime defaults to verifiers' Prime sandbox;
`--env.agent.runtime.type subprocess` runs the chat program locally (verifiers bootstraps it with `uv`).

**One turn = one episode.** A task's prompt is the problem (`PromptTemplate.user_message`); each
assistant reply is the next episode, passed to a TTC-Math-v0 env through its Gymnasium API
(`env.step(text)`), so the env's prover measures J after each episode and its grader grades the
committed answer; `TTCMathEnv.run` answers `CONTINUE_MESSAGE` until the ttc-gym env ends the rollout
(an answer in `\\boxed{}`, or the budget H / C0: then the reasoner's forced answer is graded, as in
TTC-Math-v0), and then closes the exchange. An empty or overlong reply fails the episode with an
error saying so (verifiers records it on the episode); a harness that stops first (its own turn
limit) leaves the rollout unanswered: outcome 0, metric `ended_by_harness` = 1.

**Rewards** (`TTCMathEnv.finalize`, on the agent's trace; docs/formulation.md §3): `outcome` (the
env's 0/1; weight 1), `progress` (J_final − J_0, the sum of the episodes' progress; weight `alpha`),
and `cost` (episodes × `episode_cost`; weight −1) when `episode_cost > 0`, so `trace.reward` is the
env's return. **Per-turn J** (verifiers issue 170): verifiers 0.4 keeps rewards and metrics as named
scalars per trace, with no per-turn reward slot, so each turn's figures go in as metrics —
`J_0` .. `J_k` (the prover's J after 0..k episodes), `progress_1` .. `progress_k` and
`step_reward_1` .. `step_reward_k` (the env's reward of episode j: outcome_j + α·progress_j − cost_j)
— plus `j_initial`, `j_final`, `episodes_used`, `tokens_used`, `grading_incomplete`; the lists are
also in `trace.info["ttc"]`. Which of them reach a loss is the trainer's choice: verifiers' trainers
(prime-rl) use `trace.reward`.

**Configuration** (all JSON, as verifiers configs are): the taskset's `source` (a ttc-gym problem
source spec, e.g. "procedural:1", "reasoning-gym:basic_arithmetic", a JSONL file), `num_examples`,
`seed`; the env's `ttc_env`, TTC-Math-v0's arguments (`engine` and `prover_engine` as engine specs —
`ttc_gym.engines.make_engine`; default the default model —, `num_prover_samples`, `alpha`,
`max_episodes`, `max_tokens`, `episode_cost`, ...). The engines are built once per `TTCMathEnv` and
shared by its rollouts, which take turns on them (`ttc_gym.integrations.engine_lock`). The served
model is the policy; "prover = policy" (MRT's online setting) holds only when the env's engine has
the served model's weights.

Tested with verifiers 0.4.0 (`tests/apps/test_verifiers_v1_adapter.py`: verifiers' own `run_eval`
against a loopback stub chat-completions server). verifiers 0.4 pins `mcp==2.0.0`, which openenv's
`fastmcp<4` excludes: this extra and `[openenv]` (and the 0.3.x `[verifiers]`) cannot share one
environment (docs/integrations.md).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import Field

from ttc_gym.integrations import engine_lock
from ttc_gym.integrations.exclusive_extras import check_mcp
from ttc_gym.optional import require
from ttc_gym.rewards import check_alpha
from ttc_gym.validation import check_float


def _verifiers_version() -> tuple[str, tuple[int, ...]]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("verifiers")
    except PackageNotFoundError:
        text = getattr(require("verifiers", "verifiers-v1", "the verifiers 0.4 environment"), "__version__", "0")
    return text, tuple(int(part) for part in re.findall(r"\d+", text)[:2])


_VERSION, _PARTS = _verifiers_version()
if _PARTS < (0, 4):  # 0.3.x ships a preview `verifiers.v1` whose eval runs envs in other processes
    raise ImportError(
        f"ttc_gym.integrations.verifiers_v1 needs verifiers 0.4 (its v1 API), but verifiers {_VERSION} is "
        f"installed; install it with: pip install 'ttc-gym[verifiers-v1]' (verifiers>=0.4,<0.5), or use "
        f"ttc_gym.integrations.verifiers with verifiers 0.3.x"
    )
check_mcp("verifiers-v1")  # verifiers 0.4 requires mcp==2.0.0; openenv's fastmcp 3 takes mcp<2
vf = require("verifiers.v1", "verifiers-v1", "the verifiers 0.4 environment of TTC-Math-v0")
from verifiers.v1.harnesses.null import NullHarness  # noqa: E402

ENV_ID = "TTC-Math-v0"
CONTINUE_MESSAGE = "Continue your reasoning with the next step, or commit your final answer in \\boxed{}."
__all__ = ["TTCMathTaskset", "TTCMathEnv", "TTCChatHarness"]


class TTCChatHarness(NullHarness):
    """verifiers' tool-less chat harness (`null`), the default harness of this taskset."""


class TTCMathData(vf.TaskData):
    """A task: the prompt (the problem as the user message) plus the problem for the env (`problem`:
    id, question, gold answer, difficulty; scoring-side, never in the prompt) and the env's seed."""

    problem: dict = Field(default_factory=dict)
    seed: int = 0


class TTCMathTask(vf.Task[TTCMathData]):
    @property
    def key(self) -> str:
        return f"{self.data.problem.get('id')}:{self.data.seed}"


class TTCMathTasksetConfig(vf.TasksetConfig):
    source: str = "procedural"
    """A ttc-gym problem source spec (`ttc_gym.problems.make_source`)."""
    num_examples: int = Field(64, ge=1)
    """Tasks: a finite source's first problems, or draws from a generator."""
    seed: int = Field(0, ge=0)
    """Seeds a generator's draws; task i resets its env with seed + i."""


class TTCMathTaskset(vf.Taskset[TTCMathTask, TTCMathTasksetConfig]):
    """`num_examples` problems of a ttc-gym source, one task each."""

    def load(self):
        from ttc_gym.problems import make_source
        from ttc_gym.prompts import PromptTemplate

        cfg = self.config
        src = make_source(cfg.source)
        if hasattr(src, "__len__") and hasattr(src, "__getitem__"):
            problems = [src[i] for i in range(min(cfg.num_examples, len(src)))]
        else:
            rng = np.random.default_rng(cfg.seed)
            problems = [src.sample(rng) for _ in range(cfg.num_examples)]
        template = PromptTemplate()
        for i, p in enumerate(problems):
            yield TTCMathTask(TTCMathData(
                id=p.id, prompt=template.user_message(p.question), seed=cfg.seed + i,
                problem={"id": p.id, "question": p.question, "answer": p.answer, "difficulty": p.difficulty,
                         "source": p.source, "meta": [list(kv) for kv in p.meta]},
            ), cfg.task)


class TTCMathEnvConfig(vf.SingleAgentEnvConfig):
    ttc_env: dict[str, Any] = Field(default_factory=dict)
    """TTC-Math-v0's arguments (engines as specs); not `source` (the task is the problem)."""


def _problem(data: dict) -> Any:
    from ttc_gym.problems import Problem

    return Problem(id=data["id"], question=data["question"], answer=data["answer"], source=data.get("source") or "task",
                   difficulty=data.get("difficulty"), meta=[tuple(kv) for kv in data.get("meta") or ()])


def _locked(env: gym.Env, method: str, *args: Any, **kwargs: Any) -> Any:
    with engine_lock(env):
        return getattr(env, method)(*args, **kwargs)


class TTCMathEnv(vf.Env[TTCMathEnvConfig]):
    """One TTC-Math-v0 rollout per episode, one turn per reasoning episode (see the module docstring)."""

    def __init__(self, config: TTCMathEnvConfig) -> None:
        super().__init__(config)
        from ttc_gym.engines import make_engine
        from ttc_gym.problems import Problem

        kwargs = dict(config.ttc_env)
        for key in ("source", "render_mode"):
            if key in kwargs:
                raise ValueError(f"ttc_env may not set {key!r}: each rollout's problem is its task's.")
        kwargs["engine"] = make_engine(kwargs.get("engine"))
        if kwargs.get("prover_engine") is not None:
            kwargs["prover_engine"] = make_engine(kwargs["prover_engine"])
        probe = Problem(id="probe", question="1 + 1", answer="2", source="probe")
        gym.make(ENV_ID, **kwargs, source=probe).close()  # bad env arguments fail here, not in a rollout
        self.alpha = check_alpha(kwargs.get("alpha", 1.0))
        self.episode_cost = check_float("episode_cost", kwargs.get("episode_cost", 0.0), minimum=0.0)
        self.env_kwargs = kwargs

    async def run(self, task: TTCMathTask, agents: Any) -> None:
        env = gym.make(ENV_ID, **self.env_kwargs, source=_problem(task.data.problem))
        try:
            _obs, info = await asyncio.to_thread(_locked, env, "reset", seed=int(task.data.seed))
            infos, rewards, episodes = [info], [], []
            async with agents.agent.interaction(task) as chat:
                segment = await chat.turn()  # the task's prompt opens the exchange
                while True:
                    if segment.terminated:
                        break
                    text = segment.last_reply
                    try:
                        _obs, reward, terminated, truncated, info = await asyncio.to_thread(_locked, env, "step", text)
                    except (TypeError, ValueError) as err:  # an empty or overlong episode
                        raise ValueError(f"the reply is not a valid {ENV_ID} episode: {err}") from err
                    infos.append(info)
                    rewards.append(float(reward))
                    episodes.append(text)
                    if terminated or truncated:
                        break
                    segment = await chat.turn(CONTINUE_MESSAGE)
                chat.trace.info["ttc"] = {**self._summary(infos, rewards, ended=not segment.terminated),
                                          "episodes": episodes}
        finally:
            env.close()

    @staticmethod
    def _summary(infos: list[dict], rewards: list[float], ended: bool) -> dict:
        last = infos[-1]
        return {
            "j_curve": [float(i["J"]) for i in infos],
            "progress": [float(i["progress"]) for i in infos[1:]],
            "step_rewards": rewards,
            "outcome": float(last["outcome"]) if ended and len(infos) > 1 else 0.0,
            "cost": float(sum(i["cost"] for i in infos[1:])),
            "episodes_used": int(last["episodes_used"]), "tokens_used": int(last["tokens_used"]),
            "committed_answer": last.get("committed_answer"),
            "grading_incomplete": int(sum(i.get("grading_incomplete", 0) for i in infos)),
            "ended_by_harness": not ended,
        }

    async def finalize(self, task: TTCMathTask, episode: Any) -> None:
        for trace in episode.traces:
            ttc = trace.info.get("ttc")
            if ttc is None:
                raise ValueError("the agent's trace carries no ttc-gym rollout (trace.info['ttc'])")
            trace.record_reward("outcome", ttc["outcome"], 1.0)
            trace.record_reward("progress", ttc["j_curve"][-1] - ttc["j_curve"][0], self.alpha)
            if self.episode_cost > 0:
                trace.record_reward("cost", ttc["cost"], -1.0)
            trace.record_metrics({f"J_{j}": value for j, value in enumerate(ttc["j_curve"])})
            trace.record_metrics({f"progress_{j}": v for j, v in enumerate(ttc["progress"], start=1)})
            trace.record_metrics({f"step_reward_{j}": v for j, v in enumerate(ttc["step_rewards"], start=1)})
            trace.record_metrics({
                "j_initial": ttc["j_curve"][0], "j_final": ttc["j_curve"][-1],
                "episodes_used": ttc["episodes_used"], "tokens_used": ttc["tokens_used"],
                "grading_incomplete": ttc["grading_incomplete"], "ended_by_harness": float(ttc["ended_by_harness"]),
            })
