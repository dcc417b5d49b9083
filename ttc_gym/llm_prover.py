"""The LLM prover: J = fraction of K forced answers graded correct (MRT's Monte Carlo estimate).

After the episodes so far, the prover's model is told that time is up and must answer inside
`\\boxed{`; K answers are sampled, graded against the gold answer, and J is the fraction correct.
Each (problem, prefix) is sampled with a seed derived from the prover's own seed and that prefix,
so the same prefix always gets the same answers (common random numbers across agents), and the
result is memoized: a repeated prefix costs nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

from ttc_gym.engines.base import SamplingConfig, generate_per_prompt
from ttc_gym.grading import compare_answers, normalize_answer
from ttc_gym.prompts import PromptTemplate, close_boxed, forced_answer_sampling
from ttc_gym.prover import ProverEstimate, monte_carlo_j
from ttc_gym.seeding import prefix_seed
from ttc_gym.validation import check_float, check_int


class LLMProver:
    """Estimates J for a problem and a prefix of episodes with forced answers from `engine`.

    Args:
        engine: any `ttc_gym.engines.Engine` (may differ from the policy's).
        num_samples: K, forced answers per estimate (default 8, as in MRT).
        temperature: sampling temperature of the forced answers (MRT: about 0.7).
        max_answer_tokens: most tokens of one forced answer.
        template: the prompts (see `ttc_gym.prompts.PromptTemplate`).
        seed: base seed of the prover's sampling.
        cache_size: how many (problem, prefix) estimates are memoized.
    """

    def __init__(
        self,
        engine: Any,
        *,
        num_samples: int = 8,
        temperature: float = 0.7,
        max_answer_tokens: int = 24,
        template: PromptTemplate | None = None,
        seed: int = 0,
        cache_size: int = 4096,
    ):
        self.engine = engine
        self.num_samples = check_int("num_samples (K)", num_samples, minimum=1)
        self.temperature = check_float("prover temperature", temperature, minimum=0.0)
        self.max_answer_tokens = check_int("max_answer_tokens", max_answer_tokens, minimum=1)
        self.template = template or PromptTemplate()
        self.seed = check_int("prover seed", seed)
        self.cache_size = check_int("cache_size", cache_size, minimum=0)
        self._cache: OrderedDict[tuple, ProverEstimate] = OrderedDict()
        self.calls = 0  # (problem, prefix) estimates sampled (cache misses)
        self._grading_incomplete = 0  # forced answers whose grading did not complete

    @property
    def sampling(self) -> SamplingConfig:
        return forced_answer_sampling(self.max_answer_tokens, self.temperature, n=self.num_samples)

    def _key(self, problem: Any, episodes: Sequence[str]) -> tuple:
        return (problem.id, problem.question, problem.answer, tuple(episodes))

    def estimate(self, problem: Any, episodes: Sequence[str]) -> ProverEstimate:
        return self.estimate_many([(problem, episodes)])[0]

    def estimate_many(self, items: Sequence[tuple[Any, Sequence[str]]]) -> list[ProverEstimate]:
        """Estimates for several (problem, episodes) pairs; cached ones cost nothing.

        Every cache miss is sampled in ONE engine call, each with its own seed (derived from the
        prover's seed and its (problem, prefix) as in `estimate`), so a batch gives exactly what
        estimating the items one by one gives (on engines with per-prompt seeds; others get one
        call per miss, see `ttc_gym.engines.base.generate_per_prompt`). A (problem, prefix) that
        occurs twice in `items` is sampled once.
        """
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
            for key, (estimate, incomplete) in zip(missing, self._sample_many(list(missing.values()))):
                found[key] = estimate
                if self.cache_size and not incomplete:  # an unknown grade is never memoized
                    self._cache[key] = estimate
                    if len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
        return [found[key] for key in keys]

    def _sample_many(self, items: list[tuple[Any, tuple[str, ...]]]) -> list[tuple[ProverEstimate, int]]:
        prompts = [self.template.forced_answer_prompt(self.engine, p.question, episodes) for p, episodes in items]
        seeds = [prefix_seed(self.seed, p.id, p.question, *episodes) for p, episodes in items]
        rows = generate_per_prompt(self.engine, prompts, self.sampling, seeds)
        self.calls += len(items)
        return [self._grade(problem, completions) for (problem, _), completions in zip(items, rows)]

    def _grade(self, problem: Any, completions: Sequence[Any]) -> tuple[ProverEstimate, int]:
        """(the estimate, how many of its answers' grading did not complete: counted wrong)."""
        answers = tuple(normalize_answer(close_boxed(c.text)) for c in completions)
        verdicts = [compare_answers(a, problem.answer) if a else False for a in answers]
        incomplete = sum(v is None for v in verdicts)
        self._grading_incomplete += incomplete
        correct = tuple(v is True for v in verdicts)
        estimate = ProverEstimate(j=monte_carlo_j(sum(correct), len(correct)), answers=answers, correct=correct)
        return estimate, incomplete

    @property
    def grading_incomplete(self) -> int:
        """How many forced answers so far (the prover's, and the policy's own when it is another
        engine) had a grading that did not complete (`ttc_gym.grading.compare_answers` said None:
        the grader's worker stalled or died twice). Such an answer counts as wrong in J, and its
        estimate is not memoized: the same prefix is sampled and graded again when asked for."""
        policy = getattr(self, "_policy", None)
        return self._grading_incomplete + (0 if policy is None else policy.grading_incomplete)
