"""TTC-MathMeta-v0: the agent decides how to spend compute; the env's own model writes the episodes."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from ttc_gym.envs.math_core import MathEnv, MathSettings, MathTrace
from ttc_gym.actions import MetaAction, check_meta_action
from ttc_gym.engines.base import SamplingConfig
from ttc_gym.metrics import answer_agreement, majority_vote
from ttc_gym.prompts import META_ACTION_CUES
from ttc_gym.seeding import prefix_seed
from ttc_gym.validation import check_int, check_render_mode, check_temperature

META_PARAMETERS = ("episode_tokens", "temperature")
TOKEN_BUCKETS = 8
OBS_FIELDS = ("episodes_used", "agreement", "agreement_change", "majority_changed", "token_bucket", "last_action")
# `agreement_change` codes (the agreement against the previous observation's) and `majority_changed` codes.
DOWN, SAME, UP = 0, 1, 2
MAJORITY_SAME, MAJORITY_CHANGED, MAJORITY_UNKNOWN = 0, 1, 2


class TTCMathMetaEnv(MathEnv):
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

    `MultiDiscrete([H+1, K+1, 3, 3, 9, 5])` (fields `OBS_FIELDS`, also `env.unwrapped.obs_fields`):
    episodes used; **agreement**, how many of the prover's K forced answers after the last episode equal
    their most common answer (0 when none gave an answer; `ttc_gym.metrics.answer_agreement` times K);
    **agreement change** against the previous observation (0 down, 1 same, 2 up; 1 at reset); **majority
    changed**, whether the most common forced answer differs from the previous observation's (0 the same
    answer, 1 a different one, 2 nothing to compare: at reset, or no answer now or before); tokens used
    in eighths of the token budget (of `max_tokens`, or of `H * episode_tokens` when there is none); the
    last action (4 = none yet).

    **No gold.** Every field is computed without the gold answer, from what a deployed system has:
    its own forced answers compared with one another, never graded (docs/formulation.md §3). J, which
    grades them against the gold answer, is in `info` only; a policy that reads it is an oracle
    (`ttc_gym.agents.heuristics.OracleAnswerWhenConfident`).

    ## Rewards

    As TTC-Math-v0: `outcome + alpha * progress - episode_cost`, progress from the prover's J.

    ## Starting State

    A problem drawn from `source` with `np_random`; J_0 measured on the empty trace.

    `reset(options={"problem": p})` rolls out the problem p; `reset(options={"problem": p, "prefix":
    [e_1, ..., e_k]})` starts p's trace after the k episode texts e_i, as if meta-actions had made the
    env's model write them — a step's text is its `info["episode_text"]` (the action's cue included),
    so a rollout's texts are a prefix of it. As in TTC-Math-v0 (its Starting State is the spec): the
    budget counts them (`info["episodes_used"] == k`, `info["tokens_used"]` their tokens), `info["J"]`
    is J at the prefix, `info["J_prefix_start"]` J_0, and the first step's progress is relative to J at
    the prefix; the same checks (non-empty strings, no `\\boxed{}` answer, room for one more episode, a
    problem given), except that an episode has no `max_episode_chars` limit here (the model, not the
    agent, writes it). The observation at a prefix is a reset's: the agreement of the prover's answers
    at the prefix, agreement change 1 (same), majority changed 2 (nothing to compare), last action 4
    (none yet); the observations of the following steps are those of the run from the start.

    ## Episode End

    Terminated on "answer now", or when a written episode commits a `\\boxed{}` answer. Truncated at
    `max_episodes` (H) or `max_tokens` (C0), with a forced answer (also terminated) when
    `answer_on_truncation=True`.

    ## Arguments

    Those of TTC-Math-v0, plus `episode_tokens` (most tokens the model writes per episode, 96) and
    `temperature` (sampling temperature of the episodes, 0.7). Each episode's sampling seed is hashed
    (`ttc_gym.seeding.prefix_seed`) from a seed drawn from `np_random` at reset — right after seeding,
    before a problem is drawn — and the (problem, episodes so far) it continues: the same seed and
    actions give the same rollout, and `reset(seed=s, options={"problem": p, "prefix": texts})` goes on
    exactly as the run from `reset(seed=s)` (on p) did after writing `texts`. An episode's tokens are
    its text's (cue included) under the engine's tokenizer, as TTC-Math-v0 counts an episode it is
    given, so a prefix's texts count the same tokens as the steps that wrote them.

    Accessors (on `env.unwrapped`): `engine` (the model that writes the episodes), `template`,
    `prover` and `trace`, as in TTC-Math-v0; `reset` options: see Starting State.

    `info`: that of TTC-Math-v0, plus `episode_text` (what the model wrote this step). Gold-derived
    keys, for rewards and analysis only (a policy that reads them is an oracle): J, J_prefix_start,
    progress, outcome, reward, prover_correct, grading_incomplete, gold_answer (as in TTC-Math-v0).
    Gold-free: prover_answers (the K normalized forced answers, ungraded), committed_answer,
    episodes_used, tokens_used, tokens_left, episode_tokens, prover_answer_tokens, prompt_tokens,
    episode_text, alpha, cost, answered, problem_id, difficulty (the dataset's label).

    ## Version History

    * v0: initial version. Changed in place, before any release (so still v0, no deprecated alias):
      the observation no longer carries round(J*K) and the sign of the last progress, which are graded
      against the gold answer; the agreement change and the majority change replace them. (Gymnasium
      bumps the version when an observation changes; ttc-gym will, once released.) Issue 27, also in
      place: `reset(options={"problem": p, "prefix": [...]})`; episode seeds hashed from a per-reset
      seed and the prefix (they were the next draws of `np_random`, which a prefix reset cannot
      replay); an episode's tokens counted from its text (they were the generated tokens, the cue
      left out, which a prefix given as text cannot reproduce).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    obs_fields = OBS_FIELDS  # the observation's field names, in order (agents that aggregate state name fields by them)

    def __init__(self, render_mode: str | None = None, episode_tokens: int = 96, temperature: float = 0.7, **kwargs: Any):
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self._settings = MathSettings.from_kwargs("TTC-MathMeta-v0", kwargs)
        self.episode_tokens = check_int("episode_tokens", episode_tokens, minimum=1)
        self.temperature = check_temperature("temperature", temperature)
        self._source, self.engine, self.prover = self._settings.build()
        H, K = self._settings.max_episodes, self._settings.num_prover_samples
        self.observation_space = spaces.MultiDiscrete([H + 1, K + 1, 3, 3, TOKEN_BUCKETS + 1, len(MetaAction) + 1])
        self.action_space = spaces.Discrete(len(MetaAction))
        self._token_scale = self._settings.max_tokens or H * self.episode_tokens
        self._trace: MathTrace | None = None
        self._previous_answers: tuple[str, ...] | None = None  # the forced answers of the last observation

    def _obs(self, last_action: int) -> np.ndarray:
        """The observation of the current trace: gold-free (the forced answers, never their grades)."""
        t = self._trace
        answers, previous = t.estimate.answers, self._previous_answers
        agreement = round(answer_agreement(answers) * len(answers))
        change, majority = SAME, MAJORITY_UNKNOWN
        if previous is not None:
            before = round(answer_agreement(previous) * len(previous))
            change = DOWN if agreement < before else (UP if agreement > before else SAME)
            now, then = majority_vote([a for a in answers if a]), majority_vote([a for a in previous if a])
            if now is not None and then is not None:
                majority = MAJORITY_SAME if now == then else MAJORITY_CHANGED
        self._previous_answers = tuple(answers)
        tokens = min(TOKEN_BUCKETS, t.tokens_used * TOKEN_BUCKETS // self._token_scale)
        return np.array([len(t.episodes), agreement, change, majority, tokens, last_action], dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        info = self._start_trace(seed, options, None).reset_info()
        info["episode_text"] = ""
        self._previous_answers = None
        return self._obs(len(MetaAction)), info

    def step(self, action: Any):
        if self._trace is None or self._trace.done:
            raise RuntimeError("TTCMathMetaEnv.step called before reset() or after the episode ended; call reset() first.")
        action = check_meta_action(self.action_space, action)
        rng_state = self.np_random.bit_generator.state
        if action == MetaAction.ANSWER:
            result, text = self._trace.answer_now(), ""
        else:
            try:
                text = self._write_episode(MetaAction(action))
                # Its tokens are counted from the text, as a prefix's are; add_episode rolls its trace
                # back if it raises.
                result = self._trace.add_episode(text)
            except BaseException:
                self.np_random.bit_generator.state = rng_state  # a step that raised changes nothing
                raise
        result.info["episode_text"] = text
        obs = self._obs(action)
        return obs, result.reward, result.terminated, result.truncated, result.info

    def _seeded(self) -> None:
        # The seed the episodes' seeds are hashed from (with the prefix they continue): drawn before
        # the problem, so a reset given the problem draws the same one as a reset that draws it.
        self._episode_seed = int(self.np_random.integers(2**62))

    def _write_episode(self, action: MetaAction) -> str:
        """The env's model continues the trace after the action's cue, up to a paragraph break."""
        t, s = self._trace, self._settings
        cue = META_ACTION_CUES[action]
        prompt = s.template.reasoning_prompt(self.engine, t.problem.question, t.episodes, cue)
        budget = self.episode_tokens
        left = s.budget.tokens_left(t.tokens_used)
        if left is not None:
            budget = max(1, min(budget, left))
        sampling = SamplingConfig(max_new_tokens=budget, temperature=self.temperature, stop=(s.template.separator,))
        seed = prefix_seed(self._episode_seed, t.problem.id, t.problem.question, *t.episodes)
        completion = self.engine.generate([prompt], sampling, seed=seed)[0][0]
        text = cue + completion.text
        if not text.strip():
            text = cue or "..."  # the model wrote nothing: the episode is still spent
        return text

    def render(self):
        if self.render_mode == "ansi" and self._trace is not None:
            return self._trace.render()
        return None
