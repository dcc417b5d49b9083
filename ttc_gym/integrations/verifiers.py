"""TTC-Math-v0 as a verifiers multi-turn environment (PyPI `verifiers`, GitHub PrimeIntellect-ai/verifiers;
its classic `vf.MultiTurnEnv` API, verifiers 0.3.x; verifiers 0.4: `ttc_gym.integrations.verifiers_v1`).

`load_environment(**kwargs)` returns a `TTCMathVerifiersEnv`; verifiers finds it by module name:
`vf.load_environment("ttc_gym.integrations.verifiers", num_examples=32, max_episodes=4)`, or
`vf-eval ttc_gym.integrations.verifiers -a '{"max_episodes": 4}'`.

One rollout is one TTC-Math-v0 rollout (docs/formulation.md §1), and **each turn is one episode**:
the user message is the problem (`PromptTemplate.user_message`), each assistant reply is the next
episode, and the env answers with `CONTINUE_MESSAGE` until the ttc-gym env ends the rollout (an
answer committed in `\\boxed{}`, or the budget H / C0 used up; then the reasoner's forced answer is
graded, as in TTC-Math-v0). Every reply goes through the env's Gymnasium API (`env.step(text)`), so
the prover measures J after each episode and the grader grades the committed answer.

Rewards (`TTCMathRubric`, docs/formulation.md §3): two reward functions with weights — `outcome`
(the committed answer graded by `ttc_gym.grading.compare_answers`, 0/1; weight 1) and `progress`
(`J_final - J_0`, the sum of the episodes' prover progress; weight `alpha`) — plus `cost`
(episodes × `episode_cost`, weight −1) when `episode_cost > 0`; so a rollout's reward is the sum of
the env's per-episode rewards. Metrics: `j_initial`, `j_final`, `episodes_used`, `tokens_used`.
Per-episode credit: each turn's `state["trajectory"][i]["reward"]` is that episode's ttc-gym
reward `outcome_j + alpha * progress_j - cost_j`, and `state["ttc_step_rewards"]`,
`state["ttc_j_curve"]`, `state["ttc_infos"]` keep the whole trace (request them with
`state_columns`). Needs `pip install 'ttc-gym[verifiers]'`.
"""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from ttc_gym.integrations import engine_lock
from ttc_gym.optional import require
from ttc_gym.rewards import check_alpha
from ttc_gym.validation import check_float, check_int

vf = require("verifiers", "verifiers", "the verifiers environment of TTC-Math-v0")
try:
    vf.MultiTurnEnv
except (ImportError, AttributeError) as err:  # verifiers 0.4 dropped the classic (v0) environment API
    raise ImportError(
        f"ttc_gym.integrations.verifiers is the verifiers 0.3.x adapter (classic MultiTurnEnv API), but verifiers "
        f"{getattr(vf, '__version__', '?')} is installed: for verifiers 0.4 use ttc_gym.integrations.verifiers_v1 "
        f"(taskset 'ttc-gym-verifiers', pip install 'ttc-gym[verifiers-v1]'), or install 0.3.x with: "
        f"pip install 'ttc-gym[verifiers]'"
    ) from err

ENV_ID = "TTC-Math-v0"
# What the environment says after each episode that did not end the rollout.
CONTINUE_MESSAGE = (
    "Continue your reasoning with the next step, or commit your final answer in \\boxed{}."
)


def reply_text(messages: Any) -> str:
    """The text of the last assistant message of `messages` (parts of a list content joined)."""
    for message in reversed(list(messages or [])):
        role = message.get("role") if isinstance(message, dict) else getattr(message, "role", None)
        if role != "assistant":
            continue
        content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        parts = []
        for part in content:
            text = part.get("text") if isinstance(part, dict) else getattr(part, "text", None)
            if isinstance(text, str):
                parts.append(text)
        return "".join(parts)
    return ""


# ---------------------------------------------------------------------------------------- rubric
def _infos(state: Any) -> list[dict]:
    return state.get("ttc_infos") or []


def outcome(state: Any, **_: Any) -> float:
    """The rollout's outcome: 1.0 when the committed answer (or the forced one, at the budget) is
    correct by ttc-gym's grader (`ttc_gym.grading.compare_answers`, as the env graded it), else 0."""
    infos = _infos(state)
    return float(infos[-1]["outcome"]) if len(infos) > 1 else 0.0


def progress(state: Any, **_: Any) -> float:
    """The rollout's progress `J_final - J_0`: the sum of each episode's `J_j - J_{j-1}` measured by
    the env's prover (docs/formulation.md §2–3)."""
    return float(sum(info["progress"] for info in _infos(state)[1:]))


def cost(state: Any, **_: Any) -> float:
    """The episodes' summed cost (`episode_cost` per episode)."""
    return float(sum(info["cost"] for info in _infos(state)[1:]))


def j_initial(state: Any, **_: Any) -> float:
    """J_0: the prover's J before any episode."""
    infos = _infos(state)
    return float(infos[0]["J"]) if infos else 0.0


def j_final(state: Any, **_: Any) -> float:
    """J after the last episode."""
    infos = _infos(state)
    return float(infos[-1]["J"]) if infos else 0.0


def episodes_used(state: Any, **_: Any) -> float:
    infos = _infos(state)
    return float(infos[-1]["episodes_used"]) if infos else 0.0


def tokens_used(state: Any, **_: Any) -> float:
    infos = _infos(state)
    return float(infos[-1]["tokens_used"]) if infos else 0.0


class TTCMathRubric(vf.Rubric):
    """Outcome (weight 1) and progress (weight `alpha`) as separate reward functions, cost (weight −1)
    when `episode_cost > 0`; J_0, J_final, episodes and tokens as metrics (docs/formulation.md §3)."""

    def __init__(self, alpha: float = 1.0, episode_cost: float = 0.0, **kwargs: Any):
        alpha = check_alpha(alpha)
        episode_cost = check_float("episode_cost", episode_cost, minimum=0.0)
        super().__init__(funcs=[outcome, progress], weights=[1.0, alpha], **kwargs)
        if episode_cost > 0:
            self.add_reward_func(cost, weight=-1.0)
        for metric in (j_initial, j_final, episodes_used, tokens_used):
            self.add_metric(metric)


# ------------------------------------------------------------------------------------------- env
class TTCMathVerifiersEnv(vf.MultiTurnEnv):
    """TTC-Math-v0 as a `vf.MultiTurnEnv` (see the module docstring): `setup_state` makes and resets
    one ttc-gym env for the row's problem, `add_trajectory_step` steps it with each reply,
    `env_response` says `CONTINUE_MESSAGE`, and the stop condition `ttc_rollout_ended` is the env's
    terminated or truncated. `env_kwargs` go to `gym.make("TTC-Math-v0", ...)` for every rollout
    (engines as objects, so that a model is loaded once); env calls run in worker threads, and
    rollouts that share an engine take turns on it (`ttc_gym.integrations.engine_lock`)."""

    def __init__(self, env_kwargs: dict | None = None, **kwargs: Any):
        self.env_kwargs = dict(env_kwargs or {})
        for key in ("source", "render_mode"):
            if key in self.env_kwargs:
                raise ValueError(f"env_kwargs may not set {key!r}: each rollout's problem comes from the dataset.")
        alpha = check_alpha(self.env_kwargs.get("alpha", 1.0))
        episode_cost = check_float("episode_cost", self.env_kwargs.get("episode_cost", 0.0), minimum=0.0)
        max_episodes = check_int("max_episodes", self.env_kwargs.get("max_episodes", 8), minimum=1)
        kwargs.setdefault("rubric", TTCMathRubric(alpha=alpha, episode_cost=episode_cost))
        kwargs.setdefault("max_turns", max_episodes + 1)  # a safeguard only: the env ends the rollout first
        super().__init__(**kwargs)
        self.alpha, self.episode_cost = alpha, episode_cost

    def make_env(self, problem: dict) -> gym.Env:
        """A TTC-Math-v0 env whose source is the one `problem` (a dict with question and answer)."""
        from ttc_gym.problems import as_problem

        return gym.make(ENV_ID, **self.env_kwargs, source=as_problem(problem, "the row's problem"))

    @staticmethod
    def _locked(env: gym.Env, method: str, *args: Any, **kwargs: Any) -> Any:
        with engine_lock(env):
            return getattr(env, method)(*args, **kwargs)

    async def setup_state(self, state: Any) -> Any:
        info = state.get("info") or {}
        if "problem" not in info:
            raise ValueError("the dataset row's info must hold 'problem' (a dict with question and answer), "
                             f"got info keys {sorted(info)}.")
        env = self.make_env(info["problem"])
        state["ttc_env"] = env
        _obs, reset_info = await asyncio.to_thread(self._locked, env, "reset", seed=int(info.get("seed", 0)))
        state["ttc_infos"] = [reset_info]
        state["ttc_episodes"] = []
        state["ttc_step_rewards"] = []
        state["ttc_j_curve"] = [float(reset_info["J"])]
        state["ttc_done"] = False
        return state

    async def add_trajectory_step(self, state: Any, trajectory_step: Any) -> None:
        """Step the ttc-gym env with the reply (one episode) and keep its reward on the turn."""
        text = reply_text(trajectory_step["completion"])
        env = state["ttc_env"]
        try:
            _obs, reward, terminated, truncated, info = await asyncio.to_thread(self._locked, env, "step", text)
        except (TypeError, ValueError) as err:  # an empty or overlong episode: the rollout stops here
            state["trajectory"].append(trajectory_step)
            raise vf.InvalidModelResponseError(f"the reply is not a valid {ENV_ID} episode: {err}") from err
        trajectory_step["reward"] = float(reward)
        trajectory_step["extras"] = {**(trajectory_step.get("extras") or {}), "ttc_info": info}
        state["trajectory"].append(trajectory_step)
        state["ttc_infos"].append(info)
        state["ttc_episodes"].append(text)
        state["ttc_step_rewards"].append(float(reward))
        state["ttc_j_curve"].append(float(info["J"]))
        state["ttc_done"] = bool(terminated or truncated)

    @vf.stop
    async def ttc_rollout_ended(self, state: Any) -> bool:
        """The ttc-gym env ended the rollout (terminated or truncated)."""
        return bool(state.get("ttc_done", False))

    async def env_response(self, messages: Any, state: Any, **kwargs: Any) -> list[Any]:
        return [vf.UserMessage(content=CONTINUE_MESSAGE)]

    @vf.cleanup
    async def close_ttc_env(self, state: Any) -> None:
        """Close the rollout's ttc-gym env (JSON-able keys of the trace stay in the state)."""
        env = state.pop("ttc_env", None)
        if env is not None:
            env.close()


# ---------------------------------------------------------------------------------------- loading
def problem_rows(source: Any = "procedural", num_examples: int = 64, seed: int = 0) -> list[dict]:
    """Dataset rows of `num_examples` problems from a ttc-gym problem source (`make_source` specs:
    "procedural", "procedural:2", a file, "hf:<name>", a list of `Problem`s or of dicts with question
    and answer): a finite source gives its
    first problems in order, a generator draws them with `np.random.default_rng(seed)`. Each row:
    question (the user message), answer (gold), info = {problem: {id, question, answer, difficulty},
    seed}."""
    from ttc_gym.problems import as_problem, make_source
    from ttc_gym.prompts import PromptTemplate

    num_examples = check_int("num_examples", num_examples, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if isinstance(source, (list, tuple)):
        source = [as_problem(p, f"source[{i}]") for i, p in enumerate(source)]
    src = make_source(source)
    if hasattr(src, "__len__") and hasattr(src, "__getitem__"):
        problems = [src[i] for i in range(min(num_examples, len(src)))]
    else:
        rng = np.random.default_rng(seed)
        problems = [src.sample(rng) for _ in range(num_examples)]
    template = PromptTemplate()
    return [{
        "question": template.user_message(p.question),
        "answer": p.answer,
        "info": {"problem": {"id": p.id, "question": p.question, "answer": p.answer, "difficulty": p.difficulty},
                 "seed": seed + i},
    } for i, p in enumerate(problems)]


def load_environment(source: Any = "procedural", num_examples: int = 64, seed: int = 0,
                     system_prompt: str | None = None, rows: Sequence[dict] | None = None,
                     **env_kwargs: Any) -> TTCMathVerifiersEnv:
    """The verifiers environment of TTC-Math-v0 (the entry point verifiers looks for).

    `source`, `num_examples`, `seed`: the problems (`problem_rows`), or `rows` (made by
    `problem_rows`) as given. `env_kwargs`: TTC-Math-v0's arguments (`engine`, `prover_engine` — the
    prover, default the env's engine —, `num_prover_samples`, `alpha`, `max_episodes`, `max_tokens`,
    `episode_cost`, ...; `ttc_gym.envs.math_text.TTCMathEnv`). Engines given as specs are built once
    here and shared by every rollout; the env's engine counts tokens and (by default) proves.
    """
    from datasets import Dataset

    from ttc_gym.engines import make_engine

    from ttc_gym.problems import Problem

    env_kwargs = dict(env_kwargs)
    env_kwargs["engine"] = make_engine(env_kwargs.get("engine"))
    if env_kwargs.get("prover_engine") is not None:
        env_kwargs["prover_engine"] = make_engine(env_kwargs["prover_engine"])
    probe = Problem(id="probe", question="1 + 1", answer="2", source="probe")
    gym.make(ENV_ID, **env_kwargs, source=probe).close()  # bad env arguments fail here, not in a rollout
    data = list(rows) if rows is not None else problem_rows(source, num_examples, seed)
    return TTCMathVerifiersEnv(env_kwargs=env_kwargs, dataset=Dataset.from_list(data), system_prompt=system_prompt)
