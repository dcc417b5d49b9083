"""The sim trainer's entropy bonus (`entropy_coef`, PPO Eq. 9) and gradient clipping (`max_grad_norm`):
the formula by hand, the config's checks, what a step does to the policy, which actions the bonus
covers under `mrt` (the branches' own, not the prefix nor the forced answers), and the log column."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from ttc_gym.training import algorithms as alg
from ttc_gym.training.config_cli import parse_config
from ttc_gym.training.sim_config import DEFAULT_ENTROPY_COEF, SimTrainConfig
from ttc_gym.training.sim_rollout import trained_steps
from ttc_gym.training.sim_train import SimParts, train

SMALL = {"batch_size": 16, "group_size": 4, "max_episodes": 4}


# -- the formula --------------------------------------------------------------------------------------
def test_mean_entropy_by_hand():
    uniform = torch.log(torch.full((3, 4), 0.25))
    assert math.isclose(alg.mean_entropy(uniform).item(), math.log(4), rel_tol=1e-6)
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    lp = torch.log(p.clamp(min=1e-30))
    assert math.isclose(alg.mean_entropy(lp).item(), math.log(2) / 2, rel_tol=1e-5)
    assert alg.mean_entropy(torch.zeros(0, 4)).item() == 0.0
    with pytest.raises(ValueError, match=r"\(rows, actions\)"):
        alg.mean_entropy(torch.zeros(4))


def test_pg_loss_subtracts_the_weighted_entropy():
    lp = torch.tensor([-0.5, -1.0], requires_grad=True)
    t = alg.Trajectory(group=0, outcome=1, progress=np.zeros(2), cost=np.zeros(2), logprobs=lp)
    entropy = torch.tensor(0.9, requires_grad=True)
    loss = alg.pg_loss([t], [np.array([1.0, 1.0])], entropy=entropy, entropy_coef=0.1)
    assert math.isclose(loss.item(), 0.75 - 0.1 * 0.9, rel_tol=1e-6)
    loss.backward()
    assert math.isclose(entropy.grad.item(), -0.1, rel_tol=1e-6)
    assert math.isclose(alg.pg_loss([t], [np.array([1.0, 1.0])], entropy=entropy).item(), 0.75, rel_tol=1e-6)
    with pytest.raises(ValueError, match="entropy_coef > 0 needs the entropy"):
        alg.pg_loss([t], [np.array([1.0, 1.0])], entropy_coef=0.1)
    with pytest.raises(ValueError, match="entropy_coef must be >= 0"):
        alg.pg_loss([t], [np.array([1.0, 1.0])], entropy=entropy, entropy_coef=-0.1)


# -- the config -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"entropy_coef": -0.01}, r"entropy_coef must be >= 0(\.0)?, got -0.01"),
    ({"entropy_coef": float("nan")}, "entropy_coef must be finite"),
    ({"algo": "star", "entropy_coef": 0.01}, "applies to the policy-gradient algorithms"),
    ({"max_grad_norm": -1.0}, r"max_grad_norm must be >= 0(\.0)?, got -1.0"),
])
def test_bad_entropy_and_clipping_settings_fail_before_training(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimTrainConfig(**kwargs)


def test_entropy_coef_defaults_by_algorithm_kind_and_parses():
    assert SimTrainConfig(algo="grpo").entropy_coef == DEFAULT_ENTROPY_COEF
    assert SimTrainConfig(algo="mrt").entropy_coef == DEFAULT_ENTROPY_COEF
    assert SimTrainConfig(algo="star").entropy_coef == 0.0
    assert SimTrainConfig(algo="sft", entropy_coef=0).entropy_coef == 0.0
    cfg = parse_config(SimTrainConfig, ["--algo", "grpo", "--entropy-coef", "0.05", "--max-grad-norm", "1.5"])
    assert (cfg.entropy_coef, cfg.max_grad_norm) == (0.05, 1.5)
    assert parse_config(SimTrainConfig, ["--entropy-coef", "none"]).entropy_coef == DEFAULT_ENTROPY_COEF


# -- what a step does ---------------------------------------------------------------------------------
def _peaked_parts(**kwargs) -> tuple[SimParts, list, np.ndarray]:
    """A trainer whose policy prefers one action (so that its entropy can rise), one batch of its
    rollouts, and the observations the batch acted on."""
    torch.set_num_threads(1)
    parts = SimParts(SimTrainConfig(**SMALL, **kwargs))
    with torch.no_grad():
        parts.policy.net[-1].bias.copy_(torch.tensor([2.0, 0.0, -1.0, 0.5])[: parts.policy.num_actions])
    rollouts = parts.collect(0)
    return parts, rollouts, trained_steps(rollouts)[0]


def _entropy(policy, obs) -> float:
    with torch.no_grad():
        return float(alg.mean_entropy(policy.log_probs_all(obs)))


@pytest.mark.parametrize("algo", ["grpo", "mrt"])
def test_with_zero_advantages_the_bonus_alone_raises_the_entropy(algo):
    parts, rollouts, obs = _peaked_parts(algo=algo, entropy_coef=0.5)
    before = _entropy(parts.policy, obs)
    trajectories = parts.trajectories(rollouts)
    zero = [np.zeros(t.num_episodes) for t in trajectories]
    row = parts.policy_gradient_step(rollouts, trajectories, zero)
    assert math.isclose(row["entropy"], before, rel_tol=1e-6)  # logged: the entropy before the step
    assert math.isclose(row["loss"], -0.5 * before, rel_tol=1e-5)
    assert _entropy(parts.policy, obs) > before + 1e-4


def test_with_zero_advantages_and_no_bonus_the_weights_stay():
    parts, rollouts, _ = _peaked_parts(algo="grpo", entropy_coef=0.0)
    weights = [p.detach().clone() for p in parts.policy.parameters()]
    trajectories = parts.trajectories(rollouts)
    parts.policy_gradient_step(rollouts, trajectories, [np.zeros(t.num_episodes) for t in trajectories])
    assert all(torch.equal(a, b) for a, b in zip(weights, parts.policy.parameters()))


def test_the_bonus_covers_the_trained_actions_only_under_mrt():
    """mrt: the prefix is not part of a branch's trace, a terminating branch's forced answer carries no
    gradient; the bonus's rows are exactly the continuing branches' actions, as the loss's are."""
    parts, rollouts, obs = _peaked_parts(algo="mrt", entropy_coef=0.5)
    continuing = [t for t in rollouts if t.branch == "continue"]
    assert any(t.branch == "terminate" for t in rollouts)
    assert len(obs) == sum(len(t.actions) for t in continuing)
    np.testing.assert_array_equal(obs, np.concatenate([t.obs for t in continuing]))
    trajectories = parts.trajectories(rollouts)
    assert sum(t.num_episodes for t in trajectories) == len(obs)
    before = _entropy(parts.policy, obs)
    row = parts.policy_gradient_step(rollouts, trajectories, [np.zeros(t.num_episodes) for t in trajectories])
    assert math.isclose(row["entropy"], before, rel_tol=1e-6)


def test_clipping_bounds_the_gradient_of_each_step():
    parts, rollouts, _ = _peaked_parts(algo="grpo", lr=0.1, seed=3, max_grad_norm=1e-3)
    trajectories = parts.trajectories(rollouts)
    advantages = [np.full(t.num_episodes, 1.0 if t.outcome else -1.0) for t in trajectories]
    loss = alg.pg_loss(trajectories, advantages)
    raw = torch.autograd.grad(loss, list(parts.policy.parameters()), retain_graph=True)
    assert float(torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in raw]))) > 1e-2  # well above the clip
    parts._step(loss)
    stepped = torch.cat([p.grad.reshape(-1) for p in parts.policy.parameters()])
    assert float(torch.linalg.vector_norm(stepped)) == pytest.approx(1e-3, rel=1e-4)


# -- the log --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo, coef", [("grpo", 0.1), ("star", 0.0)])
def test_the_log_row_has_the_entropy(tmp_path, algo, coef):
    torch.set_num_threads(1)
    result = train(SimTrainConfig(algo=algo, iterations=2, entropy_coef=coef, log_csv=str(tmp_path / "log.csv"),
                                  **SMALL))
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert all(0.0 < float(r["entropy"]) <= math.log(4) + 1e-6 for r in rows if r["loss"] != "nan")
    assert float(rows[0]["entropy"]) == pytest.approx(result.history[0]["entropy"])


def test_a_checkpoint_from_before_the_bonus_resumes_with_no_bonus(tmp_path):
    """A checkpoint whose saved config lacks entropy_coef ran without a bonus: it resumes with
    --entropy-coef 0 and is refused (saying so) with the new default."""
    from ttc_gym.training.sim_policy import SimPolicy

    torch.set_num_threads(1)
    path = tmp_path / "old.pt"
    old = SimTrainConfig(algo="grpo", iterations=2, entropy_coef=0.0, checkpoint=str(path), **SMALL)
    train(old)
    blob = SimPolicy.read_checkpoint(path)
    for name in ("entropy_coef", "max_grad_norm"):
        del blob["extra"]["train_config"][name]
    SimPolicy.load(path).save(path, extra=blob["extra"])
    assert DEFAULT_ENTROPY_COEF > 0
    with pytest.raises(ValueError, match=rf"entropy_coef=0.0 \(now {DEFAULT_ENTROPY_COEF}\)"):
        train(SimTrainConfig(algo="grpo", iterations=3, checkpoint=str(path), resume=True, **SMALL))
    resumed = train(SimTrainConfig(algo="grpo", iterations=3, entropy_coef=0.0, checkpoint=str(path), resume=True,
                                   **SMALL))
    assert resumed.start_step == 2 and len(resumed.history) == 3
