"""The Agent protocol: what `ttc_gym.evaluation` and the benchmark (`ttc_gym.bench`) call on an agent.

An agent answers `act(obs, info) -> action` at each step of the env, one reasoning episode per step,
and is told `reset(seed=...)` before each problem with that problem's seed. A seed has one meaning:
a stochastic agent re-derives its randomness from its own base seed (a constructor argument) and
the problem's seed (`problem_seed`), so the actions on problem i do not depend on which problems came
before it: problem i is reproducible on its own, and a resumed benchmark equals an uninterrupted one.
`reset(seed=None)` starts a problem without reseeding (the agent's randomness carries on), like
Gymnasium's `env.reset(seed=None)`. A deterministic agent's reset ignores the seed.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ttc_gym.validation import check_int


@runtime_checkable
class Agent(Protocol):
    """Anything with these two methods is an agent."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new problem; `seed` is that problem's seed (see the module docstring)."""

    def act(self, obs: Any, info: dict) -> Any:
        """The action for this step, from the observation and the env's `info`."""


def problem_seed(base_seed: int, seed: int) -> int:
    """The seed an agent with base seed `base_seed` draws from on the problem with seed `seed`: an integer
    in [0, 2**32) (what every seeded library accepts) mixed from both by numpy's `SeedSequence`, stable
    across processes and platforms."""
    base_seed, seed = check_int("base_seed", base_seed, minimum=0), check_int("seed", seed, minimum=0)
    return int(np.random.SeedSequence([base_seed, seed]).generate_state(1, np.uint32)[0])


def reset_agent(agent: Any, seed: int | None) -> None:
    """`agent.reset(seed=seed)`, as the evaluation loop calls it before each problem.

    Agents that only have `act` are accepted (they keep no per-problem state), and so is a `reset()`
    that takes no seed (an agent written before this protocol: it is reset, not reseeded).
    """
    reset = getattr(agent, "reset", None)
    if reset is None:
        return
    if not callable(reset):
        raise TypeError(f"agent {type(agent).__name__}.reset must be a method reset(seed=None), got {reset!r}.")
    if _takes_seed(reset):
        reset(seed=seed)
    else:
        reset()


def _takes_seed(method: Any) -> bool:
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): call it as the protocol says
        return True
    return any(p.name == "seed" or p.kind == p.VAR_KEYWORD for p in params)
