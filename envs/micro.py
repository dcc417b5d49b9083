"""TTC-Micro-v0: TTC-Math-v0 on the micro-reasoner, one `gym.make` away (issue 30, point 1)."""

from __future__ import annotations

from typing import Any

from ttc_gym.envs.math_text import TTCMathEnv
from ttc_gym.envs.math_vector import TTCMathVectorEnv
from ttc_gym.micro.checkpoint import MICRO_CHECKPOINTS, micro_context
from ttc_gym.prompts import PromptTemplate

#: TTC-Micro-v0's defaults (every other argument is TTC-Math-v0's): the micro study's setting
#: (examples/studies/micro_study_v1.py: budget H = 4) with MRT's K = 8 forced answers per J.
MICRO_DEFAULTS = {"engine": "micro", "source": "micro:1-2", "max_episodes": 4, "num_prover_samples": 8}
#: Tokens a micro problem's prompt takes at most, the forced-answer suffix included (the longest of
#: 400 problems of each level measured 157; tests/envs/test_micro_env.py checks the bound).
MICRO_PROMPT_TOKENS = 176
#: Tokens of the separator between two episodes ("\n\n": two bytes, so at most two byte-level tokens).
SEPARATOR_TOKENS = 2


def micro_episode_chars(max_episodes: int, template: PromptTemplate | None = None,
                        max_answer_tokens: int | None = None, context: int | None = None) -> int:
    """The length guard: the most characters per episode such that H episodes of ASCII text (at most
    one byte-level token per character), the longest micro prompt and a forced answer fit the model's
    context: (context - MICRO_PROMPT_TOKENS - answer tokens) // H - SEPARATOR_TOKENS (204 at H = 4).
    A ValueError when not even one character would fit."""
    template = template or PromptTemplate()
    answer = template.answer_tokens if max_answer_tokens is None else max_answer_tokens
    context = micro_context() if context is None else context
    chars = (context - MICRO_PROMPT_TOKENS - answer) // max_episodes - SEPARATOR_TOKENS
    if chars < 1:
        raise ValueError(
            f"max_episodes={max_episodes} episodes do not fit the micro-reasoner's context of {context} tokens "
            f"(with {MICRO_PROMPT_TOKENS} prompt and {answer} answer tokens); use fewer episodes, or give "
            f"max_episode_chars yourself.")
    return chars


def micro_kwargs(kwargs: dict) -> dict:
    """TTC-Math-v0's keyword arguments for TTC-Micro-v0: `MICRO_DEFAULTS` under the caller's, and
    `max_episode_chars` from the length guard unless given (on the context of the shipped checkpoint the
    engine names, "micro" or "micro-long"; the base's for any other engine)."""
    merged = {**MICRO_DEFAULTS, **kwargs}
    if "max_episode_chars" not in merged:
        H = merged["max_episodes"]
        if isinstance(H, int) and not isinstance(H, bool) and H >= 1:  # else MathSettings says what is wrong
            engine = merged["engine"]
            context = micro_context(engine) if isinstance(engine, str) and engine in MICRO_CHECKPOINTS else None
            merged["max_episode_chars"] = micro_episode_chars(H, merged.get("template"), merged.get("max_answer_tokens"),
                                                              context)
    return merged


class TTCMicroEnv(TTCMathEnv):
    """
    ## Description

    TTC-Math-v0 (`ttc_gym.envs.math_text.TTCMathEnv`, whose docstring is the spec of everything not said
    here) on the micro-reasoner: the ~1.1 M-parameter Llama shipped in the package (`ttc_gym/data/micro/`,
    `make_engine("micro")`; see Arguments for the second checkpoint), trained from scratch on procedural reasoning traces of multi-step arithmetic
    chains (`ttc_gym.micro`), on problems of that family (source "micro:<levels>", `ttc_gym.micro.task`).
    The agent writes each episode as text; the micro-reasoner, as its own prover, gives K forced answers
    after each, so J rises as the steps are written and falls after a slip. Offline, on a CPU, a step
    takes milliseconds: the env on which an LLM's reasoning can be trained end to end on a laptop
    (examples/studies/micro_study.py).

    ## Action Space

    `AnyText(max_episode_chars, min_length=1)`: the next episode's text. The length guard:
    `max_episode_chars` defaults to `micro_episode_chars(max_episodes)` (204 at H = 4), the most
    characters per episode such that H episodes of ASCII text, the longest micro prompt and a forced
    answer fit the model's context of 1,024 tokens; so any action the space samples can be stepped. An
    episode of non-ASCII text (up to four tokens per character) can still overflow it: the step then
    raises a ValueError naming the context and the trace is left as it was.

    ## Observation Space

    As TTC-Math-v0: `Dict(problem=AnyText, episodes=Sequence(AnyText))`.

    ## Rewards

    As TTC-Math-v0: `outcome + alpha * progress - episode_cost`, progress = J_j - J_{j-1}.

    ## Starting State

    As TTC-Math-v0: a problem drawn from `source` with the env's `np_random`; `reset(options={"problem":
    p, "prefix": [...]})` starts from a prefix.

    ## Episode End

    As TTC-Math-v0: terminated when an episode commits an answer (`\\boxed{}`); after H episodes the
    micro-reasoner's own forced answer is committed and graded.

    ## Arguments

    TTC-Math-v0's, with these defaults (`MICRO_DEFAULTS`): `engine="micro"`, `source="micro:1-2"` (the
    levels of the micro study; "micro" for all five, "micro:3", "micro:1-3" or "micro:1,2" for others),
    `max_episodes=4` (H, the micro study's budget), `num_prover_samples=8` (K, MRT's), and
    `max_episode_chars` from the length guard above. Any of them can be given; an unknown argument is an
    error naming TTC-Micro-v0 ("did you mean").

    The default engine is the base checkpoint, on which levels 3-5 are near 0 at H = 4. For hard problems
    with room to progress, use the second shipped checkpoint, the longer pretraining ("micro-long",
    `ttc_gym/data/micro_long/`: 0.532 and 0.172 at levels 2 and 3,
    examples/studies/micro_headroom.md section 6) on those levels:
    `gym.make("TTC-Micro-v0", engine="micro-long", source="micro:2-3")`. It has the same tokenizer and
    1,024-token context, so the length guard is the same (204 characters at H = 4).

    ## Version History

    * v0: initial version (issue 30).
    """

    env_id = "TTC-Micro-v0"

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        super().__init__(render_mode=render_mode, **micro_kwargs(kwargs))


class TTCMicroVectorEnv(TTCMathVectorEnv):
    """`num_envs` TTC-Micro-v0 traces stepped together: `ttc_gym.envs.math_vector.TTCMathVectorEnv` (its
    docstring is the spec) with TTC-Micro-v0's defaults and length guard
    (`gym.make_vec("TTC-Micro-v0", num_envs=8, vectorization_mode="vector_entry_point")`)."""

    env_id = "TTC-Micro-v0"

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, autoreset_mode: Any = "next_step",
                 **kwargs: Any):
        super().__init__(num_envs=num_envs, render_mode=render_mode, autoreset_mode=autoreset_mode,
                         **micro_kwargs(kwargs))
