"""No gold in what a deployable agent decides from (docs/formulation.md §3): every registered agent not
flagged `oracle` acts the same when the gold-derived `info` keys are taken away; the flagged ones read
them; the gold-free confidence is the agreement of the forced answers (math envs) or E[J | obs] (sim)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.agents.heuristics import AnswerWhenConfident, OracleAnswerWhenConfident, gold_free_confidence
from ttc_gym.agents.strategies import OracleStopWhenConfident, StopWhenConfident
from ttc_gym.bench import AGENTS
from ttc_gym.bench.agent_registry import build_agent, is_oracle_agent, parse_agent_spec
from ttc_gym.evaluation import run_rollout
from ttc_gym.metrics import answer_agreement
from tests.envs.test_math_envs import PROBLEM, ScriptedEngine

# Keys of `info` computed from the gold answer or the simulator's hidden state (the envs' specs list them).
GOLD_KEYS = frozenset({"J", "J_exact", "J_prefix_start", "progress", "outcome", "reward", "prover_correct", "gold_answer",
                       "grading_incomplete"})
# Agents too slow to build here, or that need a file.
SLOW = {"ppo", "llm-checkpoint"}
SPEC_ARGS = {"q-learning": ":steps=3000", "double-q-learning": ":steps=3000"}


class WithoutGold:
    """An agent that sees `info` without its gold-derived keys."""

    def __init__(self, agent):
        self.agent = agent

    def reset(self, seed=None):
        self.agent.reset(seed=seed)

    def act(self, obs, info):
        return self.agent.act(obs, {k: v for k, v in info.items() if k not in GOLD_KEYS})


def _env(env_id):
    if env_id == "TTC-Sim-v0":
        return gym.make(env_id, max_episodes=6)
    if env_id == "TTC-Replay-v0":
        return gym.make(env_id, max_episodes=4)
    return gym.make(env_id, engine=ScriptedEngine(), source=[PROBLEM], num_prover_samples=8, max_episodes=4)


def _fits(entry, env_id):
    kind = "text" if env_id == "TTC-Math-v0" else "meta"
    return (entry.envs is None or env_id in entry.envs) and kind in entry.action_kinds and entry.name not in SLOW


CASES = [(name, env_id) for env_id in ("TTC-Sim-v0", "TTC-MathMeta-v0", "TTC-Replay-v0", "TTC-Math-v0")
         for name, entry in AGENTS.items() if _fits(entry, env_id)]


@pytest.mark.parametrize("name, env_id", CASES, ids=[f"{n}@{e}" for n, e in CASES])
def test_only_oracle_agents_read_gold_derived_info(name, env_id):
    env = _env(env_id)
    spec = parse_agent_spec(name + SPEC_ARGS.get(name, ""))
    seeds = range(12) if env_id == "TTC-Sim-v0" else range(2)
    if AGENTS[name].oracle:
        assert AGENTS[name].summary.startswith("ORACLE") and is_oracle_agent(spec.text)
        with pytest.raises(KeyError):
            for seed in seeds:
                run_rollout(env, WithoutGold(build_agent(spec, env)), seed=seed)
        return
    assert not AGENTS[name].summary.startswith("ORACLE") and not is_oracle_agent(spec.text)
    with_gold = [run_rollout(env, build_agent(spec, env), seed=s).actions for s in seeds]
    without = [run_rollout(env, WithoutGold(build_agent(spec, env)), seed=s).actions for s in seeds]
    assert without == with_gold


def test_every_agent_that_reads_j_is_registered_as_an_oracle():
    assert {n for n, e in AGENTS.items() if e.oracle} >= {"oracle-answer-when-confident", "oracle-stop-when-confident"}
    assert not AGENTS["answer-when-confident"].oracle and not AGENTS["stop-when-confident"].oracle
    assert not is_oracle_agent("some.module:factory") and is_oracle_agent("oracle-stop-when-confident:0.5")


def test_answer_agreement_counts_missing_answers_in_k_but_never_as_agreeing():
    assert answer_agreement(["12", "12", "13", ""]) == 0.5
    assert answer_agreement(["7", None, "", "7", "7"]) == 0.6
    assert answer_agreement(["", None]) == 0.0 and answer_agreement([]) == 0.0
    assert answer_agreement(("a",)) == 1.0


def test_gold_free_confidence_uses_the_forced_answers_or_the_belief_never_j():
    env = gym.make("TTC-Sim-v0")
    model = env.unwrapped.model
    info = {"J": 1.0, "prover_answers": ("3", "3", "4", "3")}
    assert gold_free_confidence(None, info) == 0.75
    obs = (2, 1, 0, 2, 3, 2)  # medium, a fresh candidate: 1 - P(slip)
    assert gold_free_confidence(obs, {"J": 0.0}, model) == pytest.approx(1.0 - model.params.slip_prob[1])
    with pytest.raises(TypeError, match=r"needs info\['prover_answers'\].*got no model and info keys \['J'\]"):
        gold_free_confidence(obs, {"J": 1.0})
    with pytest.raises(TypeError, match="model must have expected_j"):
        AnswerWhenConfident(model=object())


def test_answer_when_confident_on_the_sim_verifies_then_switches_when_the_belief_stalls():
    env = gym.make("TTC-Sim-v0")
    agent = AnswerWhenConfident(0.9, patience=2, model=env.unwrapped.model)
    agent.reset()
    # Medium problem, no candidate, no advance: the belief does not rise.
    stuck = [(t, 1, 0, 0, t, 0) for t in range(6)]
    actions = [agent.act(np.array(o), {"episodes_used": o[0]}) for o in stuck]
    assert actions == [0, 0, 2, 0, 1, 0]  # continue, continue, verify; continue, switch; continue
    agent.reset()
    assert agent.act(np.array((0, 0, 0, 1, 1, 2)), {}) == 3  # easy, fresh candidate: 0.95 >= 0.9


def test_the_oracle_variants_stop_on_j_and_the_gold_free_ones_on_agreement():
    # Seven of eight forced answers agree on a wrong answer: J is 1/8, the agreement 7/8.
    info = {"J": 1 / 8, "progress": 0.0, "episodes_used": 1, "prover_answers": ("12",) + ("13",) * 7}
    assert AnswerWhenConfident(0.8).act(None, info) == 3
    assert OracleAnswerWhenConfident(0.8).act(None, info) != 3

    class Llm:
        def reset(self, seed=None):
            pass

        def act(self, obs, info):
            return "I keep going."

    assert "\\boxed{13}" in StopWhenConfident(Llm(), 0.8).act({}, info)
    assert "\\boxed" not in OracleStopWhenConfident(Llm(), 0.8).act({}, info)
