"""The knobs of TTC-Sim-v0 beyond its first release (ttc_gym.envs.sim_model.SimParams): each changes
the dynamics it claims to, is off by default, and the DP oracle stays exact under it (its value vs a
Monte Carlo of its own policy, within 3 standard errors, on the single and on the vector env)."""

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.actions import MetaAction
from ttc_gym.agents.oracle import AccuracyOracleAgent, OracleAgent, j_star_curve
from ttc_gym.envs.sim_model import FRESH_CANDIDATE, SimParams
from ttc_gym.metrics import mean_and_stderr

C, S, V, A = (int(a) for a in (MetaAction.CONTINUE, MetaAction.SWITCH, MetaAction.VERIFY, MetaAction.ANSWER))

KNOBS = {
    "switch_keep": {"switch_keep": 0.5, "heterogeneity": 0.95},
    "overthink": {"overthink": 0.3, "overthink_slip": 0.9},
    "tokens_per_action": {"tokens_per_action": (256, 128, 64)},
    "observe_episodes": {"observe_episodes": False},
    "no_forced_answer": {"answer_on_truncation": False},
    "answer_mismatch": {"answer_mismatch": 0.3},
    "rule_out": {"rule_out": 0.5, "heterogeneity": 0.95, "switch_keep": 0.5},
    "all": {"switch_keep": 1.0, "overthink": 0.2, "observe_episodes": False, "answer_on_truncation": False,
            "answer_mismatch": 0.2, "tokens_per_action": (300, 100, 50), "rule_out": 0.4},
}


def run(env, policy, seed):
    """One problem; policy(obs, info) -> action. Returns the list of (action, info) and the return."""
    obs, info = env.reset(seed=seed)
    steps, total, done = [], 0.0, False
    while not done:
        a = policy(obs, info)
        obs, r, term, trunc, info = env.step(a)
        steps.append((a, obs, info))
        total += r
        done = term or trunc
    return steps, total


def keep_continuing(obs, info):
    return C


def test_defaults_are_the_first_release():
    p = SimParams()
    assert (p.switch_keep, p.overthink, p.tokens_per_action, p.observe_episodes, p.answer_mismatch, p.rule_out) == (
        0.0, 0.0, None, True, 0.0, 0.0)
    assert p.obs_fields == ("episodes_used", "difficulty", "strategy", "steps_done", "attempts", "candidate")
    assert p.obs_nvec.tolist() == [11, 3, 3, 4, 11, 13]


@pytest.mark.parametrize("bad", [{"switch_keep": 1.5}, {"overthink": -0.1}, {"tokens_per_action": (1, 2)},
                                 {"tokens_per_action": (0, 1, 1)}, {"observe_episodes": 1}, {"answer_mismatch": 2},
                                 {"rule_out": 1.5}, {"rule_out": -0.1}])
def test_bad_knob_values_are_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        gym.make("TTC-Sim-v0", **bad)


def test_overthinking_makes_j_fall_on_continue_steps_only_when_on():
    def drops(**kw):
        """Continue steps taken while holding a candidate on which J fell."""
        env = gym.make("TTC-Sim-v0", max_episodes=10, difficulty_probs=(1.0, 0.0, 0.0), **kw)
        n = 0
        for seed in range(300):
            steps = run(env, keep_continuing, seed)[0]
            for (_, before, _), (a, _, info) in zip(steps, steps[1:]):
                n += a == C and before[5] > 0 and info["progress"] < -1e-9
        return n
    assert drops() == 0
    assert drops(overthink=0.3) > 20


def test_overthinking_lowers_expected_j_of_a_checked_candidate():
    model = gym.make("TTC-Sim-v0", overthink=0.3).unwrapped.model
    obs = (3, 1, 0, 2, 2, model.params.verified_code(FRESH_CANDIDATE))  # a medium problem's candidate, checked once
    assert model.expected_j(obs) > 0.9
    after = sum(b.prob * b.expected_j for b in model.transitions(obs, C))
    assert after < model.expected_j(obs) - 0.05
    plain = gym.make("TTC-Sim-v0").unwrapped.model
    obs = (3, 1, 0, 2, 2, FRESH_CANDIDATE + 1)
    assert sum(b.prob * b.expected_j for b in plain.transitions(obs, C)) == pytest.approx(plain.expected_j(obs))


def test_switch_keep_keeps_part_of_the_work():
    def j_after_switch(**kw):
        env = gym.make("TTC-Sim-v0", difficulty_probs=(0.0, 0.0, 1.0), heterogeneity=0.0, **kw)
        js = []
        for seed in range(200):
            obs, info = env.reset(seed=seed)
            for _ in range(4):
                obs, _, _, _, info = env.step(C)
            if obs[3] == 2:  # two of the three steps done on the first strategy
                obs, _, _, _, info = env.step(S)
                js.append((info["J"], int(obs[3])))
        return js
    plain = j_after_switch()
    assert plain and all(j == pytest.approx(0.1) and steps == 0 for j, steps in plain)
    kept = j_after_switch(switch_keep=0.5)
    assert kept and all(steps == 1 for _, steps in kept) and all(j > 0.1 for j, _ in kept)


def test_rule_out_makes_a_switch_from_a_dead_end_raise_j():
    """Informative exploration: abandoning a dead end (hidden) rules out wrong answers, so J rises by
    exactly guess_j(1) - guess_j(0) and the observed count goes up; abandoning a working strategy rules
    out nothing; off by default, a switch never raises J."""
    def switches(**kw):
        env = gym.make("TTC-Sim-v0", difficulty_probs=(0.0, 0.0, 1.0), heterogeneity=0.95, **kw)
        out = []
        for seed in range(300):
            obs, info = env.reset(seed=seed)
            working = bool(env.unwrapped._working[0])  # hidden state, read by the test only
            j0 = info["J"]
            obs, _, _, _, info = env.step(S)
            out.append((working, info["J"] - j0, obs))
        return out
    plain = switches()
    assert all(dj == pytest.approx(0.0) and len(obs) == 6 for _, dj, obs in plain)
    ruled = switches(rule_out=0.5)
    p = SimParams(rule_out=0.5)
    dead = [(dj, obs) for working, dj, obs in ruled if not working]
    alive = [(dj, obs) for working, dj, obs in ruled if working]
    assert dead and alive
    assert all(dj == pytest.approx(p.guess_j(1) - p.guess_j(0)) and obs[-1] == 1 for dj, obs in dead)
    assert all(dj == pytest.approx(0.0) and obs[-1] == 0 for dj, obs in alive)
    assert p.guess_j(0) == pytest.approx(0.1) and p.guess_j(2) == pytest.approx(1 - 0.9 * 0.25)
    assert p.obs_fields[-1] == "ruled_out" and p.obs_nvec[-1] == p.num_strategies


def test_rule_out_vector_env_counts_dead_ends_as_the_single_env():
    kw = dict(difficulty_probs=(0.0, 0.0, 1.0), heterogeneity=0.95, rule_out=0.5, switch_keep=0.5)
    venv = gym.make_vec("TTC-Sim-v0", num_envs=64, vectorization_mode="vector_entry_point", **kw)
    obs, info = venv.reset(seed=3)
    working = venv.unwrapped._working[:, 0].copy()
    obs, _, _, _, info = venv.step(np.full(64, S))
    assert ((obs[:, -1] == 1) == ~working).all() and obs[:, 2].tolist() == [1] * 64
    p = SimParams(**{k: v for k, v in kw.items() if k != "difficulty_probs"})
    assert np.allclose(info["J_exact"], np.where(working, p.guess_j(0), p.guess_j(1)))


def test_token_lengths_differ_by_action_and_are_sampled():
    env = gym.make("TTC-Sim-v0", tokens_per_action=(256, 128, 64), max_episodes=30)
    lengths = {C: set(), V: set()}
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        before = 0
        for a in (C, V, C, V):
            obs, _, term, trunc, info = env.step(a)
            lengths[a].add(info["tokens_used"] - before)
            before = info["tokens_used"]
    assert min(lengths[C]) >= 128 and max(lengths[C]) <= 384 and len(lengths[C]) > 5
    assert min(lengths[V]) >= 32 and max(lengths[V]) <= 96
    assert np.mean(sorted(lengths[C])) > np.mean(sorted(lengths[V]))
    plain = gym.make("TTC-Sim-v0")
    plain.reset(seed=0)
    assert plain.step(C)[4]["tokens_used"] == 256


def test_overthinking_codes_do_not_depend_on_the_budget():
    short, long = (SimParams(overthink=0.2, max_episodes=h) for h in (4, 16))
    for code in (FRESH_CANDIDATE, short.revised_code, short.verified_code(short.revised_code)):
        assert short.slip_prior(code) == long.slip_prior(code)
    assert short.slip_prior(short.verified_code(short.revised_code)) == (True, 1)


def test_vector_env_samples_token_lengths_and_keeps_work_on_a_switch():
    n = 64
    venv = gym.make_vec("TTC-Sim-v0", num_envs=n, vectorization_mode="vector_entry_point", max_episodes=20,
                        tokens_per_action=(256, 128, 64), switch_keep=1.0, difficulty_probs=(0.0, 0.0, 1.0))
    obs, info = venv.reset(seed=3)
    obs, _, _, _, info = venv.step(np.full(n, C, dtype=np.int64))
    first = np.asarray(info["tokens_used"])
    assert first.min() >= 128 and first.max() <= 384 and np.unique(first).size > 10
    for _ in range(3):
        obs, _, _, _, info = venv.step(np.full(n, C, dtype=np.int64))
    steps_before = obs[:, 3].copy()
    obs, _, _, _, info = venv.step(np.full(n, S, dtype=np.int64))
    kept = np.minimum(steps_before, 2)  # switch_keep=1 keeps every step, at most steps_needed - 1 (hard: 3)
    assert (obs[:, 3] == kept).all() and (obs[:, 6] == kept).all() and (obs[:, 2] == 1).all()


def test_hidden_episode_count():
    env = gym.make("TTC-Sim-v0", observe_episodes=False, max_episodes=4)
    steps, _ = run(env, keep_continuing, 0)
    assert all(o[0] == 0 for _, o, _ in steps) and steps[-1][2]["episodes_used"] == 4
    assert env.observation_space.nvec[0] == 1
    oracle = OracleAgent.from_env(env)
    obs, info = env.reset(seed=0)
    with pytest.raises(ValueError, match="episodes_used"):
        oracle.act(obs)  # the plan needs the hidden count: never a silent plan at t = 0
    assert oracle.act(obs, info) in (C, S, V, A)
    venv = gym.make_vec("TTC-Sim-v0", num_envs=8, vectorization_mode="vector_entry_point", observe_episodes=False)
    obs, _ = venv.reset(seed=0)
    obs, *_ = venv.step(np.zeros(8, dtype=np.int64))
    assert (obs[:, 0] == 0).all()


def test_no_forced_answer_means_unanswered_is_wrong():
    env = gym.make("TTC-Sim-v0", answer_on_truncation=False, difficulty_probs=(1.0, 0.0, 0.0), max_episodes=3)
    for seed in range(50):
        steps, _ = run(env, keep_continuing, seed)
        a, _, info = steps[-1]
        assert info["outcome"] == 0.0 and not info["answered"]


def test_answer_mismatch_lowers_accuracy_not_j():
    def stats(**kw):
        env = gym.make("TTC-Sim-v0", difficulty_probs=(1.0, 0.0, 0.0), heterogeneity=0.0, **kw)
        out, js = [], []
        for seed in range(2000):
            env.reset(seed=seed)
            for _ in range(3):
                *_, info = env.step(C)
            *_, info = env.step(A)
            out.append(info["outcome"])
            js.append(info["J_exact"])
        return np.mean(out), np.mean(js)
    acc0, j0 = stats()
    acc1, j1 = stats(answer_mismatch=0.5)
    assert j0 == pytest.approx(j1, abs=0.03)
    assert acc1 < acc0 - 0.2


@pytest.mark.parametrize("name", sorted(KNOBS))
def test_dp_oracle_is_exact_under_every_knob(name):
    kw = {"max_episodes": 6, **KNOBS[name]}
    env = gym.make("TTC-Sim-v0", **kw)
    oracle = OracleAgent.from_env(env)
    returns, correct = [], []
    for seed in range(3000):
        steps, total = run(env, oracle.act, seed)
        returns.append(total)
        correct.append(steps[-1][2]["outcome"])
    mean, se = mean_and_stderr(returns)
    assert abs(mean - oracle.expected_return) < 3 * se, (mean, se, oracle.expected_return)
    mean, se = mean_and_stderr(correct)
    assert abs(mean - oracle.expected_accuracy()) < 3 * se, (mean, se, oracle.expected_accuracy())
    # The vector env has the same dynamics.
    n = 256
    venv = gym.make_vec("TTC-Sim-v0", num_envs=n, vectorization_mode="vector_entry_point", **kw)
    obs, info = venv.reset(seed=1)
    running, vreturns = np.zeros(n), []
    while len(vreturns) < 3000:
        acts = np.array([oracle.act(obs[k], {"episodes_used": info["episodes_used"][k]}) for k in range(n)])
        obs, r, term, trunc, info = venv.step(acts)
        running += r
        done = term | trunc
        vreturns += running[done].tolist()
        running[done] = 0.0
    mean, se = mean_and_stderr(vreturns)
    assert abs(mean - oracle.expected_return) < 3 * se, (mean, se, oracle.expected_return)


@pytest.mark.parametrize("name", ["overthink", "answer_mismatch", "no_forced_answer"])
def test_accuracy_oracle_reaches_j_star_h(name):
    kw = {"max_episodes": 5, **KNOBS[name]}
    env = gym.make("TTC-Sim-v0", **kw)
    agent = AccuracyOracleAgent.from_env(env)
    star = j_star_curve(agent.model)
    assert np.all(np.diff(star) >= -1e-12)
    correct = [run(env, agent.act, seed)[0][-1][2]["outcome"] for seed in range(3000)]
    mean, se = mean_and_stderr(correct)
    assert abs(mean - star[-1]) < 3 * se, (mean, se, star[-1])
