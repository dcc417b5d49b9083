"""`--algo mrt` on TTC-Sim-v0: prefixes written by a behaviour policy, branches that continue or
terminate from them, credit on the branches' own actions only (ttc_gym/training/sim_branches.py)."""

from __future__ import annotations

import numpy as np
import torch

from ttc_gym.envs.sim_model import ANSWER
from ttc_gym.training import algorithms as alg
from ttc_gym.training.loop import branch_summary
from ttc_gym.training.sim_branches import collect_branches
from ttc_gym.training.sim_config import SimTrainConfig
from ttc_gym.training.sim_policy import SimPolicy
from ttc_gym.training.sim_rollout import PolicyActor, make_envs, to_trajectories
from ttc_gym.training.sim_train import train

H = 6


class Always:
    needs_info = False

    def __init__(self, action):
        self.action = action

    def __call__(self, obs, infos, rows):
        return np.full(len(rows), self.action, dtype=np.int64)


def _branches(seed=0, prefix_action=0, problems=5, continues=3, terminations=2):
    envs = make_envs(problems * (continues + terminations), max_episodes=H)
    policy = SimPolicy.for_space(envs[0].observation_space, envs[0].action_space, hidden=0, seed=0)
    actor = PolicyActor(policy, torch.Generator().manual_seed(seed))
    traces = collect_branches(envs, Always(prefix_action), actor, np.random.default_rng(seed), problems=problems,
                              continues=continues, terminations=terminations, max_episodes=H)
    return traces, policy


def test_each_prefix_has_its_continuing_and_terminating_branches():
    traces, _ = _branches()
    assert [t.branch for t in traces[:5]] == ["continue"] * 3 + ["terminate"] * 2
    assert [t.group for t in traces] == np.repeat(np.arange(5), 5).tolist()
    for g in range(5):
        group = traces[5 * g: 5 * g + 5]
        k = group[0].prefix_episodes
        assert 0 <= k < H and all(t.prefix_episodes == k for t in group)
        assert len({t.j_curve[0] for t in group}) == 1  # J at the prefix, shared
        for t in group:
            assert t.obs[0][0] == k  # the branch starts after the prefix: its first observation counts k episodes
        for t in group[3:]:
            assert t.actions.tolist() == [ANSWER] and len(t.j_curve) == 1  # answered at once, no episode
    stats = branch_summary(traces, "accuracy")
    assert stats["branches_continue"] == 15 and stats["branches_terminate"] == 10


def test_a_prefix_stops_where_its_writer_would_answer():
    traces, _ = _branches(prefix_action=ANSWER)
    assert all(t.prefix_episodes == 0 for t in traces)
    assert all(t.obs[0][0] == 0 for t in traces)


def test_branches_are_reproducible_and_the_terminating_answer_is_not_trained():
    a, policy = _branches(seed=3)
    b, _ = _branches(seed=3)
    assert [(t.actions.tolist(), t.outcome, t.j_curve) for t in a] == [(t.actions.tolist(), t.outcome, t.j_curve)
                                                                       for t in b]
    trajs = to_trajectories(a, policy)
    for t, traj in zip(a, trajs):
        assert traj.branch == t.branch
        assert traj.num_episodes == (0 if t.branch == "terminate" else len(t.actions))
        assert traj.j0 == t.j_curve[0]
    adv = alg.mrt_advantages(trajs, alpha=1.0)
    loss = alg.pg_loss(trajs, adv)
    loss.backward()  # only the continuing branches' own actions carry log-probabilities
    n_trained = sum(len(t.actions) for t in a if t.branch == "continue")
    assert alg.flatten_batch(trajs, adv)[0].numel() == n_trained


def test_mrt_trains_on_the_simulator_from_each_prefix_source():
    for source in ("stale", "current", "expert"):
        for credit in ("group", "termination"):
            result = train(SimTrainConfig(algo="mrt", prefix_source=source, mrt_credit=credit, iterations=2,
                                          batch_size=8, group_size=2, terminations=1, max_episodes=4, stale_every=1))
            row = result.history[-1]
            assert row["branches_continue"] == 8 and row["branches_terminate"] == 4, (source, credit)
            assert 0 <= row["prefix_episodes"] < 4 and np.isfinite(row["loss"])
