"""TTC-Math-v0 vectorized: `gym.make_vec("TTC-Math-v0", num_envs=8, vectorization_mode="vector_entry_point")`.

Same problems, rewards, spaces and `info` as `ttc_gym.envs.math_text.TTCMathEnv` (its docstring is the spec),
for `num_envs` traces over ONE engine and ONE prover (the model is loaded once). What it adds is
batching: each `step` runs the prover for every sub-env in one `LLMProver.estimate_many` call — one
engine call for all sub-envs' K forced answers, each (problem, prefix) with its own seed — and
a `ttc_gym.agents.llm.LLMAgent` writes every sub-env's next episode in one engine call with
`act_batch(*unbatch(obs, infos))`.

Seeding and autoreset follow Gymnasium's `SyncVectorEnv` exactly, so that
`gym.make_vec(..., vectorization_mode="sync")` — a loop over single envs — gives the same results:
- `reset(seed=s)` seeds sub-env i's own random generator with `s + i` (a list seeds each sub-env
  with its entry; None keeps each sub-env's generator, or draws a fresh one the first time), as
  `TTCMathEnv.reset(seed=s + i)` would (`gymnasium.utils.seeding.np_random`);
- sub-env i draws each problem with its own generator (`source.sample(rng_i)`): on `reset`, and
  on the `step` after its episode ended (next-step autoreset: that step ignores its action and
  returns the new problem's first observation with reward 0, not terminated, not truncated);
- the prover's samples depend only on `prover_seed` and the (problem, prefix), never on which
  sub-envs share a batch.
Observations and infos are batched with Gymnasium's own helpers (`concatenate`, `_add_info`):
`obs["problem"][i]`, `obs["episodes"][i]`, `infos["J"][i]`, ...
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from ttc_gym.envs.math_core import MathSettings, MathTrace
from ttc_gym.envs.math_text import check_episode_text, text_observation_space
from ttc_gym.prompts import PromptTemplate
from ttc_gym.spaces import AnyText
from ttc_gym.validation import check_int, check_render_mode


class TTCMathVectorEnv(VectorEnv):
    """`num_envs` TTC-Math-v0 traces stepped together; see the module docstring.

    Args: `num_envs`, `render_mode` (None or "ansi": `render()` returns each sub-env's trace) and
    every keyword argument of TTC-Math-v0 (source, engine, prover_engine, num_prover_samples, ...).
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any):
        self.num_envs = check_int("num_envs", num_envs, minimum=1)
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.settings = MathSettings.from_kwargs("TTC-Math-v0", kwargs)
        self.source, self.engine, self.prover = self.settings.build()
        self.single_observation_space = text_observation_space(self.settings.max_episode_chars)
        self.single_action_space = AnyText(self.settings.max_episode_chars, min_length=1)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.traces: list[MathTrace | None] = [None] * self.num_envs
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._observations = create_empty_array(self.single_observation_space, self.num_envs)

    # -- helpers ----------------------------------------------------------------------------------

    def _sub_seeds(self, seed: Any) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset(seed=...) got {len(seeds)} seeds for num_envs={self.num_envs}; give one per sub-env.")
        return seeds

    def _rng(self, i: int) -> np.random.Generator:
        if self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random()
        return self._rngs[i]

    def _start_traces(self, problems: dict[int, Any]) -> None:
        """New traces for the given sub-envs; their J_0 estimates come from one prover batch."""
        self.prover.estimate_many([(p, ()) for p in problems.values()])
        for i, problem in problems.items():
            self.traces[i] = MathTrace(self.settings, self.prover, self.prover.engine.count_tokens, problem)

    def _obs(self, i: int) -> dict:
        trace = self.traces[i]
        return {"problem": trace.problem.question, "episodes": tuple(trace.episodes)}

    def _batched_obs(self) -> Any:
        self._observations = concatenate(
            self.single_observation_space, [self._obs(i) for i in range(self.num_envs)], self._observations
        )
        return self._observations

    # -- the vector API ---------------------------------------------------------------------------

    @property
    def template(self) -> PromptTemplate:
        """The prompts this env builds (an agent that writes episodes for it must use the same)."""
        return self.settings.template

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        seeds = self._sub_seeds(seed)
        super().reset(seed=seed if isinstance(seed, (int, np.integer)) else None)
        if options and set(options) - {"problem"}:
            raise ValueError(f"reset options accept only 'problem', got {sorted(options)}.")
        forced = (options or {}).get("problem")
        problems = {}
        for i, s in enumerate(seeds):
            if s is not None:
                self._rngs[i], _ = seeding.np_random(s)
            problems[i] = forced if forced is not None else self.source.sample(self._rng(i))
        self._start_traces(problems)
        self._autoreset[:] = False
        infos: dict = {}
        for i in range(self.num_envs):
            infos = self._add_info(infos, self.traces[i].info(), i)
        return self._batched_obs(), infos

    def step(self, actions: Sequence[str]):
        if any(t is None for t in self.traces):
            raise RuntimeError("TTCMathVectorEnv.step called before reset(); call reset() first.")
        if isinstance(actions, str) or len(actions) != self.num_envs:
            raise ValueError(
                f"actions must be a sequence of {self.num_envs} episode texts (one per sub-env), got {actions!r:.120}."
            )
        texts = {
            i: check_episode_text(actions[i], self.settings.max_episode_chars)
            for i in range(self.num_envs) if not self._autoreset[i]
        }
        restart = {i: self.source.sample(self._rng(i)) for i in range(self.num_envs) if self._autoreset[i]}
        # One prover batch for every sub-env: new problems' J_0 and each trace's next prefix. The
        # estimates are memoized, so the traces below read them without another engine call.
        self.prover.estimate_many(
            [(p, ()) for p in restart.values()]
            + [(self.traces[i].problem, (*self.traces[i].episodes, text)) for i, text in texts.items()]
        )
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: dict = {}
        for i in range(self.num_envs):
            if i in restart:
                self.traces[i] = MathTrace(self.settings, self.prover, self.prover.engine.count_tokens, restart[i])
                info = self.traces[i].info()
            else:
                result = self.traces[i].add_episode(texts[i])
                rewards[i], terminated[i], truncated[i], info = result.reward, result.terminated, result.truncated, result.info
            infos = self._add_info(infos, info, i)
        self._autoreset = terminated | truncated
        return self._batched_obs(), rewards, terminated, truncated, infos

    def render(self):
        if self.render_mode == "ansi":
            return tuple(None if t is None else t.render() for t in self.traces)
        return None


def unbatch(observations: dict, infos: dict, num_envs: int | None = None) -> tuple[list[dict], list[dict]]:
    """Per-sub-env observations and infos from a vector env's batched ones (for `act_batch`).

    Info keys a sub-env did not report (mask `_key` False) are left out of its info.
    """
    n = len(observations["problem"]) if num_envs is None else num_envs
    obs = [{"problem": observations["problem"][i], "episodes": tuple(observations["episodes"][i])} for i in range(n)]
    per_env: list[dict] = [{} for _ in range(n)]
    for key, values in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get("_" + key)
        for i in range(n):
            if mask is None or mask[i]:
                value = values[i]
                per_env[i][key] = value.item() if isinstance(value, np.generic) else value
    return obs, per_env
