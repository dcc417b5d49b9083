"""What each training algorithm's name computes (docs/formulation.md §4), on hand-built batches.

The tests that matter most: `mrt` is MRT's estimator (each episode credited with the outcome
advantage plus alpha times its OWN progress) and must never collapse back into outcome-only RL plus a
baseline, which is what the reward-to-go form `mrt-rtg` and the termination baseline are.
"""

from __future__ import annotations

import numpy as np
import pytest

from ttc_gym.training import algorithms as alg
from ttc_gym.training import llm_config, sim_config


def traj(group, outcome, progress, cost=None, j0=0.1):
    progress = np.asarray(progress, dtype=float)
    cost = np.zeros_like(progress) if cost is None else np.asarray(cost, dtype=float)
    return alg.Trajectory(group=group, outcome=outcome, progress=progress, cost=cost, j0=j0)


def lists(advs):
    return [np.round(a, 12).tolist() for a in advs]


# -- mrt: the paper's estimator ----------------------------------------------------------------------
def test_mrt_credits_each_episode_with_its_own_progress_by_hand():
    # One group: outcomes 1, 0 -> GRPO advantages +1, -1 (eps 0, population std 0.5).
    batch = [traj(0, 1, [0.1, 0.5, 0.2]), traj(0, 0, [0.3, -0.1])]
    adv = alg.mrt_advantages(batch, alpha=0.5, eps=0.0)
    assert lists(adv) == [[1.05, 1.25, 1.1], [-0.85, -1.05]]
    # Dr. GRPO centring (scale=False): outcome advantages +-0.5, the progress term unchanged.
    assert lists(alg.mrt_advantages(batch, alpha=0.5, scale=False)) == [[0.55, 0.75, 0.6], [-0.35, -0.55]]
    # The dispatch gives the same under the name and the default form.
    assert lists(alg.advantages("mrt", batch, alpha=0.5, eps=0.0)) == lists(adv)


def test_mrt_is_not_outcome_rl_plus_a_baseline():
    # Rollouts a and b of one problem: same outcome, same J_0 = 0.1 and J_final = 1.0, and the same
    # prefix value J = 0.3 before episode 1; they differ only in what episode 1 itself achieves
    # (J 0.3 -> 0.9 in a, 0.3 -> 0.4 in b). Any credit of the form "return of the rollout minus a
    # baseline of the prefix" (GRPO, the reward-to-go form, the termination baseline) gives episode 1
    # the same credit in a and b; MRT's estimator credits each with its own progress.
    a, b, c = traj(0, 1, [0.2, 0.6, 0.1]), traj(0, 1, [0.2, 0.1, 0.6]), traj(0, 0, [0.05, 0.05])
    batch, alpha = [a, b, c], 1.0
    grpo = alg.outcome_advantages(batch)
    rtg = alg.progress_to_go_advantages(batch, alpha=alpha)
    term = alg.termination_advantages(batch)
    mrt = alg.mrt_advantages(batch, alpha=alpha)
    for baseline_form in (grpo, rtg, term):
        assert baseline_form[0][1] == pytest.approx(baseline_form[1][1])
    assert mrt[0][1] - mrt[1][1] == pytest.approx(alpha * (0.6 - 0.1))
    # Per episode, mrt differs from GRPO by exactly alpha * that episode's progress, and from mrt-rtg.
    for m, g, t in zip(mrt, grpo, batch):
        np.testing.assert_allclose(m - g, alpha * t.progress, atol=1e-12)
    assert not all(np.allclose(m, r) for m, r in zip(mrt, rtg))
    # Summed over a rollout's episodes, the bonus is not the telescoped J_final - J_0 of the
    # reward-to-go form: mrt-rtg's episode 0 is credited with all of a's later progress.
    assert rtg[0][0] > rtg[0][2] and mrt[0][0] < mrt[0][1]


def test_mrt_equals_grpo_at_alpha_zero_and_only_on_episodes_without_progress():
    # MRT's loss is the outcome fine-tuning loss plus alpha times the progress bonus (MRT §6): at
    # alpha = 0 it is GRPO exactly; at alpha > 0 an episode's credit equals GRPO's only when the
    # episode made no progress.
    rng = np.random.default_rng(0)
    batch = [traj(int(g), float(rng.random() < 0.5), np.round(rng.normal(0, 0.3, int(rng.integers(1, 6))), 1))
             for g in np.repeat(np.arange(5), 4)]
    for t in batch:
        t.cost = rng.random(t.num_episodes)
        t.progress[rng.random(t.num_episodes) < 0.3] = 0.0
    for kwargs in ({}, {"cost_coef": 0.3}, {"scale": False}, {"eps": 0.0}):
        grpo = alg.outcome_advantages(batch, **kwargs)
        assert lists(alg.mrt_advantages(batch, alpha=0.0, **kwargs)) == lists(grpo)
        mrt = alg.mrt_advantages(batch, alpha=2.0, **kwargs)
        for m, g, t in zip(mrt, grpo, batch):
            np.testing.assert_array_equal(np.isclose(m, g, rtol=0, atol=1e-12), t.progress == 0.0)


# -- the termination baseline -------------------------------------------------------------------------
def test_termination_advantage_counts_progress_once():
    # MRT code (train/rl/README.md): advantage = reward of the rollout - reward of terminating at the
    # prefix. j0 0.2, progress [0.3, 0.5, -0.1]: J before each episode 0.2, 0.5, 1.0; outcome 1.
    t = traj(0, 1, [0.3, 0.5, -0.1], j0=0.2)
    expected = [1 - 0.2, 1 - 0.5, 1 - 1.0]
    for alpha in (0.0, 1.0, 3.0):  # alpha has no say: progress is already inside the difference
        assert lists(alg.advantages("mrt-termination", [t], alpha=alpha)) == [expected]
    assert lists(alg.termination_advantages([t])) == [expected]
    # = (outcome - J_final) + progress-to-go: each episode's later progress appears once, not twice
    # (the former form, outcome + alpha * progress-to-go - J_before, gave 1.7, 1.0, -0.1 at alpha 1).
    np.testing.assert_allclose(expected, (1 - 0.9) + alg.progress_to_go(t), atol=1e-12)
    wrong = traj(0, 0, [0.3, 0.5, -0.1], cost=[0.1, 0.1, 0.0], j0=0.2)
    assert lists(alg.termination_advantages([wrong], cost_coef=1.0)) == [[-0.2 - 0.2, -0.1 - 0.5, -1.0]]



# -- mrt-rtg: the reward-to-go form ------------------------------------------------------------------
def test_mrt_rtg_credits_progress_to_go():
    batch = [traj(0, 1, [0.2, 0.3]), traj(0, 0, [0.0])]
    to_go = np.array([0.5, 0.3, 0.0])
    z = (to_go - to_go.mean()) / to_go.std()
    adv = alg.advantages("mrt-rtg", batch, alpha=2.0, eps=0.0)
    np.testing.assert_allclose(adv[0], 1 + 2.0 * z[:2])
    np.testing.assert_allclose(adv[1], -1 + 2.0 * z[2:])


# -- MRT-STaR ------------------------------------------------------------------------------------------
def test_mrt_star_keeps_the_correct_traces_of_maximal_progress_per_group():
    batch = [
        traj("p", 1, [0.5, -0.2, 0.6], j0=0.1),  # correct, total 0.9 (a slip, caught): kept
        traj("p", 1, [0.1, 0.3], j0=0.1),  # correct, total 0.4 (a lucky answer): dropped
        traj("p", 0, [0.9, 0.05], j0=0.1),  # most progress but wrong: dropped
        traj("p", 1, [0.9], j0=0.1),  # correct, total 0.9, ties with the first: kept
        traj("q", 0, [0.2], j0=0.3),  # a group with no correct trace: nothing kept
        traj("r", 1, [0.0], j0=0.5),  # the only correct trace of its group: kept
    ]
    picked = alg.mrt_star_select(batch)
    assert [(t.group, t.total_progress) for t in picked] == [("p", pytest.approx(0.9))] * 2 + [("r", 0.0)]
    assert picked[0] is batch[0] and picked[1] is batch[3]
    assert alg.select("mrt-star", batch) == picked
    # The threshold rule (kept as an option) drops the caught slip, keeps the lucky answer.
    assert alg.select("mrt-star-threshold", batch) == [batch[1], batch[3]]
    assert alg.select("star", batch) == [batch[0], batch[1], batch[3], batch[5]]
    with pytest.raises(ValueError, match="Did you mean 'mrt-star'"):
        alg.select("mrt-starr", batch)


# -- the tables: one place for every name -----------------------------------------------------------------
def test_the_configs_take_their_names_from_the_tables():
    assert alg.RL_ALGOS == tuple(alg.ADVANTAGES) == ("grpo", "mrt", "mrt-termination", "mrt-rtg")
    assert alg.SFT_ALGOS == tuple(alg.SELECTORS) == ("star", "mrt-star", "mrt-star-threshold", "sft")
    assert alg.ALGOS == alg.RL_ALGOS + alg.SFT_ALGOS
    for config in (sim_config.SimTrainConfig, llm_config.LLMTrainConfig):
        help_text = config.__dataclass_fields__["algo"].metadata["help"]
        assert all(f"{name}: " in help_text for name in alg.ALGOS)
    assert set(alg.DESCRIPTIONS) == set(alg.ALGOS)
    for name in alg.ALGOS:
        sim_config.SimTrainConfig(algo=name, batch_size=8, group_size=2, iterations=1)


def test_each_name_dispatches_to_its_estimator():
    batch = [traj(0, 1, [0.3, 0.5]), traj(0, 0, [0.1]), traj(1, 1, [-0.1, 0.2, 0.1]), traj(1, 0, [0.4])]
    kw = dict(alpha=1.5, cost_coef=0.0, eps=1e-3, scale=False)
    expected = {
        "grpo": alg.outcome_advantages(batch, eps=1e-3, scale=False),
        "mrt": alg.mrt_advantages(batch, **kw),
        "mrt-termination": alg.termination_advantages(batch),
        "mrt-rtg": alg.progress_to_go_advantages(batch, **kw),
    }
    for name, want in expected.items():
        assert lists(alg.advantages(name, batch, **kw)) == lists(want), name
    assert len({str(lists(v)) for v in expected.values()}) == 4  # four different credits
    with pytest.raises(ValueError, match="Expected one of: grpo, mrt, mrt-rtg, mrt-termination"):
        alg.advantages("star", batch, alpha=1.0)


def test_algorithm_settings_are_checked_in_one_place():
    assert alg.needs_groups("grpo") and alg.needs_groups("mrt") and alg.needs_groups("mrt-rtg")
    assert not alg.needs_groups("mrt-termination") and not alg.needs_groups("star")
    with pytest.raises(ValueError, match="Did you mean 'mrt-termination'"):
        alg.check_algo("mrt-terminate")
    with pytest.raises(ValueError, match="group_size >= 2"):
        sim_config.SimTrainConfig(algo="mrt-rtg", group_size=1, batch_size=4)
    sim_config.SimTrainConfig(algo="mrt-termination", group_size=1, batch_size=4)
