"""A heterogeneous expert for TTC-Sim-v0: on each problem it follows one test-time strategy drawn at
random, so the quality of its traces varies from trace to trace (the "heterogeneous base policy" of
the verifier-free vs verifier-based theory, docs/formulation.md §7). `spread` sets how heterogeneous:
with probability 1 - spread a problem gets the one base heuristic, with probability `spread` a
strategy drawn from the mixture; spread 0 is a single heuristic, 1 the full mixture.

Gold-free (docs/formulation.md §3): every strategy decides from its observation and the gold-free
parts of `info` (the episode count), never from J, progress or the outcome.

* base: `NeverVerify(2)`: continue; switch after 2 episodes without progress; answer at the first
  candidate.
* mixture (each kind with probability 1/3, its parameters drawn too):
  `AnswerAfterK(k)`, k uniform in 1..H: thinks k episodes on the first strategy, never switches;
  `NeverVerify(patience)`, patience in {1, 2, 3};
  `AnswerWhenConfident(threshold, patience)`, threshold in {0.9, 0.99}, patience in {1, 2}: answers
  once E[J | observation] under the env's public model (`env.unwrapped.model`, gold-free) reaches
  the threshold, checks then switches when it stalls (needs `model`).

The strong-weak expert (`mixture="strong-weak"`) varies heterogeneity at a *fixed mean accuracy*,
as the verifier-free vs verifier-based theory asks (its heterogeneity is the spread of trace quality,
not a change of the expert's skill): with probability 1 - spread the base heuristic, with probability
`spread` either the accuracy-optimal planner over the public model (`AccuracyOracleAgent`: a DP
over observations, gold-free despite its name; its accuracy is J*_H) with probability `strong_share`,
or `AnswerAfterK(1)` (answers after one episode). `calibrated_strong_share` picks the share that
makes the strong-weak mixture as accurate as the base heuristic, so the mean accuracy does not move
with the spread. Ours: the sources give no such expert; it is built to isolate heterogeneity.

Until this version the third kind was `OracleAnswerWhenConfident`, which reads the prover's J from
`info` (gold-derived): that expert was an oracle.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ttc_gym.agents.heuristics import AnswerAfterK, AnswerWhenConfident, NeverVerify
from ttc_gym.agents.oracle import AccuracyOracleAgent
from ttc_gym.envs.sim_model import OBS_FIELDS, PARAMETER_NAMES
from ttc_gym.validation import check_float, check_int, unknown_name_error

STRATEGIES = ("answer_after_k", "never_verify", "answer_when_confident")
BASE_STRATEGY = "never_verify(2)"
MIXTURES = ("heuristics", "strong-weak")
CALIBRATION_SEED = 2 * 10**9  # calibration problems: seeds apart from training (< 2**30) and evaluation (10**9 + i)


class _BaseFields:
    """Shows a heuristic the first-release observation fields only (OBS_FIELDS), not the `kept_steps`
    field TTC-Sim-v0 appends when `switch_keep` > 0: the expert is defined on those six fields (the
    heuristics themselves accept the longer observation)."""

    def __init__(self, agent: Any):
        self.agent = agent

    def reset(self, seed: int | None = None) -> None:
        self.agent.reset(seed)

    def act(self, obs, info: dict) -> int:
        return self.agent.act(np.asarray(obs)[: len(OBS_FIELDS)], info)

    def __repr__(self) -> str:
        return repr(self.agent)


class HeterogeneousExpert:
    """Draws one gold-free heuristic agent per problem from an explicit seed.

    Args:
        max_episodes: the env's budget H (the range of AnswerAfterK's k).
        seed: seeds the draws.
        spread: probability that a problem's strategy is drawn from the mixture instead of being the
            base heuristic (0: one heuristic; 1: the full mixture).
        model: the env's public model (`env.unwrapped.model`), needed by `AnswerWhenConfident` and
            the planner when spread > 0.
        mixture: "heuristics" (the three gold-free heuristic kinds) or "strong-weak" (the planner or
            AnswerAfterK(1); see the module docstring).
        strong_share: "strong-weak" only: the planner's share of the mixture (required there; see
            `calibrated_strong_share`).
    """

    def __init__(self, max_episodes: int, seed: int = 0, spread: float = 1.0, model: Any = None,
                 mixture: str = "heuristics", strong_share: float | None = None):
        self.max_episodes = check_int("max_episodes", max_episodes, minimum=1)
        self.spread = check_float("spread", spread, minimum=0.0, maximum=1.0)
        if mixture not in MIXTURES:
            raise unknown_name_error("mixture", mixture, MIXTURES)
        self.mixture = mixture
        if mixture == "strong-weak":
            if strong_share is None:
                raise ValueError("mixture 'strong-weak' needs strong_share (a probability; calibrated_strong_share "
                                 "computes the one that keeps the base heuristic's accuracy).")
            check_float("strong_share", strong_share, minimum=0.0, maximum=1.0)
        elif strong_share is not None:
            raise ValueError(f"strong_share applies to mixture 'strong-weak' only, got it with mixture {mixture!r}.")
        self.strong_share = strong_share
        if self.spread > 0 and not callable(getattr(model, "expected_j", None)):
            raise TypeError(
                "HeterogeneousExpert with spread > 0 needs the env's public model (env.unwrapped.model, "
                f"with expected_j) for its gold-free confidence, got {model!r}."
            )
        self.model = model
        self._rng = np.random.default_rng(seed)
        self._planner = AccuracyOracleAgent(model) if mixture == "strong-weak" and self.spread > 0 else None

    def draw(self):
        rng = self._rng
        mixed = rng.random() < self.spread
        kind = STRATEGIES[int(rng.integers(len(STRATEGIES)))]
        if not mixed:
            agent = NeverVerify(2)
        elif self.mixture == "strong-weak":
            if rng.random() < self.strong_share:  # the planner reads the env's whole observation (its model's)
                self._planner.reset()
                return self._planner
            agent = AnswerAfterK(1)
        elif kind == "answer_after_k":
            agent = AnswerAfterK(int(rng.integers(1, self.max_episodes + 1)))
        elif kind == "never_verify":
            agent = NeverVerify(int(rng.integers(1, 4)))
        else:
            agent = AnswerWhenConfident(float(rng.choice([0.9, 0.99])), int(rng.integers(1, 3)), model=self.model)
        agent = _BaseFields(agent)
        agent.reset()
        return agent

    def agents(self, n: int) -> list:
        """One freshly drawn agent per problem of a batch of n."""
        return [self.draw() for _ in range(n)]


def calibrated_strong_share(model: Any, problems: int = 20000, seed: int = 0) -> dict:
    """The planner's share w of the strong-weak mixture that makes it as accurate as the base
    heuristic: w = (acc_base - acc_weak) / (acc_strong - acc_weak), clipped to [0, 1]. acc_strong is
    exact (J*_H of the planner's DP); acc_base and acc_weak are Monte Carlo estimates on `problems`
    problems of the env `model` describes (fixed seeds, CALIBRATION_SEED + seed; standard error <= 0.5 / sqrt(problems)).
    Returns {"strong_share", "acc_base", "acc_weak", "acc_strong"}."""
    from ttc_gym.agents.oracle import j_star_curve
    from ttc_gym.training.sim_rollout import AgentsActor, make_vector_env, rollout_vector

    params = model.params
    env_kwargs = {name: getattr(params, name) for name in PARAMETER_NAMES}  # the env `model` describes, every knob

    def accuracy(make) -> float:
        agents = [_BaseFields(make()) for _ in range(problems)]
        for agent in agents:
            agent.reset()
        traces = rollout_vector(make_vector_env(problems, **env_kwargs), AgentsActor(agents), CALIBRATION_SEED + seed)
        return float(np.mean([t.outcome for t in traces]))

    acc_base, acc_weak = accuracy(lambda: NeverVerify(2)), accuracy(lambda: AnswerAfterK(1))
    acc_strong = float(j_star_curve(model)[-1])
    share = float(np.clip((acc_base - acc_weak) / max(acc_strong - acc_weak, 1e-9), 0.0, 1.0))
    return {"strong_share": share, "acc_base": acc_base, "acc_weak": acc_weak, "acc_strong": acc_strong}
