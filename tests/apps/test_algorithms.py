"""What each training algorithm's name computes (docs/formulation.md §4), on hand-built batches.

The tests that matter most: `mrt` (the paper's recipe) credits a continuing branch by how it compares
with the terminating branches of its prefix; the per-episode forms (`mrt-online`, `mrt-online-raw`)
credit each episode with its OWN progress and must never collapse back into outcome-only RL plus a
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


# -- mrt-online-raw: ttc-gym's earlier mrt (per-episode raw progress) ----------------------------------------------------------------------
def test_online_raw_credits_each_episode_with_its_own_progress_by_hand():
    # One group: outcomes 1, 0 -> GRPO advantages +1, -1 (eps 0, population std 0.5).
    batch = [traj(0, 1, [0.1, 0.5, 0.2]), traj(0, 0, [0.3, -0.1])]
    adv = alg.online_raw_advantages(batch, alpha=0.5, eps=0.0)
    assert lists(adv) == [[1.05, 1.25, 1.1], [-0.85, -1.05]]
    # Dr. GRPO centring (scale=False): outcome advantages +-0.5, the progress term unchanged.
    assert lists(alg.online_raw_advantages(batch, alpha=0.5, scale=False)) == [[0.55, 0.75, 0.6], [-0.35, -0.55]]
    # The dispatch gives the same under the name and the default form.
    assert lists(alg.advantages("mrt-online-raw", batch, alpha=0.5, eps=0.0)) == lists(adv)


def test_online_raw_is_not_outcome_rl_plus_a_baseline():
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
    mrt = alg.online_raw_advantages(batch, alpha=alpha)
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


def test_online_raw_equals_grpo_at_alpha_zero_and_only_on_episodes_without_progress():
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
        assert lists(alg.online_raw_advantages(batch, alpha=0.0, **kwargs)) == lists(grpo)
        mrt = alg.online_raw_advantages(batch, alpha=2.0, **kwargs)
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
    assert alg.RL_ALGOS == tuple(alg.ADVANTAGES) == (
        "grpo", "mrt", "mrt-online", "mrt-online-raw", "mrt-termination", "mrt-rtg")
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
        "mrt-online": alg.online_advantages(batch, **kw),
        "mrt-online-raw": alg.online_raw_advantages(batch, **kw),
        "mrt-termination": alg.termination_advantages(batch),
        "mrt-rtg": alg.progress_to_go_advantages(batch, **kw),
    }
    for name, want in expected.items():
        assert lists(alg.advantages(name, batch, **kw)) == lists(want), name
    # Centred only (scale=False), mrt-online and mrt-online-raw agree: they differ in the scale alone.
    assert lists(expected["mrt-online"]) == lists(expected["mrt-online-raw"])
    assert len({str(lists(v)) for v in expected.values()}) == 4
    assert lists(alg.online_advantages(batch, alpha=1.5)) != lists(alg.online_raw_advantages(batch, alpha=1.5))
    branches = [alg.Trajectory(group=t.group, outcome=t.outcome, progress=t.progress, cost=t.cost, j0=0.1,
                               branch="continue") for t in batch]
    assert lists(alg.advantages("mrt", branches, **kw, credit="group")) == lists(alg.mrt_advantages(branches, **kw))
    with pytest.raises(ValueError, match="Expected one of: grpo, mrt, mrt-online, mrt-online-raw, mrt-rtg, mrt-termination"):
        alg.advantages("star", batch, alpha=1.0)


def test_algorithm_settings_are_checked_in_one_place():
    assert alg.needs_groups("grpo") and alg.needs_groups("mrt-online") and alg.needs_groups("mrt-rtg")
    assert not alg.needs_groups("mrt") and alg.branches_from_prefix("mrt")  # its group: a prefix's branches
    assert not alg.needs_groups("mrt-termination") and not alg.needs_groups("star")
    with pytest.raises(ValueError, match="Did you mean 'mrt-termination'"):
        alg.check_algo("mrt-terminate")
    with pytest.raises(ValueError, match="group_size >= 2"):
        sim_config.SimTrainConfig(algo="mrt-rtg", group_size=1, batch_size=4)
    sim_config.SimTrainConfig(algo="mrt-termination", group_size=1, batch_size=4)


# -- mrt: the paper's recipe (branches of a prefix that continue or terminate) ----------------------
def branch(g, o, p=(), kind="continue", j0=0.3):
    return alg.Trajectory(group=g, outcome=o, progress=list(p), cost=[0.0] * len(p), j0=j0, branch=kind)


def test_mrt_credits_a_continuing_branch_against_the_terminating_ones_of_its_prefix():
    cont = [branch(0, 1, [0.2, 0.1]), branch(0, 0, [0.1])]
    # The same two continuing branches; the prefix's terminating branches succeed more or less often.
    weak = cont + [branch(0, 0, kind="terminate"), branch(0, 0, kind="terminate")]
    strong = cont + [branch(0, 1, kind="terminate"), branch(0, 1, kind="terminate")]
    for credit in ("group", "termination"):
        a_weak = alg.mrt_advantages(weak, alpha=1.0, credit=credit)
        a_strong = alg.mrt_advantages(strong, alpha=1.0, credit=credit)
        assert a_weak[0][0] > a_strong[0][0] and a_weak[1][0] > a_strong[1][0], credit
    # By hand: returns R = o + alpha * (J_end - J_prefix): 1.3, 0.1 (continuing), 0, 0 (terminating).
    assert lists(alg.mrt_advantages(weak, alpha=1.0, credit="termination")) == [[1.3, 1.3], [0.1], [], []]
    r = np.array([1.3, 0.1, 0.0, 0.0])
    z = (r - r.mean()) / (r.std() + 1e-6)
    assert lists(alg.mrt_advantages(weak, alpha=1.0)) == lists([np.full(2, z[0]), z[1:2], [], []])
    # A terminating branch earns no progress; its own credit (for an LLM, its answer tokens) is R - baseline.
    stop = [branch(0, 1, kind="terminate"), branch(0, 0, kind="terminate"), branch(0, 1, [0.5, 0.5])]
    stop[0].progress, stop[0].cost = np.array([0.7]), np.array([0.0])  # one answering episode, progress ignored
    assert lists(alg.mrt_advantages(stop, alpha=1.0, credit="termination")) == [[0.5], [], [1.5, 1.5]]


def test_mrt_at_alpha_zero_without_terminations_is_grpo_on_the_suffix():
    batch = [branch(0, 1, [0.3, 0.2]), branch(0, 0, [0.4]), branch(1, 1, [0.1]), branch(1, 1, [-0.2, 0.5]),
             branch(1, 0, [0.0])]
    for scale in (True, False):
        assert lists(alg.mrt_advantages(batch, alpha=0.0, scale=scale)) == lists(
            alg.outcome_advantages(batch, scale=scale))
    assert lists(alg.mrt_advantages(batch, alpha=1.0)) != lists(alg.outcome_advantages(batch))


def test_mrt_refuses_rollouts_that_are_not_branches_and_checks_its_credit():
    full = [traj(0, 1, [0.1]), traj(0, 0, [0.2])]
    with pytest.raises(ValueError, match="branched from a prefix.*mrt-online"):
        alg.mrt_advantages(full, alpha=1.0)
    with pytest.raises(ValueError, match="has none"):
        alg.mrt_advantages([branch(0, 1, [0.1]), branch(0, 0, [0.2])], alpha=1.0, credit="termination")
    with pytest.raises(ValueError, match="Did you mean 'termination'"):
        alg.mrt_advantages([branch(0, 1, [0.1])], alpha=1.0, credit="terminatoin")
    with pytest.raises(ValueError, match="branch must be one of"):
        branch(0, 1, kind="stop")
    with pytest.raises(ValueError, match="terminations"):
        sim_config.SimTrainConfig(algo="mrt", mrt_credit="termination", terminations=0, batch_size=8, group_size=2)
    with pytest.raises(ValueError, match=">= 2"):
        sim_config.SimTrainConfig(algo="mrt", terminations=0, batch_size=1, group_size=1)
    assert sim_config.SimTrainConfig(algo="mrt", batch_size=8, group_size=2).terminations == 2  # the even split


# -- mrt-online: per-episode progress inside the group normalization -------------------------------
def test_mrt_online_progress_moves_with_the_groups_scale():
    # Two groups with the same progress; group 1's outcomes are spread more widely than group 0's
    # (both 0/1, but group 0 has cost that narrows its spread).
    narrow = [alg.Trajectory(group=0, outcome=1, progress=[0.2], cost=[0.0]),
              alg.Trajectory(group=0, outcome=0, progress=[0.2], cost=[0.0])]
    scaled = [alg.Trajectory(group=0, outcome=1, progress=[0.4], cost=[0.0]),
              alg.Trajectory(group=0, outcome=0, progress=[0.4], cost=[0.0])]
    a, b = alg.online_advantages(narrow, alpha=1.0, eps=0.0), alg.online_advantages(scaled, alpha=1.0, eps=0.0)
    # By hand: var R = 0.25, var p = 0 -> denominator 0.5; A = (+-0.5 + 0.2) / 0.5.
    assert lists(a) == [[1.4], [-0.6]]
    # The raw form adds the progress outside: +-1 + 0.2, whatever the group's scale.
    assert lists(alg.online_raw_advantages(narrow, alpha=1.0, eps=0.0)) == [[1.2], [-0.8]]
    # Doubling progress where outcomes are spread: the progress term doubles relative to the outcome's.
    assert lists(b) == [[1.8], [-0.2]]
    # A group whose outcomes agree: no outcome credit; progress is scaled by its own spread.
    same = [alg.Trajectory(group=0, outcome=1, progress=[0.1, 0.3], cost=[0.0, 0.0]),
            alg.Trajectory(group=0, outcome=1, progress=[0.2], cost=[0.0])]
    sd = np.std([0.1, 0.3, 0.2])
    assert lists(alg.online_advantages(same, alpha=1.0, eps=0.0)) == lists([np.array([0.1, 0.3]) / sd, [0.2 / sd]])
    # Scaling a group's progress and outcome spread together leaves its credit unchanged (scale-free)...
    assert lists(alg.online_advantages(narrow, alpha=0.0)) == lists(alg.outcome_advantages(narrow))
