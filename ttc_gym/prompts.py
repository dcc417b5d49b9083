"""Every prompt ttc-gym sends to a model is built here, and nowhere else.

A reasoning prompt is the model's chat template around the problem, with the episodes written so
far as the beginning of the assistant's turn, so that generation continues the trace. The prover's
prompt adds MRT's forced-termination suffix ("Time is up ...") and opens a `\\boxed{` for the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ttc_gym.actions import MetaAction
from ttc_gym.answer_extraction import closing_brace
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

# Short on purpose: the default 135M model follows a short instruction better (forced-answer
# accuracy at episode 0 on level-1 problems: ~10 % with this prompt, ~4 % with a longer one).
DEFAULT_USER_TEMPLATE = "{question} Put the final answer in \\boxed{{}}."

FORCED_ANSWER_SUFFIX = (
    "Time is up.\n\n"
    "Given the time I've spent and the approaches I've tried, I should stop thinking and formulate "
    "a final answer based on what I already have.\n\n"
    "The final answer is $\\boxed{"
)

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
        forced_answer_suffix: appended after the trace to make the prover answer now; it must end
            inside an open `\\boxed{` whose content is the answer.
    """

    user: str = DEFAULT_USER_TEMPLATE
    system: str | None = None
    separator: str = "\n\n"
    forced_answer_suffix: str = FORCED_ANSWER_SUFFIX

    def __post_init__(self) -> None:
        for name in ("user", "separator", "forced_answer_suffix"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"PromptTemplate.{name} must be a string, got {getattr(self, name)!r}.")
        if "{question}" not in self.user:
            raise ValueError(f"PromptTemplate.user must contain '{{question}}', got {self.user!r}.")
        if not self.forced_answer_suffix.rstrip().endswith("\\boxed{"):
            raise ValueError("PromptTemplate.forced_answer_suffix must end with an open '\\boxed{'.")

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
        """Prompt that makes the prover stop thinking and answer inside `\\boxed{`."""
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
