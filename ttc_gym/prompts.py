"""Every prompt ttc-gym sends to a model is built here, and nowhere else.

A reasoning prompt is the model's chat template around the problem, with the episodes written so
far as the beginning of the assistant's turn, so that generation continues the trace. The prover's
prompt adds MRT's forced-termination suffix ("Time is up ...") and then, by the template's
`forced_answer` form (docs/formulation.md §2):
- "boxed" (default; for small models): opens a `\\boxed{` whose content is the answer, a few tokens;
- "close_think" (for reasoning models, as MRT does): closes the thinking block (`</think>`) and
  opens a short final solution, which is graded by the answer it states (its last `\\boxed{}`).
  MRT's own prompt (GitHub CMU-AIRe/MRT, `analysis/code/pass_at_k_given_prefix.py`,
  `apply_stop_template`): the stop sentence, "\\n</think>\\n\\n**Step-by-Step Explanation and
  Answer:**\\n\\n1. **", then up to 4096 tokens sampled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ttc_gym.actions import MetaAction
from ttc_gym.answer_extraction import closing_brace, extract_answer
from ttc_gym.engines.base import SamplingConfig

# Paragraph openers at which MRT's analysis starts a new episode (docs/formulation.md §6).
EPISODE_MARKERS = (
    "Wait",
    "But wait",
    "Alternatively",
    "Is there another way to think about this?",
    "But let me double-check",
    "But hold on",
)

# What budget forcing appends, in turn, each time the trace is forced to go on after it ended: MRT's
# `CONTINUE_STRS` (GitHub CMU-AIRe/MRT, analysis/code/pass_at_k_extrapolate.py, Appendix F); s1's
# budget forcing (Muennighoff et al. 2025, §3.1) appends "Wait", the first of them.
BUDGET_FORCING_CUES = ("Wait", "But wait", "Alternatively", "But hold on")

# Short on purpose: the default 135M model follows a short instruction better (forced-answer
# accuracy at episode 0 on level-1 problems: ~10 % with this prompt, ~4 % with a longer one).
DEFAULT_USER_TEMPLATE = "{question} Put the final answer in \\boxed{{}}."

# MRT's forced-termination sentence (GitHub CMU-AIRe/MRT, analysis/code/pass_at_k_given_prefix.py).
STOP_THINKING = (
    "Time is up.\n\n"
    "Given the time I've spent and the approaches I've tried, I should stop thinking and formulate "
    "a final answer based on what I already have."
)

# The "boxed" form: the answer goes straight into an open box (a few tokens; small models).
FORCED_ANSWER_SUFFIX = STOP_THINKING + "\n\nThe final answer is $\\boxed{"

# The "close_think" form: after the stop sentence the thinking block is closed and a short final
# solution begins, as in MRT's `apply_stop_template`; `{think_close}` is the template's tag.
SOLUTION_SUFFIX = STOP_THINKING + "\n{think_close}\n\n**Step-by-Step Explanation and Answer:**\n\n1. **"

FORCED_ANSWER_FORMS = ("boxed", "close_think")
# Default most tokens of one forced answer, per form: a boxed answer is a few tokens; a final
# solution is a short derivation (MRT samples up to 4096; 1024 suffices for a short one).
DEFAULT_ANSWER_TOKENS = {"boxed": 24, "close_think": 1024}

# What the env's own model is told to do for each meta-action of TTC-MathMeta-v0.
META_ACTION_CUES = {
    MetaAction.CONTINUE: "",
    MetaAction.SWITCH: "Alternatively, ",
    MetaAction.VERIFY: "Wait, let me double-check. ",
}


@dataclass(frozen=True)
class PromptTemplate:
    """How a problem and its trace become prompts.

    Attributes:
        user: the user message; `{question}` is replaced by the problem's text.
        system: a system message, or None for the chat template's default.
        separator: what joins episodes in the assistant's turn (a paragraph break).
        forced_answer_suffix: appended after the trace to make the prover answer now; None (default)
            takes the form's own (`FORCED_ANSWER_SUFFIX` or `SOLUTION_SUFFIX`). With "boxed" it must
            end inside an open `\\boxed{` whose content is the answer; with "close_think" it must
            contain `think_close_tag`.
        forced_answer: how a forced answer is written and read (docs/formulation.md §2):
            "boxed" (default: the answer inside the open box, a few tokens — what small models
            follow) or "close_think" (MRT's forced termination for reasoning models: the thinking
            block is closed and the model writes a short final solution; its answer is the last
            `\\boxed{}` of the solution, else a stated "the answer is ...").
        think_close_tag: the tag that ends the thinking block ("close_think" form).
    """

    user: str = DEFAULT_USER_TEMPLATE
    system: str | None = None
    separator: str = "\n\n"
    forced_answer_suffix: str | None = None
    forced_answer: str = "boxed"
    think_close_tag: str = "</think>"

    def __post_init__(self) -> None:
        if self.forced_answer not in FORCED_ANSWER_FORMS:
            raise ValueError(f"PromptTemplate.forced_answer must be one of {FORCED_ANSWER_FORMS}, "
                             f"got {self.forced_answer!r}.")
        if not isinstance(self.think_close_tag, str) or not self.think_close_tag.strip():
            raise ValueError(f"PromptTemplate.think_close_tag must be a non-empty string such as '</think>', "
                             f"got {self.think_close_tag!r}.")
        if self.forced_answer_suffix is None:
            suffix = (FORCED_ANSWER_SUFFIX if self.forced_answer == "boxed"
                      else SOLUTION_SUFFIX.replace("{think_close}", self.think_close_tag))
            object.__setattr__(self, "forced_answer_suffix", suffix)
        for name in ("user", "separator", "forced_answer_suffix"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"PromptTemplate.{name} must be a string, got {getattr(self, name)!r}.")
        if "{question}" not in self.user:
            raise ValueError(f"PromptTemplate.user must contain '{{question}}', got {self.user!r}.")
        if self.forced_answer == "boxed" and not self.forced_answer_suffix.rstrip().endswith("\\boxed{"):
            raise ValueError("PromptTemplate.forced_answer_suffix must end with an open '\\boxed{' "
                             "(forced_answer='boxed').")
        if self.forced_answer == "close_think" and self.think_close_tag not in self.forced_answer_suffix:
            raise ValueError(f"PromptTemplate.forced_answer_suffix must close the thinking block with "
                             f"{self.think_close_tag!r} (forced_answer='close_think'), got "
                             f"{self.forced_answer_suffix!r:.120}.")

    @property
    def answer_tokens(self) -> int:
        """The default most tokens of one forced answer in this form (`DEFAULT_ANSWER_TOKENS`)."""
        return DEFAULT_ANSWER_TOKENS[self.forced_answer]

    def answer_sampling(self, max_new_tokens: int, temperature: float, n: int = 1) -> SamplingConfig:
        """How a forced answer after `forced_answer_prompt` is sampled: "boxed" as
        `forced_answer_sampling` (it ends where its box closes); "close_think": a solution, ended by
        the end-of-sequence token or `max_new_tokens`."""
        if self.forced_answer == "boxed":
            return forced_answer_sampling(max_new_tokens, temperature, n=n)
        return SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, n=n)

    def answer_of(self, text: str) -> str:
        """The answer a forced answer's generated `text` states ("" when none): "boxed": the box's
        content (`close_boxed`); "close_think": the solution's last `\\boxed{}`, else its "the answer
        is ..." (`ttc_gym.answer_extraction.extract_answer` without the last-number fallback, as
        MRT's `analysis/code/parser.py` extracts by default)."""
        if self.forced_answer == "boxed":
            return close_boxed(text)
        return (extract_answer(text, last_number_fallback=False) or "").strip()

    def user_message(self, question: str) -> str:
        return self.user.replace("{question}", question).replace("{{", "{").replace("}}", "}")

    def trace(self, episodes: Sequence[str]) -> str:
        """The assistant's text so far: episodes joined by the separator."""
        return self.separator.join(e.strip() for e in episodes)

    def reasoning_prompt(self, engine: Any, question: str, episodes: Sequence[str], cue: str = "") -> str:
        """Prompt for the next episode: the trace so far, a separator, then an optional cue
        (e.g. "Alternatively, ") that the model continues."""
        return self._continue_trace(engine, question, episodes, cue)

    def forced_answer_prompt(self, engine: Any, question: str, episodes: Sequence[str]) -> str:
        """Prompt that makes the prover stop thinking and answer now (inside `\\boxed{`, or in a short
        solution after the closed thinking block: the template's `forced_answer` form)."""
        return self._continue_trace(engine, question, episodes, self.forced_answer_suffix)

    def _continue_trace(self, engine: Any, question: str, episodes: Sequence[str], then: str) -> str:
        """The chat prompt whose assistant turn is the trace so far (and a separator), then `then`."""
        prefix = self.trace(episodes) + (self.separator if episodes else "")
        return engine.format_chat(self.user_message(question), prefix + then, system=self.system)


def forced_answer_sampling(max_new_tokens: int, temperature: float, n: int = 1) -> SamplingConfig:
    """How a forced answer (after `PromptTemplate.forced_answer_prompt`) is sampled: it ends where
    its `\\boxed{` closes, at a newline, or after `max_new_tokens`."""
    return SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, stop=("}$", "\n"), n=n,
                          stop_at_closing_brace=True)


def close_boxed(text: str) -> str:
    """The content of a `\\boxed{` opened by the prompt: `text` up to its first unbalanced `}`
    (`ttc_gym.answer_extraction.closing_brace`; the whole text when the brace is never closed)."""
    end = closing_brace(text)
    return (text if end is None else text[:end]).strip()
