"""What TTC-Math-v0 and TTC-MathMeta-v0 share: their arguments, and the trace of one problem —
episodes appended one by one, the prover run after each, budgets checked, answers graded.

The envs differ only in who writes the episode (the agent's text, or the env's own model following
a meta-action); everything that turns an episode into J, progress, outcome and `info` lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import gymnasium as gym

from ttc_gym.answer_extraction import extract_boxed
from ttc_gym.budget import Budget
from ttc_gym.engines.registry import make_engine
from ttc_gym.llm_prover import LLMProver
from ttc_gym.problems import as_problem, make_source
from ttc_gym.prompts import PromptTemplate
from ttc_gym.prover import PolicyAnswer, ProverEstimate
from ttc_gym.rewards import ProgressTracker, check_alpha, compose_reward, reward_info
from ttc_gym.validation import check_float, check_int, check_temperature, check_unicode, unknown_name_error

#: The most forced answers the prover samples per prefix (K): the observation counts them in numpy
#: integers, and J needs far fewer (MRT uses 8).
MAX_PROVER_SAMPLES = 4096


@dataclass
class MathSettings:
    """The validated arguments shared by the math envs (see the envs' docstrings)."""

    source: Any = None
    engine: Any = None
    prover_engine: Any = None
    num_prover_samples: int = 8
    prover_temperature: float = 0.7
    prover_seed: int = 0
    max_answer_tokens: int | None = None  # None: the template's form's default (24 boxed, 1024 solution)
    alpha: float = 1.0
    max_episodes: int = 8
    max_tokens: int | None = None
    episode_cost: float = 0.0
    max_episode_chars: int = 8000
    template: PromptTemplate = field(default_factory=PromptTemplate)
    answer_on_truncation: bool = True

    @classmethod
    def from_kwargs(cls, env_id: str, kwargs: dict, extra: tuple[str, ...] = ()) -> "MathSettings":
        allowed = MATH_PARAMETERS + extra
        unknown = [k for k in kwargs if k not in allowed]
        if unknown:
            raise unknown_name_error(f"{env_id} argument", unknown[0], allowed)
        return cls(**{k: v for k, v in kwargs.items() if k in MATH_PARAMETERS})

    def __post_init__(self) -> None:
        check_int("num_prover_samples (K)", self.num_prover_samples, minimum=1, maximum=MAX_PROVER_SAMPLES)
        check_temperature("prover_temperature", self.prover_temperature)
        check_int("prover_seed", self.prover_seed)
        if self.max_answer_tokens is not None:
            check_int("max_answer_tokens", self.max_answer_tokens, minimum=1)
        self.alpha = check_alpha(self.alpha)
        self.budget = Budget(max_episodes=self.max_episodes, max_tokens=self.max_tokens)
        if self.max_episodes is None:
            raise ValueError("max_episodes (H) must be set for the math envs (it sizes the observation).")
        check_float("episode_cost", self.episode_cost, minimum=0.0)
        check_int("max_episode_chars", self.max_episode_chars, minimum=1)
        if not isinstance(self.template, PromptTemplate):
            raise TypeError(f"template must be a ttc_gym.prompts.PromptTemplate, got {self.template!r}.")
        if not isinstance(self.answer_on_truncation, bool):
            raise TypeError(f"answer_on_truncation must be a bool, got {self.answer_on_truncation!r}.")

    def build(self) -> tuple[Any, Any, LLMProver]:
        """(problem source, policy engine, prover): loads models, so call it once per env. The
        prover runs on `prover_engine` (default: the policy's `engine`, as in MRT's online setting,
        docs/formulation.md §2) and knows the policy's engine, whose own forced answer is committed
        when the reasoner must answer."""
        source = make_source(self.source)
        engine = make_engine(self.engine)
        prover_engine = engine if self.prover_engine is None else make_engine(self.prover_engine)
        prover = LLMProver(
            prover_engine, num_samples=self.num_prover_samples, temperature=self.prover_temperature,
            max_answer_tokens=self.max_answer_tokens, template=self.template, seed=self.prover_seed,
            policy_engine=engine,
        )
        return source, engine, prover


#: The arguments the math envs share: MathSettings' fields (each env may take a few more).
MATH_PARAMETERS = tuple(f.name for f in fields(MathSettings))


@dataclass
class StepResult:
    reward: float
    terminated: bool
    truncated: bool
    info: dict


class MathTrace:
    """The reasoning trace of one problem: the episodes so far and what the prover says of them."""

    def __init__(self, settings: MathSettings, prover: LLMProver, token_counter: Any, problem: Any,
                 prefix: Sequence[str] = (), prefix_tokens: Sequence[int] | None = None):
        """A new trace of `problem`, starting after the episodes of `prefix` (checked by `check_prefix`,
        which also gives their `prefix_tokens`; counted here when None) as if they had been written:
        the budget counts them, J_0 and J at the prefix are measured in one prover batch, and progress
        starts from J at the prefix."""
        self.settings = settings
        self.prover = prover
        self.count_tokens = token_counter
        self.problem = problem
        self.episodes: list[str] = list(prefix)
        self.prefix_length = len(self.episodes)  # episodes given at reset: `tracker.j_curve[0]` is J after them
        if prefix_tokens is None:
            prefix_tokens = [int(token_counter(text)) for text in self.episodes]
        self.tokens_used = int(sum(prefix_tokens))
        # Tokens of the problem's prompt: MRT's token axis starts after them (metrics.mrt_normalized_token_regret).
        self.prompt_tokens = int(token_counter(prover.template.reasoning_prompt(prover.policy_engine, problem.question, [])))
        self.tracker = ProgressTracker()
        items = [(problem, ())] + ([(problem, tuple(self.episodes))] if self.episodes else [])
        start, *at_prefix = prover.estimate_many(items)
        self.j_start = start.j  # J_0, on the empty trace (before the prefix)
        self.estimate: ProverEstimate = at_prefix[0] if at_prefix else start
        # Answers whose grading did not complete in the last reset / step (each counted wrong).
        self.grading_incomplete = start.incomplete + sum(e.incomplete for e in at_prefix)
        self.tracker.start(self.estimate.j)
        self.done = False

    def info(self, *, progress: float = 0.0, outcome: float = 0.0, cost: float = 0.0,
             answered: bool = False, committed: str | None = None, episode_tokens: int = 0) -> dict:
        s = self.settings
        info = reward_info(
            j=self.tracker.j, progress=progress, outcome=outcome, alpha=s.alpha, cost=cost,
            episodes_used=len(self.episodes), tokens_used=self.tokens_used, answered=answered,
        )
        info.update(
            problem_id=self.problem.id,
            difficulty=self.problem.difficulty,
            prover_answers=self.estimate.answers,
            prover_correct=self.estimate.correct,
            prover_answer_tokens=self.estimate.answer_tokens,
            prompt_tokens=self.prompt_tokens,
            episode_tokens=episode_tokens,
            tokens_left=s.budget.tokens_left(self.tokens_used),
            committed_answer=committed,
            grading_incomplete=self.grading_incomplete,
        )
        if answered:
            info["gold_answer"] = self.problem.answer
        return info

    def reset_info(self) -> dict:
        """`info` at reset: that of `info()`, plus J_prefix_start (J_0, on the empty trace; J itself
        when the trace starts without a prefix)."""
        return {**self.info(), "J_prefix_start": float(self.j_start)}

    def ends_by_budget(self, text: str, num_tokens: int | None = None) -> bool:
        """Whether appending the episode `text` (of `num_tokens` tokens, counted when None) would end
        the problem by its budget, not by a committed answer: then the reasoner is forced to answer
        (with `answer_on_truncation`)."""
        tokens = self.count_tokens(text) if num_tokens is None else int(num_tokens)
        return extract_boxed(text) is None and self.settings.budget.exhausted(len(self.episodes) + 1,
                                                                              self.tokens_used + tokens)

    def forced_answer(self) -> PolicyAnswer:
        """The reasoner's own forced answer on the current trace, graded: the prover's first forced
        answer when the prover is the policy (no extra call), else one forced answer of the policy's
        engine (`LLMProver.policy_answer`): the graded answer is always the policy's."""
        if self.prover.is_policy:
            return PolicyAnswer(self.estimate.answers[0], self.estimate.correct[0])
        return self.prover.policy_answer(self.problem, self.episodes)

    def snapshot(self) -> tuple:
        """What a step changes, for `restore` (the episodes are only ever appended to)."""
        return (len(self.episodes), self.tokens_used, self.estimate, list(self.tracker.j_curve), self.done,
                self.grading_incomplete)

    def restore(self, state: tuple) -> None:
        """Undo everything since `snapshot` gave `state` (a step that raised changes nothing)."""
        n, self.tokens_used, self.estimate, j_curve, self.done, self.grading_incomplete = state
        del self.episodes[n:]
        self.tracker.j_curve = j_curve

    def add_episode(self, text: str, num_tokens: int | None = None) -> StepResult:
        """Append one episode; grade it if it commits an answer (a `\\boxed{}`); run the prover. When
        anything raises (the engine, the prompt over its context), the trace is left as it was."""
        state = self.snapshot()
        try:
            return self._add_episode(text, num_tokens)
        except BaseException:
            self.restore(state)
            raise

    def _add_episode(self, text: str, num_tokens: int | None = None) -> StepResult:
        s = self.settings
        tokens = self.count_tokens(text) if num_tokens is None else int(num_tokens)
        self.episodes.append(text)
        self.tokens_used += tokens
        self.estimate = self.prover.estimate(self.problem, self.episodes)
        progress = self.tracker.update(self.estimate.j)
        incomplete = self.estimate.incomplete
        committed = extract_boxed(text)
        outcome, terminated = 0.0, False
        if committed is not None:
            terminated = True
            verdict = self.prover.grade_answer(self.problem, committed)
            outcome = float(verdict is True)  # an unknown counts as wrong, and is flagged
            incomplete += verdict is None
        truncated = not terminated and s.budget.exhausted(len(self.episodes), self.tokens_used)
        if truncated and s.answer_on_truncation:
            # The reasoner is forced to answer: its own forced answer after the last episode (the
            # prover's first one when the prover is the policy: correct with probability J).
            terminated = True
            forced = self.forced_answer()
            committed, outcome = forced.answer, float(forced.correct)
            incomplete += forced.incomplete
        self.done = terminated or truncated
        self.grading_incomplete = int(incomplete)
        cost = s.episode_cost
        info = self.info(progress=progress, outcome=outcome, cost=cost, answered=terminated,
                         committed=committed, episode_tokens=tokens)
        return StepResult(compose_reward(outcome, progress, s.alpha, cost), terminated, truncated, info)

    def answer_now(self) -> StepResult:
        """Commit the reasoner's own forced answer on the current trace (`forced_answer`; no episode
        is spent). If the forced answer raises (the engine), the trace is left as it was."""
        forced = self.forced_answer()
        self.done = True
        outcome = float(forced.correct)
        self.grading_incomplete = forced.incomplete
        info = self.info(outcome=outcome, answered=True, committed=forced.answer)
        return StepResult(compose_reward(outcome, 0.0, self.settings.alpha), True, False, info)

    def render(self) -> str:
        k = self.prefix_length
        lines = [f"Problem {self.problem.id}: {self.problem.question}", f"  J_0 = {self.j_start:.2f}"]
        for i, episode in enumerate(self.episodes[:k], start=1):
            lines.append(f"[episode {i}, given at reset] {episode.strip()}")
        if k:
            lines.append(f"  J_{k} = {self.tracker.j_curve[0]:.2f}")
        for i, (episode, j) in enumerate(zip(self.episodes[k:], self.tracker.j_curve[1:]), start=k + 1):
            lines.append(f"[episode {i}] {episode.strip()}")
            lines.append(f"  J_{i} = {j:.2f}")
        return "\n".join(lines) + "\n"


def check_episode_text(text: Any, max_chars: int | None, name: str = "action") -> str:
    """An episode is a non-empty string (of at most `max_chars` characters unless None); `name` says
    what it is in the error ("action", "prefix[2]")."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str (an episode's text), got {type(text).__name__}: {text!r:.80}.")
    if max_chars is not None and len(text) > max_chars:
        raise ValueError(
            f"{name} is {len(text):,} characters long; an episode may have at most max_episode_chars={max_chars:,}."
        )
    if not text.strip():
        raise ValueError(f"{name} is an empty episode ({text!r}); write at least one non-space character.")
    return check_unicode(f"{name} (an episode's text)", text)


def check_prefix(prefix: Any, settings: MathSettings, count_tokens: Any, *, max_chars: int | None,
                 name: str = "reset option 'prefix'") -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The episodes of a reset's prefix and their token counts (`count_tokens`, the policy engine's,
    as the env counts an episode it is given): a list (or tuple) of episode texts, each as
    `check_episode_text` wants it (`max_chars` None: no length limit), none committing an answer (a
    trace ends at its `\\boxed{}`), and together leaving budget for at least one more episode (a trace
    whose budget they use up would have ended there). Errors name `name`; nothing is touched."""
    if isinstance(prefix, str) or not isinstance(prefix, (list, tuple)):
        raise TypeError(f"{name} must be a list of episode texts (str), got {type(prefix).__name__}: {prefix!r:.80}"
                        + (" (one episode? wrap it in a list)." if isinstance(prefix, str) else "."))
    texts = tuple(check_episode_text(text, max_chars, f"{name}[{i}]") for i, text in enumerate(prefix))
    for i, text in enumerate(texts):
        answer = extract_boxed(text)
        if answer is not None:
            raise ValueError(f"{name}[{i}] commits an answer (\\boxed{{{answer}}}): a trace ends at its committed "
                             f"answer, so a prefix to go on from cannot hold one.")
    tokens = tuple(int(count_tokens(text)) for text in texts)
    budget = settings.budget
    if budget.exhausted(len(texts), sum(tokens)):
        raise ValueError(
            f"{name} has {len(texts)} episodes of {sum(tokens):,} tokens, which use up the budget (max_episodes="
            f"{budget.max_episodes}, max_tokens={budget.max_tokens}): the trace would have ended there; a prefix "
            f"must leave room for at least one more episode."
        )
    return texts, tokens


def check_reset_options(options: dict | None, allowed: tuple[str, ...] = ("problem", "prefix")) -> dict:
    """The `reset` options of a math env: a dict (or None) with no key outside `allowed`; its
    "problem", when given, made a `Problem` (a "prefix" is checked by `check_prefix`)."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"reset options must be a dict, got {type(options).__name__}: {options!r:.80}.")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"reset options accept only {', '.join(map(repr, allowed))}, got {sorted(options)}.")
    if options.get("problem") is not None:  # a Problem, or a dict with question and answer
        options = {**options, "problem": as_problem(options["problem"], "reset(options={'problem': ...})")}
    return options


class MathEnv(gym.Env):
    """What the single math envs (TTC-Math-v0, TTC-MathMeta-v0) share as Gymnasium envs: the
    `template` and `trace` accessors and the start of a new trace on reset. A subclass sets
    `_settings`, `_source`, `engine`, `prover` and `_trace = None` in its `__init__`."""

    _settings: MathSettings
    _trace: MathTrace | None

    @property
    def template(self) -> PromptTemplate:
        """The prompts this env builds (an agent that writes episodes for it must use the same)."""
        return self._settings.template

    @property
    def trace(self) -> MathTrace | None:
        """The current problem's trace (None before the first reset): to read, not to change."""
        return self._trace

    def _start_trace(self, seed: int | None, options: dict | None, max_chars: int | None) -> MathTrace:
        """`reset`'s shared part: the problem of `options` (checked before anything is touched) or
        one drawn with the env's `np_random`, and its new trace with J_0 measured — started after the
        options' "prefix" when there is one (its episodes checked by `check_prefix` with `max_chars`)."""
        options = check_reset_options(options)  # bad options: nothing touched yet
        problem, prefix, tokens = options.get("problem"), (), ()
        if options.get("prefix") is not None:
            if problem is None:
                raise ValueError("reset option 'prefix' needs 'problem' too: the episodes of a prefix were written "
                                 "for a problem; give it as options={'problem': p, 'prefix': [...]}.")
            prefix, tokens = check_prefix(options["prefix"], self._settings, self.engine.count_tokens,
                                          max_chars=max_chars)
        super().reset(seed=seed)
        self._seeded()
        self._trace = None  # never half-reset: if building the trace fails, no old trace is stepped
        if problem is None:
            problem = self._source.sample(self.np_random)
        self._trace = MathTrace(self._settings, self.prover, self.engine.count_tokens, problem, prefix, tokens)
        return self._trace

    def _seeded(self) -> None:
        """Called by `reset` right after `np_random` is (re)seeded, before a problem is drawn with it:
        where a subclass draws what it needs from it at every reset (nothing here)."""
