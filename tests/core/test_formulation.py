"""The formulation pinned on TTC-Sim-v0 (telescoping progress, reward composition, budgets), and
each formula's one function (docs/formulation.md): the reward, progress, the Monte Carlo J, the
simulator's J, the advantage dispatch, seeds from text and the brace scanner."""

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401  (registers the envs)
from ttc_gym.training import algorithms as alg
from ttc_gym.answer_extraction import MAX_BRACE_DEPTH, closing_brace, extract_boxed, first_box_command
from ttc_gym.budget import Budget
from ttc_gym.envs.sim_model import NO_CANDIDATE, SimParams
from ttc_gym.prover import monte_carlo_j, simulated_monte_carlo_j
from ttc_gym.rewards import ProgressTracker, compose_reward, j_curve_from_progress, progress_between
from ttc_gym.seeding import prefix_seed, text_seed


def rollout(env, seed, policy_rng):
    obs, info = env.reset(seed=seed)
    infos, rewards = [info], []
    done = False
    while not done:
        obs, r, term, trunc, info = env.step(int(policy_rng.integers(4)))
        infos.append(info)
        rewards.append(r)
        done = term or trunc
    return infos, rewards, term, trunc


@pytest.mark.parametrize("prover_samples", [None, 4])
@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.5])
def test_progress_telescopes_and_reward_composes(prover_samples, alpha):
    env = gym.make("TTC-Sim-v0", alpha=alpha, prover_samples=prover_samples)
    rng = np.random.default_rng(0)
    for seed in range(200):
        infos, rewards, _, _ = rollout(env, seed, rng)
        progress = sum(i["progress"] for i in infos[1:])
        j0, j_final = infos[0]["J"], infos[-1]["J"]
        # Exactly for the exact prover; for the sampled one, on its own estimates.
        assert progress == pytest.approx(j_final - j0, abs=1e-12)
        outcome = sum(i["outcome"] for i in infos[1:])
        cost = sum(i["cost"] for i in infos[1:])
        assert sum(rewards) == pytest.approx(outcome + alpha * progress - cost, abs=1e-12)
        for info, r in zip(infos[1:], rewards):
            assert r == pytest.approx(compose_reward(info["outcome"], info["progress"], alpha, info["cost"]))
        assert all(i["outcome"] == 0.0 for i in infos[1:-1])


def test_truncation_at_H_with_forced_answer():
    H = 4
    env = gym.make("TTC-Sim-v0", max_episodes=H)
    env.reset(seed=0)
    for t in range(1, H + 1):
        _, _, term, trunc, info = env.step(2)  # verify without candidate: a wasted episode
        assert trunc == (t == H)
        assert term == (t == H)  # the forced answer ends the problem: terminated too
        assert info["episodes_used"] == t
        assert info["tokens_used"] == t * 256
    assert info["answered"]  # answer_on_truncation=True forces the answer


def test_truncation_without_forced_answer_gives_no_outcome():
    env = gym.make("TTC-Sim-v0", max_episodes=2, answer_on_truncation=False, guess_prob=1.0)
    env.reset(seed=0)
    env.step(0)
    _, _, term, trunc, info = env.step(0)
    assert trunc and not term and info["outcome"] == 0.0 and not info["answered"]


def test_answer_outcome_follows_exact_j():
    # guess_prob=1: every forced answer is correct; guess_prob=0 and no work: never.
    for g, expected in [(1.0, 1.0), (0.0, 0.0)]:
        env = gym.make("TTC-Sim-v0", guess_prob=g)
        for seed in range(20):
            env.reset(seed=seed)
            _, r, term, _, info = env.step(3)
            assert term and info["outcome"] == expected and r == expected


def test_progress_tracker_and_budget():
    tr = ProgressTracker()
    tr.start(0.25)
    assert tr.update(0.5) == 0.25 and tr.update(0.375) == -0.125
    assert tr.j_curve == [0.25, 0.5, 0.375] and tr.j == 0.375
    with pytest.raises(RuntimeError):
        ProgressTracker().update(0.1)
    b = Budget(max_episodes=3, max_tokens=100)
    assert not b.exhausted(2, 99) and b.exhausted(3, 0) and b.exhausted(0, 100)
    assert b.tokens_left(40) == 60 and Budget(max_episodes=2).tokens_left(5) is None
    with pytest.raises(ValueError, match="max_episodes"):
        Budget(max_episodes=-1)
    with pytest.raises(ValueError, match="both were None"):
        Budget(max_episodes=None, max_tokens=None)


# -- the reward and progress -------------------------------------------------------------------------
def test_reward_on_arrays_is_the_scalar_reward_entry_by_entry():
    rng = np.random.default_rng(0)
    outcome, progress, cost = (rng.integers(0, 2, 64).astype(float), rng.normal(size=64), rng.random(64))
    rewards = compose_reward(outcome, progress, 1.7, cost)
    assert isinstance(rewards, np.ndarray) and rewards.shape == (64,)
    assert rewards.tolist() == [compose_reward(o, p, 1.7, c) for o, p, c in zip(outcome, progress, cost)]
    assert type(compose_reward(1, 0.25, 2.0, 0.5)) is float and compose_reward(1, 0.25, 2.0, 0.5) == 1.0
    assert compose_reward(0.0, 0.5, 0.0) == 0.0  # alpha = 0: outcome only


def test_progress_telescopes_and_inverts():
    j_curve = np.array([0.1, 0.4, 0.25, 0.25, 0.9])
    progress = progress_between(j_curve[:-1], j_curve[1:])
    assert progress.tolist() == [progress_between(a, b) for a, b in zip(j_curve[:-1], j_curve[1:])]
    assert progress.sum() == pytest.approx(j_curve[-1] - j_curve[0], abs=1e-15)
    assert j_curve_from_progress(j_curve[0], progress) == pytest.approx(j_curve, abs=1e-15)
    assert j_curve_from_progress(0.3, []).tolist() == [0.3]


# -- the Monte Carlo J -------------------------------------------------------------------------------
def test_monte_carlo_j_is_the_fraction_correct_for_counts_and_draws():
    assert monte_carlo_j(3, 8) == 0.375 and type(monte_carlo_j(3, 8)) is float
    assert monte_carlo_j(np.array([0, 4, 8]), 8).tolist() == [0.0, 0.5, 1.0]
    p = np.linspace(0.0, 1.0, 41)
    batch = simulated_monte_carlo_j(p, 8, np.random.default_rng(5))
    rng = np.random.default_rng(5)  # the same generator, one scalar draw at a time: the same numbers
    assert batch.tolist() == [simulated_monte_carlo_j(float(x), 8, rng) for x in p]
    assert batch[0] == 0.0 and batch[-1] == 1.0
    assert set((batch * 8).tolist()) <= set(range(9))
    with pytest.raises(ValueError, match="p_correct"):
        simulated_monte_carlo_j(1.5, 8, rng)
    with pytest.raises(ValueError, match="p_correct"):
        simulated_monte_carlo_j(np.array([0.5, np.nan]), 8, rng)
    with pytest.raises(ValueError, match="num_samples"):
        monte_carlo_j(1, 0)


# -- the simulator's J -------------------------------------------------------------------------------
def test_simulator_j_is_one_function_for_the_env_and_the_vector_env():
    P = SimParams(guess_prob=0.2, partial_credit=0.6)
    levels = np.array([0, 1, 1, 2, 2, 2, 2])
    steps = np.array([0, 0, 1, 0, 1, 2, 2])
    cand = np.array([NO_CANDIDATE] * 6 + [2])
    slipped = np.array([False] * 6 + [True])
    batch = P.exact_j(levels, steps, cand, slipped)
    assert batch.tolist() == [P.exact_j(int(l), int(s), int(c), bool(x)) for l, s, c, x in zip(levels, steps, cand, slipped)]
    assert P.partial_j(2, 0) == 0.2  # J_0 = guess_prob
    assert P.partial_j(2, 1) == pytest.approx(0.2 + 0.8 * 0.6 / 3)
    assert P.exact_j(1, 2, 2, False) == 1.0 and P.exact_j(1, 2, 2, True) == 0.0
    env = gym.make("TTC-Sim-v0", guess_prob=0.2, partial_credit=0.6)
    venv = gym.make_vec("TTC-Sim-v0", num_envs=3, vectorization_mode="vector_entry_point", guess_prob=0.2)
    assert env.reset(seed=0)[1]["J"] == 0.2 and venv.reset(seed=0)[1]["J"].tolist() == [0.2] * 3


# -- the advantage dispatch --------------------------------------------------------------------------
def test_the_advantage_dispatch_picks_each_estimator():
    batch = [
        alg.Trajectory(group=g, outcome=o, progress=p, cost=[0.1] * len(p), j0=0.2)
        for g, o, p in [(0, 1.0, [0.3, 0.5]), (0, 0.0, [0.1]), (1, 1.0, [0.8]), (1, 1.0, [-0.1, 0.2, 0.1])]
    ]
    kw = dict(cost_coef=0.5, eps=1e-3, scale=False)

    def same(a, b):
        return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))

    assert same(alg.advantages("grpo", batch, alpha=1.0, **kw), alg.outcome_advantages(batch, **kw))
    assert same(alg.advantages("mrt-online", batch, alpha=2.0, **kw), alg.online_advantages(batch, alpha=2.0, **kw))
    assert same(alg.advantages("mrt-termination", batch, alpha=2.0, **kw), alg.termination_advantages(batch, cost_coef=0.5))
    with pytest.raises(ValueError, match="Expected one of: grpo, mrt"):
        alg.advantages("star", batch, alpha=1.0)
    with pytest.raises(ValueError, match="Did you mean 'mrt-termination'"):
        alg.advantages("mrt-terminatoin", batch, alpha=1.0)


# -- seeds from text ---------------------------------------------------------------------------------
def test_seeds_from_text_are_pinned_and_separate_their_parts():
    # Pinned: the same seeds in every process and on every platform (recorded runs depend on them).
    assert prefix_seed(0, "q", "a") == 8831876194355247336
    assert text_seed("ttc-row:5:0") == 1477984948677237128 and text_seed("abc", bits=8) == 89
    assert prefix_seed(0, "q", "a") == text_seed("0\x00q\x00a")
    assert prefix_seed(0, "ab", "c") != prefix_seed(0, "a", "bc") != prefix_seed(1, "a", "bc")
    assert text_seed("x", bits=62) == text_seed("x") >> 1 and 0 <= text_seed("\ud800 lone surrogate") < 2**63
    with pytest.raises(TypeError, match="text must be a str"):
        text_seed(5)


# -- the brace scanner -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, start, expected",
    [
        ("a}", 0, 1),
        ("{}", 0, None),  # balanced: closes nothing opened before
        ("x{y}z}rest", 0, 5),  # nested
        ("{{}", 0, None),  # unbalanced
        ("1,2\\}}", 0, 5),  # an escaped brace is content
        ("\\{1,2\\}}", 0, 7),
        ("\\\\}", 0, None),  # read as \\ and an escaped \\} (as extract_boxed always read it)
        ("\\boxed{\\frac{1}{2}} and {3}", 7, 18),  # a box's argument ends where its brace closes
        ("", 0, None),
    ],
)
def test_the_brace_scanner(text, start, expected):
    assert closing_brace(text, start) == expected


def test_the_brace_scanner_on_adversarial_input():
    assert closing_brace("{" * 100_000) is None  # unclosed, linear
    deep = "{" * (MAX_BRACE_DEPTH - 1) + "}" * (MAX_BRACE_DEPTH - 1) + "}"
    assert closing_brace(deep) == len(deep) - 1  # as deep as allowed
    too_deep = "{" * MAX_BRACE_DEPTH + "}" * MAX_BRACE_DEPTH + "}"
    assert closing_brace(too_deep) is None  # nested deeper than the cap: malformed


def test_everything_that_reads_braces_uses_the_one_scanner():
    from ttc_gym.agents.strategies import without_commit
    from ttc_gym.engines.base import closing_brace as engine_closing_brace
    from ttc_gym.prompts import close_boxed

    for text in ["42}$.", "\\{1,2\\}} done", "{a}", "\\frac{1}{2}}", "{" * 300 + "}" * 301]:
        assert engine_closing_brace(text) == closing_brace(text)
        end = closing_brace(text)
        assert close_boxed(text) == (text if end is None else text[:end]).strip()
        assert extract_boxed("\\boxed{" + text) == (None if end is None else text[:end].strip() or None)
    assert first_box_command("so \\fbox{1} or \\boxed{2}") == 3
    assert first_box_command("\\boxedx then \\boxed{3}") == 13 and first_box_command("none") is None
    assert without_commit("I think $\\boxed{3}$ is it") == "I think"
    assert without_commit("A \\fbox{1} then \\boxed{2}") == "A"
