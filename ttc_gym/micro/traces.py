"""Procedural reasoning traces for the micro task, in the envs' episode format (docs/formulation.md §1, §6).

A trace solves an arithmetic chain (`ttc_gym.micro.task`) one paragraph (episode) at a time:

    Step 1: 7 + 5 = 12.
    Wait, let me check step 1: 7 + 5 = 12. Yes, 12.
    Step 2: 12 × 3 = 38.                                  <- a slip
    Wait, let me check step 2: 12 × 3 = 36, not 38. So 36.  <- a check that finds and fixes it
    Step 3: 36 - 4 = 32.
    The final answer is $\\boxed{32}$.                     <- commits (an env step with \\boxed{} ends the problem)

Slips happen at controlled rates (`TraceStyle`); a check follows a step at a controlled rate and
misses a slip at a controlled rate; a found slip is fixed in place or, at a controlled rate, the
trace switches approach and starts over ("Alternatively, let me start over from 7."). The number
the trace stands at after each episode is tracked (`MicroTrace.states`), and the answer a forced
stop implies at each prefix (`MicroTrace.forced_answer`) is that number carried through the
remaining steps: the prover's J then rises as steps are written and falls after a slip or a restart.

The training texts (`trace_example`, `forced_example`) are built with `ttc_gym.prompts.PromptTemplate`,
the one place prompts are built, so the model is trained on exactly the prompts the envs send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ttc_gym.engines.base import chat_prompt
from ttc_gym.micro.task import SYMBOLS, apply_op, run_chain
from ttc_gym.problems.core import Problem
from ttc_gym.prompts import PromptTemplate
from ttc_gym.validation import check_float

END_OF_TURN = "<|im_end|>"  # ChatML's end of a turn: the micro tokenizer's end-of-sequence token


@dataclass(frozen=True)
class TraceStyle:
    """The rates of a trace's moves (each a probability).

    Attributes:
        slip: per operation ("add", "sub", "mul"), the chance that a step writes a wrong result.
        check: the chance that a step is followed by a check of it.
        miss: the chance that a check of a slipped step repeats the slip ("Yes, 38.").
        restart: the chance that a found slip is followed by starting over instead of a fix.
    """

    slip: tuple[tuple[str, float], ...] = (("add", 0.10), ("sub", 0.10), ("mul", 0.20))
    check: float = 0.3
    miss: float = 0.25
    restart: float = 0.25

    def __post_init__(self) -> None:
        for op, p in self.slip:
            check_float(f"TraceStyle.slip[{op!r}]", p, minimum=0.0, maximum=1.0)
        for name in ("check", "miss", "restart"):
            check_float(f"TraceStyle.{name}", getattr(self, name), minimum=0.0, maximum=1.0)

    def slip_rate(self, op: str) -> float:
        return dict(self.slip).get(op, 0.0)


@dataclass(frozen=True)
class MicroTrace:
    """One trace of one problem.

    Attributes:
        episodes: the episodes' texts (the last one commits the answer in a `\\boxed{}`).
        states: (value, next step index) after each prefix: states[j] is where the trace stands after
            its first j episodes (states[0] = (start, 0)).
        kinds: what each episode is: "step", "slip", "check", "fix", "miss", "found", "restart", "commit".
    """

    problem: Problem
    episodes: tuple[str, ...]
    states: tuple[tuple[int, int], ...]
    kinds: tuple[str, ...]

    def forced_answer(self, j: int) -> int:
        """The answer a stop after the first `j` episodes implies: the value the trace stands at,
        carried through the steps not written yet (with correct arithmetic)."""
        value, index = self.states[j]
        return run_chain(value, chain_ops(self.problem)[index:])[-1]

    @property
    def final_answer(self) -> int:
        return self.forced_answer(len(self.episodes))

    @property
    def correct(self) -> bool:
        return str(self.final_answer) == self.problem.answer


def chain_ops(problem: Problem) -> list[tuple[str, int]]:
    return [(str(op), int(a)) for op, a in problem.get_meta("ops")]


def _slipped(rng: np.random.Generator, true: int) -> int:
    """A wrong result near `true` (off by 1, 2 or 10; not negative unless `true` is)."""
    deltas = [d for d in (-10, -2, -1, 1, 2, 10) if true + d >= min(true, 0)]
    return true + int(deltas[int(rng.integers(len(deltas)))])


def generate_trace(problem: Problem, rng: np.random.Generator, style: TraceStyle | None = None,
                   max_episodes: int = 24) -> MicroTrace:
    """A trace of `problem` drawn with `rng` at the rates of `style` (at most `max_episodes`
    episodes before the commit: a trace that restarts too often commits where it stands)."""
    style = style or TraceStyle()
    ops = chain_ops(problem)
    start = int(problem.get_meta("start"))
    value, index = start, 0
    episodes: list[str] = []
    states = [(value, index)]
    kinds: list[str] = []

    def add(text: str, kind: str) -> None:
        episodes.append(text)
        states.append((value, index))
        kinds.append(kind)

    while index < len(ops) and len(episodes) < max_episodes:
        op, a = ops[index]
        true = apply_op(value, op, a)
        slipped = rng.random() < style.slip_rate(op)
        wrote = _slipped(rng, true) if slipped else true
        lhs = f"{value} {SYMBOLS[op]} {a}"
        step = index + 1
        value, index = wrote, index + 1
        add(f"Step {step}: {lhs} = {wrote}.", "slip" if slipped else "step")
        if rng.random() >= style.check:
            continue
        if not slipped:
            add(f"Wait, let me check step {step}: {lhs} = {true}. Yes, {true}.", "check")
        elif rng.random() < style.miss:
            add(f"Wait, let me check step {step}: {lhs} = {wrote}. Yes, {wrote}.", "miss")
        elif rng.random() < style.restart:
            value = true
            add(f"Wait, let me check step {step}: {lhs} = {true}, not {wrote}.", "found")
            value, index = start, 0
            add(f"Alternatively, let me start over from {start}.", "restart")
        else:
            value = true
            add(f"Wait, let me check step {step}: {lhs} = {true}, not {wrote}. So {true}.", "fix")
    final = run_chain(value, ops[index:])[-1] if index < len(ops) else value
    add(f"The final answer is $\\boxed{{{final}}}$.", "commit")
    return MicroTrace(problem, tuple(episodes), tuple(states), tuple(kinds))


class _ChatML:
    """The chat format of a tokenizer without a chat template (ChatML, `ttc_gym.engines.base.chat_prompt`):
    what `TransformersEngine.format_chat` gives for the micro tokenizer, without loading it."""

    def format_chat(self, user: str, assistant_prefix: str = "", system: str | None = None) -> str:
        return chat_prompt(None, user, assistant_prefix, system)


CHAT = _ChatML()


def trace_example(trace: MicroTrace, template: PromptTemplate | None = None, chat: Any = CHAT) -> tuple[str, str]:
    """(prompt, target) to train the reasoner on the whole trace: the env's reasoning prompt with no
    episode yet, then the episodes joined by the template's separator and the end of the turn (each
    episode is the continuation the agent samples after the prompt of the episodes before it)."""
    template = template or PromptTemplate()
    prompt = template.reasoning_prompt(chat, trace.problem.question, [])
    return prompt, template.trace(trace.episodes) + END_OF_TURN


def forced_example(trace: MicroTrace, j: int, template: PromptTemplate | None = None,
                   chat: Any = CHAT) -> tuple[str, str]:
    """(prompt, target) to train the forced answer after the first `j` episodes: the prover's prompt
    (`PromptTemplate.forced_answer_prompt`, MRT's "Time is up ..." suffix and an open box) and the
    answer the prefix implies, closing the box."""
    template = template or PromptTemplate()
    if template.forced_answer != "boxed":
        raise ValueError("the micro-reasoner is trained on the 'boxed' forced-answer form "
                         f"(docs/formulation.md §2), got template.forced_answer={template.forced_answer!r}.")
    prompt = template.forced_answer_prompt(chat, trace.problem.question, list(trace.episodes[:j]))
    return prompt, f"{trace.forced_answer(j)}}}$"
