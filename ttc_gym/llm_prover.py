"""The LLM prover: J = fraction of K forced answers graded correct (MRT's Monte Carlo estimate).

After the episodes so far, the prover's model is told that time is up and must answer now (inside
`\\boxed{`, or in a short final solution after the closed thinking block: the template's
`forced_answer` form, `ttc_gym.prompts.PromptTemplate`); K answers are sampled, graded against the
gold answer, and J is the fraction correct (docs/formulation.md §2). Each (problem, prefix) is
sampled with a seed derived from the prover's own seed and that prefix, so the same prefix always
gets the same answers (common random numbers across agents), and the result is memoized: a repeated
prefix costs nothing — as long as the prover's weights have not changed. The memo is keyed by the
engine's weights version (`engine_weights_version`): when the prover is the policy being trained
(MRT's online setting), every optimizer step makes every earlier estimate stale, and J is estimated
anew.

The reasoner's own final answer when it must answer (`policy_answers_many`) is its forced answer:
the prover's first sample when the prover is the policy, else one forced answer sampled from the
policy's engine.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Sequence

from ttc_gym.engines.base import SamplingConfig, generate_per_prompt
from ttc_gym.grading import normalize_answer
from ttc_gym.problems.graders import grade_answer
from ttc_gym.prompts import PromptTemplate
from ttc_gym.prover import PolicyAnswer, ProverEstimate, monte_carlo_j
from ttc_gym.seeding import prefix_seed
from ttc_gym.validation import check_int, check_temperature


def engine_weights_version(engine: Any) -> Hashable:
    """A value that changes whenever `engine`'s weights change: the engine's own `weights_version`
    when it exposes one; else, for an engine with a torch `model` (e.g. `TransformersEngine`, whose
    model a trainer updates in place), the (identity, in-place version counter) of every parameter
    — an optimizer step, `load_weights` or `load_state_dict` changes it, as does replacing or adding
    parameters (LoRA adapters); else None (an engine whose weights cannot change under us)."""
    version = getattr(engine, "weights_version", None)
    if version is not None:
        return version
    model = getattr(engine, "model", None)
    parameters = getattr(model, "parameters", None)
    if not callable(parameters):
        return None
    try:
        return tuple((id(p), p._version) for p in parameters())
    except (AttributeError, TypeError):
        return None


class LLMProver:
    """Estimates J for a problem and a prefix of episodes with forced answers from `engine`.

    Args:
        engine: any `ttc_gym.engines.Engine` (the policy's own, or another).
        num_samples: K, forced answers per estimate (default 8, as in MRT).
        temperature: sampling temperature of the forced answers (MRT: about 0.7).
        max_answer_tokens: most tokens of one forced answer (None: the template's form's default,
            `PromptTemplate.answer_tokens`: 24 for a boxed answer, 1024 for a final solution).
        template: the prompts (see `ttc_gym.prompts.PromptTemplate`).
        seed: base seed of the prover's sampling.
        cache_size: how many (problem, prefix) estimates are memoized.
        policy_engine: the engine of the reasoner whose own forced answer is committed when it must
            answer (`policy_answers_many`); None or `engine` itself: the prover is the policy.

    `calls` counts the (problem, prefix) estimates sampled (cache misses); `weights_version` counts
    how often the engine's weights were seen to change (`engine_weights_version`; each time the memo
    is dropped, and it is part of every memo key: an estimate made with other weights is never served).
    """

    def __init__(
        self,
        engine: Any,
        *,
        num_samples: int = 8,
        temperature: float = 0.7,
        max_answer_tokens: int | None = None,
        template: PromptTemplate | None = None,
        seed: int = 0,
        cache_size: int = 4096,
        policy_engine: Any = None,
    ):
        self.engine = engine
        self.num_samples = check_int("num_samples (K)", num_samples, minimum=1)
        self.temperature = check_temperature("prover temperature", temperature)
        if template is not None and not isinstance(template, PromptTemplate):
            raise TypeError(f"template must be a ttc_gym.prompts.PromptTemplate, got {template!r:.80}.")
        self.template = template or PromptTemplate()
        self.max_answer_tokens = check_int(
            "max_answer_tokens", self.template.answer_tokens if max_answer_tokens is None else max_answer_tokens,
            minimum=1)
        self.seed = check_int("prover seed", seed)
        self.cache_size = check_int("cache_size", cache_size, minimum=0)
        self._cache: OrderedDict[tuple, ProverEstimate] = OrderedDict()
        self._weights_seen: Hashable = engine_weights_version(engine)
        self.weights_version = 0
        self.calls = 0  # (problem, prefix) estimates sampled (cache misses)
        self._grading_incomplete = 0  # forced answers whose grading did not complete
        # The policy's own forced answers, when the policy is another engine: one forced answer
        # per (problem, prefix), sampled and graded like the prover's (own seeds, own memo).
        self._policy = None if policy_engine is None or policy_engine is engine else LLMProver(
            policy_engine, num_samples=1, temperature=temperature, max_answer_tokens=self.max_answer_tokens,
            template=self.template, seed=prefix_seed(self.seed, "policy forced answer"), cache_size=cache_size)

    @property
    def policy_engine(self) -> Any:
        """The engine whose forced answer is the reasoner's own (`engine` when the prover is the policy)."""
        return self.engine if self._policy is None else self._policy.engine

    @property
    def is_policy(self) -> bool:
        """Whether the prover is the policy itself (then its first sample is the policy's forced answer)."""
        return self._policy is None

    @property
    def sampling(self) -> SamplingConfig:
        return self.template.answer_sampling(self.max_answer_tokens, self.temperature, n=self.num_samples)

    def _check_weights(self) -> None:
        """Drop the memo when the engine's weights changed since the last estimate."""
        version = engine_weights_version(self.engine)
        if version != self._weights_seen:
            self._weights_seen = version
            self.weights_version += 1
            self._cache.clear()

    def _key(self, problem: Any, episodes: Sequence[str]) -> tuple:
        return (self.weights_version, problem.id, problem.question, problem.answer, tuple(episodes))

    def estimate(self, problem: Any, episodes: Sequence[str]) -> ProverEstimate:
        return self.estimate_many([(problem, episodes)])[0]

    def estimate_many(self, items: Sequence[tuple[Any, Sequence[str]]]) -> list[ProverEstimate]:
        """Estimates for several (problem, episodes) pairs; cached ones cost nothing.

        Every cache miss is sampled in ONE engine call, each with its own seed (derived from the
        prover's seed and its (problem, prefix) as in `estimate`), so a batch gives exactly what
        estimating the items one by one gives (on engines with per-prompt seeds; others get one
        call per miss, see `ttc_gym.engines.base.generate_per_prompt`). A (problem, prefix) that
        occurs twice in `items` is sampled once. Estimates are served from the memo only while the
        engine's weights are those they were made with (`engine_weights_version`).
        """
        self._check_weights()
        items = [(problem, tuple(episodes)) for problem, episodes in items]
        keys = [self._key(problem, episodes) for problem, episodes in items]
        found: dict[tuple, ProverEstimate] = {}
        missing: dict[tuple, tuple[Any, tuple[str, ...]]] = {}
        for key, item in zip(keys, items):
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                found[key] = hit
            elif key not in missing:
                missing[key] = item
        if missing:
            for key, estimate in zip(missing, self._sample_many(list(missing.values()))):
                found[key] = estimate
                if self.cache_size and not estimate.incomplete:  # an unknown grade is never memoized
                    self._cache[key] = estimate
                    if len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
        return [found[key] for key in keys]

    def _sample_many(self, items: list[tuple[Any, tuple[str, ...]]]) -> list[ProverEstimate]:
        prompts = [self.template.forced_answer_prompt(self.engine, p.question, episodes) for p, episodes in items]
        seeds = [prefix_seed(self.seed, p.id, p.question, *episodes) for p, episodes in items]
        rows = generate_per_prompt(self.engine, prompts, self.sampling, seeds)
        self.calls += len(items)
        return [self._grade(problem, completions) for (problem, _), completions in zip(items, rows)]

    def _grade(self, problem: Any, completions: Sequence[Any]) -> ProverEstimate:
        """The estimate of K graded forced answers (`incomplete`: those the grader could not decide).
        Each answer is graded by the problem's own grader when it names one (`problems.graders`)."""
        stated = [self.template.answer_of(c.text) for c in completions]
        answers = tuple(normalize_answer(a) for a in stated)
        verdicts = [grade_answer(a, problem) for a in stated]
        incomplete = sum(v is None for v in verdicts)
        self._grading_incomplete += incomplete
        correct = tuple(v is True for v in verdicts)
        answer_tokens = sum(c.num_tokens for c in completions) / len(completions) if completions else 0.0
        return ProverEstimate(j=monte_carlo_j(sum(correct), len(correct)), answers=answers, correct=correct,
                              answer_tokens=float(answer_tokens), incomplete=incomplete)

    def grade_answer(self, problem: Any, answer: str) -> bool | None:
        """The verdict on an answer the reasoner committed (e.g. a `\\boxed{}` in its episode): True,
        False, or None when the grader could not decide (the caller counts it wrong and flags it).
        The one place besides the forced answers where the gold answer is compared. The answer is
        compared as written, not as its `normalize_answer` key: a key is lossy (it drops a trailing
        `= x`, words after a number), and the grader applies its own conventions to the text; a
        problem that names its own grader is graded by it (`problems.graders`)."""
        return grade_answer(answer, problem, as_written=True)

    @property
    def grading_incomplete(self) -> int:
        """How many forced answers so far (the prover's, and the policy's own when it is another
        engine) had a grading that did not complete (`ttc_gym.grading.compare_answers` said None:
        the grader's worker stalled or died twice). Such an answer counts as wrong in J, and its
        estimate is not memoized: the same prefix is sampled and graded again when asked for."""
        return self._grading_incomplete + (0 if self._policy is None else self._policy.grading_incomplete)

    def policy_answers_many(self, items: Sequence[tuple[Any, Sequence[str]]]) -> list[PolicyAnswer]:
        """The policy's own forced answer for each (problem, episodes), graded (`PolicyAnswer`): the
        prover's first sample when the prover is the policy (no extra call: the estimate is
        memoized), else one forced answer sampled from `policy_engine` with the same prompt (all in
        one engine call, memoized the same way)."""
        if self._policy is None:
            return [PolicyAnswer(e.answers[0], e.correct[0]) for e in self.estimate_many(items)]
        return [PolicyAnswer(e.answers[0], e.correct[0], e.incomplete) for e in self._policy.estimate_many(items)]

    def policy_answer(self, problem: Any, episodes: Sequence[str]) -> PolicyAnswer:
        """`policy_answers_many` for one (problem, episodes)."""
        return self.policy_answers_many([(problem, episodes)])[0]
