"""Fixed test-time strategies over the meta-actions (continue / switch / verify / answer), usable on
any env whose actions are `ttc_gym.actions.MetaAction` and whose `info` carries episodes_used, and the
uniformly random agent.

Gold-free by default (docs/formulation.md §3): an agent decides from its observation and the gold-free
parts of `info` (the forced answers, not their grades). `OracleAnswerWhenConfident`, which reads the
prover's J (graded against the gold answer), is an oracle and is named as one: it cannot be deployed.

Each agent follows `ttc_gym.agent.Agent` (`reset(seed=None)` before each problem, `act(obs, info)`).
Each is a frozen dataclass of its settings: their defaults are written once, here, and the bench
factories (`ttc_gym.agents.factories`) take theirs from these classes. Per-problem state, where a
strategy keeps any, is private and cleared by `reset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from ttc_gym.actions import MetaAction
from ttc_gym.agent import problem_seed
from ttc_gym.metrics import answer_agreement
from ttc_gym.validation import check_float, check_int


@dataclass(frozen=True)
class AnswerAfterK:
    """Think for exactly k episodes (continue), then answer."""

    k: int = 3

    def __post_init__(self) -> None:
        check_int("k", self.k, minimum=0)

    def reset(self, seed: int | None = None) -> None:
        """Deterministic and stateless: nothing to reset."""

    def act(self, obs, info: dict) -> int:
        return int(MetaAction.ANSWER if info["episodes_used"] >= self.k else MetaAction.CONTINUE)


def gold_free_confidence(obs: Any, info: dict, model: Any = None) -> float:
    """How sure the reasoner can be, without the gold answer, that an answer forced now is right.

    On an env that reports the prover's forced answers (`info["prover_answers"]`: the math envs), their
    agreement, the share equal to the most common one (`ttc_gym.metrics.answer_agreement`); else,
    given the env's public `model` (TTC-Sim-v0's `env.unwrapped.model`), E[J | observation] under it
    (`SimModel.expected_j`), a function of the observation alone. Never J itself (docs/formulation.md §3).
    """
    answers = info.get("prover_answers") if isinstance(info, dict) else None
    if answers is not None:
        return answer_agreement(answers)
    if model is not None:
        return float(model.expected_j(tuple(int(x) for x in np.asarray(obs).ravel())))
    keys = sorted(info) if isinstance(info, dict) else info
    raise TypeError(
        "a gold-free confidence needs info['prover_answers'] (the math envs) or a model with "
        f"expected_j(obs) (TTC-Sim-v0's env.unwrapped.model); got no model and info keys {keys!r}."
    )


@dataclass(frozen=True)
class AnswerWhenConfident:
    """Continue until a gold-free confidence reaches `threshold`, then answer.

    The confidence is `gold_free_confidence`: the agreement of the prover's forced answers on the math
    envs, E[J | observation] under `model` on TTC-Sim-v0 (the bench passes `env.unwrapped.model`).
    When it has not risen for `patience` episodes in a row, check the answer (verify) once; when it
    stalls again after that check, switch approach (explore). Deployable: it never reads J, progress
    or anything else graded against the gold answer (`OracleAnswerWhenConfident` does).
    """

    threshold: float = 0.9
    patience: int = 2
    model: Any = field(default=None, repr=False, compare=False)
    # [confidence at the last step (None at first), episodes without a rise, checked since the last switch]
    _state: list = field(default_factory=lambda: [None, 0, False], init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_float("threshold", self.threshold, minimum=0.0, maximum=1.0)
        check_int("patience", self.patience, minimum=1)
        if self.model is not None and not callable(getattr(self.model, "expected_j", None)):
            raise TypeError(f"model must have expected_j(obs) (TTC-Sim-v0's env.unwrapped.model), got {self.model!r}.")

    def reset(self, seed: int | None = None) -> None:
        """Deterministic; forgets the last confidence, the stall count and the check."""
        self._state[:] = [None, 0, False]

    def act(self, obs, info: dict) -> int:
        confidence = gold_free_confidence(obs, info, self.model)
        if confidence >= self.threshold:
            return int(MetaAction.ANSWER)
        last, stalled, checked = self._state
        stalled = stalled + 1 if last is not None and confidence <= last else 0
        action = MetaAction.CONTINUE
        if stalled >= self.patience:
            action, stalled = (MetaAction.SWITCH, 0) if checked else (MetaAction.VERIFY, 0)
            checked = not checked
        self._state[:] = [confidence, stalled, checked]
        return int(action)


@dataclass(frozen=True)
class OracleAnswerWhenConfident:
    """ORACLE (reads gold-derived J): continue until the prover's J (from `info`) reaches `threshold`,
    then answer; if J has not moved for `patience` episodes, switch approach (explore) instead.

    J is graded against the gold answer (and on TTC-Sim-v0 computed from the hidden slip), so this
    policy cannot be deployed: it is a gold-informed reference, and bench tables mark it as an oracle
    (docs/formulation.md §3). `AnswerWhenConfident` is its gold-free counterpart.
    """

    threshold: float = 0.9
    patience: int = 2
    _stalled: list = field(default_factory=lambda: [0], init=False, repr=False, compare=False)  # [count]

    def __post_init__(self) -> None:
        check_float("threshold", self.threshold, minimum=0.0, maximum=1.0)
        check_int("patience", self.patience, minimum=1)

    def reset(self, seed: int | None = None) -> None:
        """Deterministic; clears the count of episodes without progress."""
        self._stalled[0] = 0

    def act(self, obs, info: dict) -> int:
        if info["J"] >= self.threshold:
            return int(MetaAction.ANSWER)
        self._stalled[0] = self._stalled[0] + 1 if info.get("progress", 0.0) <= 0 else 0
        if info["episodes_used"] > 0 and self._stalled[0] > self.patience:
            self._stalled[0] = 0
            return int(MetaAction.SWITCH)
        return int(MetaAction.CONTINUE)


@dataclass(frozen=True)
class NeverVerify:
    """TTC-Sim-v0 hand policy: continue; switch after `patience` episodes without progress on the
    current strategy; answer as soon as a candidate answer exists. It never verifies."""

    patience: int = 2

    def __post_init__(self) -> None:
        check_int("patience", self.patience, minimum=1)

    def reset(self, seed: int | None = None) -> None:
        """Deterministic and stateless (it reads everything from the observation)."""

    def act(self, obs, info: dict) -> int:
        # The first-release fields; TTC-Sim-v0 may append `kept_steps` (switch_keep > 0), not needed here.
        _, _, _, steps, attempts, candidate = (int(x) for x in obs[:6])
        if candidate > 0:
            return int(MetaAction.ANSWER)
        if attempts - steps >= self.patience:
            return int(MetaAction.SWITCH)
        return int(MetaAction.CONTINUE)


@dataclass(frozen=True)
class RandomAgent:
    """Uniformly random actions of a Discrete action space.

    `seed` is the base seed: `reset(seed=s)` re-derives the generator from it and s
    (`ttc_gym.agent.problem_seed`), so the actions on a problem depend on that problem's seed only;
    `reset()` (no seed) carries on with the current generator.
    """

    action_space: spaces.Discrete
    seed: int = 0
    _rng: list = field(default_factory=list, init=False, repr=False, compare=False)  # [the generator]

    def __post_init__(self) -> None:
        if not isinstance(self.action_space, spaces.Discrete):
            raise TypeError(f"RandomAgent needs a Discrete action space, got {self.action_space}.")
        check_int("seed", self.seed, minimum=0)
        self._rng.append(np.random.default_rng(self.seed))

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng[0] = np.random.default_rng(problem_seed(self.seed, seed))

    def act(self, obs, info: dict | None = None) -> int:
        return int(self.action_space.start + self._rng[0].integers(self.action_space.n))
