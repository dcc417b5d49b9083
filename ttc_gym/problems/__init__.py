"""Problem sources for the math envs.

- `Problem`: one problem with its gold final answer (frozen, hashable, picklable).
- `ProblemSource`: anything with ``sample(rng) -> Problem``; `ListSource` samples a finite list
  uniformly, `ProceduralSource` generates seeded problems at difficulty levels 1..5.
- `generate_problem(rng, difficulty, family=None)`: one procedural problem.
- `load_problems(path)`: .jsonl / .json / .csv files (GSM8K and MATH formats understood);
  `problems_from_hf(dataset_or_name)`: Hugging Face datasets.
- `make_source(spec)`: "procedural", "procedural:3", "hf:<name>[:split]", a file path, a list of
  Problems; `register_source(name, factory)` adds names.

    >>> import numpy as np
    >>> src = make_source("procedural:1")
    >>> src.sample(np.random.default_rng(0)).difficulty
    1
"""

from ttc_gym.problems.core import ListSource, Problem, ProblemSource
from ttc_gym.problems.loaders import (
    ANSWER_FIELDS,
    QUESTION_FIELDS,
    SUPPORTED_SUFFIXES,
    as_problem,
    load_problems,
    problems_from_hf,
)
from ttc_gym.problems.procedural import (
    DEFAULT_DIFFICULTY,
    FAMILIES,
    FAMILY_LEVELS,
    LEVELS,
    ProceduralSource,
    generate_problem,
)
from ttc_gym.problems.registry import make_source, register_source, source_names

__all__ = [
    "ANSWER_FIELDS",
    "DEFAULT_DIFFICULTY",
    "FAMILIES",
    "FAMILY_LEVELS",
    "LEVELS",
    "ListSource",
    "Problem",
    "ProblemSource",
    "ProceduralSource",
    "QUESTION_FIELDS",
    "SUPPORTED_SUFFIXES",
    "as_problem",
    "generate_problem",
    "load_problems",
    "make_source",
    "problems_from_hf",
    "register_source",
    "source_names",
]
