"""TTC-MathMeta-v0: the agent decides how to spend compute; the env's own model writes the episodes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ttc_gym.envs.math_core import MathSettings, MathTrace
from ttc_gym.envs.math_text import check_reset_options
from ttc_gym.actions import MetaAction, check_meta_action
from ttc_gym.engines.base import SamplingConfig
from ttc_gym.prompts import META_ACTION_CUES, PromptTemplate
from ttc_gym.validation import check_float, check_int, check_render_mode

META_PARAMETERS = ("episode_tokens", "temperature")
TOKEN_BUCKETS = 8
OBS_FIELDS = ("episodes_used", "j_level", "last_change", "agreement", "token_bucket", "last_action")


class TTCMathMetaEnv(gym.Env):
    """
    ## Description

    The reasoning of TTC-Math-v0 with a discrete action: a *meta-decision* about how to spend
    test-time compute. The env's own model writes each episode, steered by the decision:
    continue the current line of thought, explore ("Alternatively, ..."), verify ("Wait, let me
    double-check. ..."), or answer now. The same prover measures J after each episode, so tabular
    agents and stable-baselines3 can learn *when* to explore, verify and stop on real LLM reasoning.

    ## Action Space

    `Discrete(4)` (`ttc_gym.actions.MetaAction`): 0 continue, 1 switch / explore, 2 verify,
    3 answer now (commits the prover's first forced answer on the current trace; no episode spent).
    The same action meanings as TTC-Sim-v0, so the same heuristics run on both.

    ## Observation Space

    `MultiDiscrete([H+1, K+1, 3, K+1, 9, 5])`: episodes used; J in units of 1/K (round(J*K));
    the sign of the last progress (0 down, 1 none, 2 up); agreement among the prover's K answers
    (how many equal the most common one); tokens used in eighths of the token budget (of
    `max_tokens`, or of `H * episode_tokens` when there is none); the last action (4 = none yet).

    ## Rewards

    As TTC-Math-v0: `outcome + alpha * progress - episode_cost`, progress from the prover's J.

    ## Starting State

    A problem drawn from `source` with `np_random`; J_0 measured on the empty trace.

    ## Episode End

    Terminated on "answer now", or when a written episode commits a `\\boxed{}` answer. Truncated at
    `max_episodes` (H) or `max_tokens` (C0), with a forced answer (also terminated) when
    `answer_on_truncation=True`.

    ## Arguments

    Those of TTC-Math-v0, plus `episode_tokens` (most tokens the model writes per episode, 96) and
    `temperature` (sampling temperature of the episodes, 0.7). The episodes' sampling seeds come
    from the env's `np_random`, so the same seed and actions give the same rollout.

    Accessors (on `env.unwrapped`): `engine` (the model that writes the episodes), `template`,
    `prover` and `trace`, as in TTC-Math-v0; `reset(options={"problem": p})` as in TTC-Math-v0.

    `info`: that of TTC-Math-v0, plus `episode_text` (what the model wrote this step).

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, render_mode: str | None = None, episode_tokens: int = 96, temperature: float = 0.7, **kwargs: Any):
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self._settings = MathSettings.from_kwargs("TTC-MathMeta-v0", kwargs)
        self.episode_tokens = check_int("episode_tokens", episode_tokens, minimum=1)
        self.temperature = check_float("temperature", temperature, minimum=0.0)
        self._source, self.engine, self.prover = self._settings.build()
        H, K = self._settings.max_episodes, self._settings.num_prover_samples
        self.observation_space = spaces.MultiDiscrete([H + 1, K + 1, 3, K + 1, TOKEN_BUCKETS + 1, len(MetaAction) + 1])
        self.action_space = spaces.Discrete(len(MetaAction))
        self._token_scale = self._settings.max_tokens or H * self.episode_tokens
        self._trace: MathTrace | None = None

    def _obs(self, last_action: int, progress: float) -> np.ndarray:
        t = self._trace
        K = self._settings.num_prover_samples
        answers = [a for a in t.estimate.answers if a]
        agreement = max(Counter(answers).values()) if answers else 0
        tokens = min(TOKEN_BUCKETS, t.tokens_used * TOKEN_BUCKETS // self._token_scale)
        change = 0 if progress < 0 else (2 if progress > 0 else 1)
        return np.array(
            [len(t.episodes), round(t.tracker.j * K), change, agreement, tokens, last_action], dtype=np.int64
        )

    @property
    def template(self) -> PromptTemplate:
        """The prompts this env builds (an agent that writes episodes for it must use the same)."""
        return self._settings.template

    @property
    def trace(self) -> MathTrace | None:
        """The current problem's trace (None before the first reset): to read, not to change."""
        return self._trace

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        problem = check_reset_options(options).get("problem")  # bad options: nothing touched yet
        super().reset(seed=seed)
        self._trace = None  # never half-reset: if building the trace fails, no old trace is stepped
        problem = problem or self._source.sample(self.np_random)
        self._trace = MathTrace(self._settings, self.prover, self.prover.engine.count_tokens, problem)
        info = self._trace.info()
        info["episode_text"] = ""
        return self._obs(len(MetaAction), 0.0), info

    def step(self, action: Any):
        if self._trace is None or self._trace.done:
            raise RuntimeError("TTCMathMetaEnv.step called before reset() or after the episode ended; call reset() first.")
        action = check_meta_action(self.action_space, action)
        if action == MetaAction.ANSWER:
            result, text = self._trace.answer_now(), ""
        else:
            text, tokens = self._write_episode(MetaAction(action))
            result = self._trace.add_episode(text, tokens)
        result.info["episode_text"] = text
        obs = self._obs(action, result.info["progress"])
        return obs, result.reward, result.terminated, result.truncated, result.info

    def _write_episode(self, action: MetaAction) -> tuple[str, int]:
        """The env's model continues the trace after the action's cue, up to a paragraph break."""
        t, s = self._trace, self._settings
        cue = META_ACTION_CUES[action]
        prompt = s.template.reasoning_prompt(self.engine, t.problem.question, t.episodes, cue)
        budget = self.episode_tokens
        left = s.budget.tokens_left(t.tokens_used)
        if left is not None:
            budget = max(1, min(budget, left))
        sampling = SamplingConfig(max_new_tokens=budget, temperature=self.temperature, stop=(s.template.separator,))
        seed = int(self.np_random.integers(2**62))
        completion = self.engine.generate([prompt], sampling, seed=seed)[0][0]
        text = cue + completion.text
        if not text.strip():
            text = cue or "..."  # the model wrote nothing: the episode is still spent
        return text, completion.num_tokens

    def render(self):
        if self.render_mode == "ansi" and self._trace is not None:
            return self._trace.render()
        return None
