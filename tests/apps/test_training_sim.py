"""The training core (advantages, losses, selection) on hand-built batches, the TTC-Sim-v0 policy and
its checkpoints, grouped rollouts, the trainers (each improves on its initial policy) and bad configs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import ttc_gym  # noqa: F401
from ttc_gym.agents.heuristics import AnswerAfterK
from ttc_gym.training import algorithms as alg
from ttc_gym.training.config_cli import parse_config
from ttc_gym.training.sim_config import SimTrainConfig
from ttc_gym.training.sim_policy import SimPolicy
from ttc_gym.training.sim_rollout import AgentsActor, batch_stats, make_envs, rollout
from ttc_gym.training.sim_train import evaluate_policy, train
from ttc_gym.evaluation import run_rollout, summarize


def traj(group, outcome, progress, cost=None, logprobs=None, j0=0.1, ref=None):
    progress = np.asarray(progress, dtype=float)
    cost = np.zeros_like(progress) if cost is None else cost
    return alg.Trajectory(group=group, outcome=outcome, progress=progress, cost=cost, logprobs=logprobs,
                          ref_logprobs=ref, j0=j0)


# -- advantages -------------------------------------------------------------------------------------
def test_outcome_advantages_by_hand():
    batch = [traj("a", 1, [0.2, 0.0]), traj("a", 0, [0.1]), traj("a", 0, [0.0, 0.0, 0.0]), traj("a", 1, [0.5]),
             traj("b", 1, [0.3]), traj("b", 1, [0.3, 0.1])]
    adv = alg.outcome_advantages(batch, eps=0.0)
    # group a: mean 0.5, population std 0.5 -> +-1 on every episode; group b: all equal -> 0
    assert [a.tolist() for a in adv] == [[1.0, 1.0], [-1.0], [-1.0, -1.0, -1.0], [1.0], [0.0], [0.0, 0.0]]
    unscaled = alg.outcome_advantages(batch, scale=False)
    assert unscaled[0].tolist() == [0.5, 0.5] and unscaled[1].tolist() == [-0.5]
    with_cost = alg.outcome_advantages([traj("c", 1, [0, 0], cost=np.array([1.0, 1.0])), traj("c", 1, [0])],
                                       cost_coef=0.5, eps=0.0)  # returns 0 and 1
    assert [a.tolist() for a in with_cost] == [[-1.0, -1.0], [1.0]]


def test_progress_to_go_advantage_by_hand():
    # mrt-rtg. One group of two: outcomes 1, 0 -> outcome advantages +1, -1 (eps 0).
    # progress-to-go: traj 0 [0.5, 0.3], traj 1 [0.0]; mean 0.8/3, population std over the 3 values.
    batch = [traj(0, 1, [0.2, 0.3]), traj(0, 0, [0.0])]
    vals = np.array([0.5, 0.3, 0.0])
    z = (vals - vals.mean()) / vals.std()
    adv = alg.progress_to_go_advantages(batch, alpha=0.5, eps=0.0)
    np.testing.assert_allclose(adv[0], [1 + 0.5 * z[0], 1 + 0.5 * z[1]])
    np.testing.assert_allclose(adv[1], [-1 + 0.5 * z[2]])


def test_the_per_episode_forms_equal_the_outcome_advantage_at_alpha_zero():
    rng = np.random.default_rng(0)
    batch = [traj(int(g), float(rng.random() < 0.5), rng.normal(size=int(rng.integers(1, 8))),
                  cost=None) for g in np.repeat(np.arange(6), 4)]
    for b in batch:
        b.cost = rng.random(b.num_episodes)
    for kwargs in ({}, {"cost_coef": 0.3}, {"scale": False}):
        out = alg.outcome_advantages(batch, **kwargs)
        for estimator in (alg.online_advantages, alg.online_raw_advantages, alg.progress_to_go_advantages):
            assert all(np.allclose(a, b, atol=1e-12) for a, b in zip(out, estimator(batch, alpha=0.0, **kwargs)))
    for estimator in (alg.online_advantages, alg.online_raw_advantages, alg.progress_to_go_advantages):
        assert not all(np.array_equal(a, b) for a, b in zip(out, estimator(batch, alpha=1.0, scale=False)))


def test_termination_advantage_by_hand():
    # j0 0.1, progress [0.3, 0.6, 0.0] -> J before each episode 0.1, 0.4, 1.0; cost-to-go 0.04, 0.02, 0.
    # Reward of the rollout (outcome - cost-to-go) minus reward of terminating at the prefix (J before).
    t = traj(0, 1, [0.3, 0.6, 0.0], cost=np.array([0.02, 0.02, 0.0]), j0=0.1)
    (adv,) = alg.termination_advantages([t], cost_coef=1.0)
    np.testing.assert_allclose(adv, [1 - 0.04 - 0.1, 1 - 0.02 - 0.4, 1 - 0.0 - 1.0], atol=1e-12)
    with pytest.raises(ValueError, match="j0"):
        alg.termination_advantages([traj(0, 1, [0.1], j0=float("nan"))])


# -- losses -----------------------------------------------------------------------------------------
def test_pg_loss_by_hand():
    lp0 = torch.tensor([-0.5, -1.0], requires_grad=True)
    lp1 = torch.tensor([-2.0], requires_grad=True)
    batch = [traj(0, 1, [0.1, 0.2], logprobs=lp0), traj(0, 0, [0.0], logprobs=lp1)]
    adv = [np.array([2.0, 2.0]), np.array([-1.0])]
    loss = alg.pg_loss(batch, adv)
    expected = -(2.0 * -0.5 + 2.0 * -1.0 + -1.0 * -2.0) / 3
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    loss.backward()
    np.testing.assert_allclose(lp0.grad.numpy(), [-2.0 / 3, -2.0 / 3])
    np.testing.assert_allclose(lp1.grad.numpy(), [1.0 / 3])


def test_pg_loss_token_level_with_kl_by_hand():
    # LLM style: episode 0 has 2 tokens, episode 1 has 1; the advantage is repeated over tokens.
    tokens = [torch.tensor([-0.1, -0.2]), torch.tensor([-0.3])]
    ref = [torch.tensor([-0.2, -0.2]), torch.tensor([-0.1])]
    t = traj(0, 1, [0.5, 0.0], logprobs=tokens, ref=ref)
    loss = alg.pg_loss([t], [np.array([1.0, -2.0])], kl_coef=0.5)
    pg = -(1.0 * -0.1 + 1.0 * -0.2 + -2.0 * -0.3) / 3
    deltas = [-0.2 - -0.1, 0.0, -0.1 - -0.3]
    kl = np.mean([math.exp(d) - d - 1 for d in deltas])
    assert math.isclose(loss.item(), pg + 0.5 * kl, rel_tol=1e-5)
    assert math.isclose(alg.sft_loss([t]).item(), (0.1 + 0.2 + 0.3) / 3, rel_tol=1e-6)


def test_losses_reject_misaligned_input():
    t = traj(0, 1, [0.1, 0.2], logprobs=torch.zeros(3))
    with pytest.raises(ValueError, match="one entry per episode"):
        alg.pg_loss([t], [np.zeros(2)])
    with pytest.raises(ValueError, match="ref_logprobs"):
        alg.pg_loss([traj(0, 1, [0.1], logprobs=torch.zeros(1))], [np.zeros(1)], kl_coef=0.1)


# -- selection --------------------------------------------------------------------------------------
def test_star_and_mrt_star_threshold_keep_what_their_rules_say():
    batch = [
        traj(0, 1, [0.2, 0.3, 0.0]),  # correct, steady progress: both keep
        traj(1, 1, [0.0]),  # correct lucky guess, no progress: STaR keeps, the threshold rule drops
        traj(2, 1, [0.4, -0.3, 0.8]),  # correct but one episode lowers J: STaR keeps, the threshold rule drops
        traj(3, 0, [0.5, 0.4]),  # wrong: both drop
        traj(4, 1, [0.0, 0.0, 0.9]),  # correct, progress only at the end: both keep
        traj(5, 0, [0.0]),  # wrong: both drop
    ]
    assert [t.group for t in alg.star_select(batch)] == [0, 1, 2, 4]
    assert [t.group for t in alg.mrt_star_threshold_select(batch)] == [0, 4]
    assert [t.group for t in alg.mrt_star_threshold_select(batch, min_total_progress=0.6)] == [4]
    assert [t.group for t in alg.select("mrt-star-threshold", batch, min_total_progress=0.6)] == [4]
    # Every group is one trace here, so MRT's max-progress selection keeps every correct trace (= STaR).
    assert [t.group for t in alg.mrt_star_select(batch)] == [0, 1, 2, 4]
    assert len(alg.select_all(batch)) == 6


# -- the policy -------------------------------------------------------------------------------------
def _policy(seed=0, **kwargs):
    env = gym.make("TTC-Sim-v0")
    return env, SimPolicy.for_space(env.observation_space, env.action_space, seed=seed, **kwargs)


def test_checkpoint_reload_reproduces_log_probs(tmp_path):
    env, policy = _policy(seed=3)
    with torch.no_grad():  # move the weights away from their initial values
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    obs = np.stack([env.observation_space.sample() for _ in range(64)])
    actions = np.arange(64) % 4
    path = policy.save(tmp_path / "ckpt" / "policy.pt", extra={"note": "test"})
    loaded = SimPolicy.load(path)
    assert torch.equal(policy.log_prob(obs, actions), loaded.log_prob(obs, actions))
    assert torch.equal(policy.log_probs_all(obs), loaded.log_probs_all(obs))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a SimPolicy checkpoint"):
        SimPolicy.load(tmp_path / "bad.pt")


def test_policy_is_an_agent_and_seeded_without_global_state():
    env, policy = _policy(seed=0)
    state = torch.random.get_rng_state()
    twin = _policy(seed=0)[1]
    assert torch.equal(torch.random.get_rng_state(), state)  # construction leaves global RNG alone
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), twin.state_dict().values()))
    record = run_rollout(env, policy, seed=5)
    assert record.episodes_used <= env.unwrapped.model.params.max_episodes
    probs = policy.log_probs_all(np.zeros((1, 6), dtype=np.int64)).exp()
    assert torch.allclose(probs, torch.full((1, 4), 0.25), atol=0.02)  # starts near uniform


def test_policy_clips_observations_of_a_larger_budget():
    _, policy = _policy()
    big = gym.make("TTC-Sim-v0", max_episodes=30)
    obs = np.stack([big.observation_space.sample() for _ in range(32)])
    assert torch.isfinite(policy.log_probs_all(obs)).all()


# -- grouped rollouts -------------------------------------------------------------------------------
def test_group_rollouts_share_the_problem_but_not_the_noise():
    G = 8
    envs = make_envs(2 * G)
    seeds = np.repeat([11, 12], G)
    agents = [AnswerAfterK(6) for _ in range(2 * G)]  # identical deterministic actions
    hard = {"difficulty": 2}  # slow, noisy progress
    traces = rollout(envs, AgentsActor(agents), seeds, groups=np.repeat([0, 1], G), noise_seeds=np.arange(2 * G),
                     options=hard)
    for g in (0, 1):
        group = traces[g * G:(g + 1) * G]
        assert len({t.difficulty for t in group}) == 1
        # same actions, own noise: the J curves differ within the group
        assert len({tuple(t.j_curve) for t in group}) > 1
    # without fresh noise the same seed and the same actions replay the same trajectory
    same = rollout(envs, AgentsActor(agents), seeds, options=hard)
    assert len({tuple(t.j_curve) for t in same[:G]}) == 1


def test_difficulty_groups_share_the_level():
    from ttc_gym.training.sim_rollout import (
        PolicyActor,
        make_vector_env,
        rollout_difficulty_groups,
    )

    _, policy = _policy()
    venvs = {}
    venv_for = lambda n: venvs.setdefault(n, make_vector_env(n))
    levels = [2, 0, 2, 1]
    traces = rollout_difficulty_groups(venv_for, PolicyActor(policy, torch.Generator().manual_seed(0)), levels, 4, seed=3)
    assert [t.group for t in traces] == list(np.repeat(np.arange(4), 4))
    assert [t.difficulty for t in traces] == list(np.repeat(levels, 4))
    result = train(SimTrainConfig(algo="mrt-online", group_by="difficulty", iterations=2, batch_size=16, group_size=4))
    assert len(result.history) == 2


# -- the trainers -----------------------------------------------------------------------------------
SMALL = {"iterations": 12, "batch_size": 64, "group_size": 8, "lr": 0.03, "max_episodes": 6}


@pytest.mark.parametrize("algo", ["grpo", "mrt", "mrt-online", "mrt-rtg", "star", "mrt-star"])
def test_each_trainer_improves_on_its_initial_policy(algo):
    torch.set_num_threads(1)
    before, after = [], []
    for seed in range(5):
        result = train(SimTrainConfig(algo=algo, seed=seed, **SMALL))
        kwargs = result.config.make_env_kwargs()
        before.append(batch_stats(evaluate_policy(result.initial_policy, kwargs, problems=400))["return"])
        after.append(batch_stats(evaluate_policy(result.policy, kwargs, problems=400))["return"])
    assert np.mean(after) > np.mean(before) + 0.1, (before, after)
    assert sum(a > b for a, b in zip(after, before)) >= 4, (before, after)


def test_mrt_star_keeps_the_max_progress_subset_of_stars_traces():
    # Same seed, same initial policy: the first round's traces are the same for both; MRT-STaR keeps
    # the correct ones of maximal progress per difficulty level, a strict subset of STaR's here.
    cfg = {"iterations": 1, "batch_size": 64, "max_episodes": 6, "seed": 3}
    star = train(SimTrainConfig(algo="star", **cfg)).history[0]["kept"]
    mrt_star = train(SimTrainConfig(algo="mrt-star", **cfg)).history[0]["kept"]
    assert 0 < mrt_star < star


def test_training_writes_csv_and_a_loadable_checkpoint(tmp_path):
    cfg = SimTrainConfig(algo="mrt", iterations=3, batch_size=16, group_size=4, max_episodes=4,
                         log_csv=str(tmp_path / "log.csv"), checkpoint=str(tmp_path / "p.pt"), eval_every=3,
                         eval_problems=50)
    result = train(cfg)
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert {"step", "return", "accuracy", "episodes", "progress", "loss"} <= set(rows[0])
    assert rows[-1]["eval_accuracy"] != ""
    loaded = SimPolicy.load(tmp_path / "p.pt")
    obs = np.zeros((3, 6), dtype=np.int64)
    assert torch.equal(loaded.log_prob(obs, [0, 1, 2]), result.policy.log_prob(obs, [0, 1, 2]))
    records = [t.to_record() for t in evaluate_policy(loaded, cfg.make_env_kwargs(), problems=20)]
    assert summarize(records, budget_episodes=4, budget_tokens=4 * 256)["accuracy"][0] >= 0.0


def test_same_seed_same_training():
    cfg = SimTrainConfig(algo="grpo", iterations=3, batch_size=16, group_size=4, max_episodes=4)
    a, b = train(cfg), train(cfg)
    assert [r["return"] for r in a.history] == [r["return"] for r in b.history]
    assert all(torch.equal(x, y) for x, y in zip(a.policy.state_dict().values(), b.policy.state_dict().values()))


# -- bad configs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 30, "group_size": 8}, ValueError, "multiple of group_size"),
        ({"alpha": -0.5}, ValueError, "alpha"),
        ({"algo": "mrtt"}, ValueError, "Did you mean 'mrt'"),
        ({"algo": "grpo", "group_size": 1, "batch_size": 8}, ValueError, "group_size >= 2"),
        ({"trace_source": "experts"}, ValueError, "Did you mean 'expert'"),
        ({"iterations": 0}, ValueError, "iterations"),
        ({"env_kwargs": {"max_episodes": 3}}, ValueError, "own config fields"),
        ({"expert_mixture": "strong"}, ValueError, "Did you mean 'strong-weak'"),
        ({"expert_mixture": "strong-weak"}, ValueError, "both or neither"),
        ({"expert_strong_share": 0.5}, ValueError, "both or neither"),
        ({"expert_mixture": "strong-weak", "expert_strong_share": 1.5}, ValueError, "expert_strong_share"),
    ],
)
def test_bad_configs_fail_before_training(kwargs, error, match):
    with pytest.raises(error, match=match):
        SimTrainConfig(**kwargs)


def test_bad_env_arguments_fail_before_training():
    with pytest.raises(ValueError, match="Did you mean 'num_strategies'"):
        train(SimTrainConfig(env_kwargs={"num_strategy": 4}, iterations=1))


def test_cli_parses_into_the_config():
    cfg = parse_config(SimTrainConfig, ["--algo", "mrt-star", "--no-adv-scale", "--prover-samples", "8",
                                        "--env-kwargs", '{"num_strategies": 4}', "--alpha", "0.5"])
    assert (cfg.algo, cfg.adv_scale, cfg.prover_samples, cfg.env_kwargs, cfg.alpha) == (
        "mrt-star", False, 8, {"num_strategies": 4}, 0.5)
    assert parse_config(SimTrainConfig, ["--prover-samples", "none"]).prover_samples is None
    with pytest.raises(ValueError, match="Did you mean 'grpo'"):
        parse_config(SimTrainConfig, ["--algo", "grpoo"])


def test_cli_reports_a_bad_config_without_training(capsys):
    from ttc_gym.training.sim_train import main

    assert main(["--algo", "mtr"]) == 2
    assert "Did you mean 'mrt'" in capsys.readouterr().err


def test_policy_reset_seed_makes_each_problem_reproducible_on_its_own():
    env = gym.make("TTC-Sim-v0", max_episodes=10)

    def actions(order, base_seed=0):
        policy = SimPolicy.for_space(env.observation_space, env.action_space, seed=base_seed)
        return {s: run_rollout(env, policy, seed=s).actions for s in order}

    forward, backward = actions([1, 2, 3, 4, 5]), actions([5, 4, 3, 2, 1])
    assert forward == backward  # problem s's actions depend on s (and the base seed) only
    assert actions([1, 2, 3, 4, 5], base_seed=1) != forward  # the base seed matters
    _, policy = _policy(seed=0)
    obs = np.zeros((1, 6), dtype=np.int64)
    policy.reset(seed=7)
    first = [policy.act(obs) for _ in range(40)]
    policy.reset(seed=7)
    assert [policy.act(obs) for _ in range(40)] == first
    policy.reset()  # no seed: the generator carries on
    assert [policy.act(obs) for _ in range(40)] != first
    assert not hasattr(policy, "set_act_seed")  # one convention: reset(seed=...)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        policy.reset(seed=-1)


# -- checkpoints along the way, --resume, output paths -----------------------------------------------
RESUMABLE = {"iterations": 6, "batch_size": 16, "group_size": 4, "max_episodes": 4, "save_every": 2,
             "eval_every": 3, "eval_problems": 40}


class _Stop(Exception):
    """Stands for a kill after some iteration."""


def _stop_after(step):
    def log(row):
        if row["step"] == step:
            raise _Stop

    return log


def _csv_rows(path):
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "wall_s"} for row in csv.DictReader(handle)]


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("extra", [
    {"algo": "grpo"},
    {"algo": "mrt-online", "group_by": "difficulty", "kl_coef": 0.1},
    {"algo": "mrt-star", "trace_source": "expert", "sft_steps": 2},
    {"algo": "star", "sft_steps": 2},
    {"algo": "mrt", "entropy_coef": 0.05, "max_grad_norm": 0.5},
])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, extra):
    torch.set_num_threads(1)
    full = SimTrainConfig(**RESUMABLE, **extra, checkpoint=str(tmp_path / "full.pt"), log_csv=str(tmp_path / "full.csv"))
    reference = train(full)
    cut = SimTrainConfig(**RESUMABLE, **extra, checkpoint=str(tmp_path / "cut.pt"), log_csv=str(tmp_path / "cut.csv"))
    with pytest.raises(_Stop):  # stopped after iteration 3: the checkpoint holds iteration 2, the CSV 3 rows
        train(cut, log=_stop_after(3))
    assert len(_csv_rows(tmp_path / "cut.csv")) == 3
    assert SimPolicy.read_checkpoint(tmp_path / "cut.pt")["extra"]["trainer_state"]["step"] == 2
    with pytest.raises(ValueError, match="already exists; pass --resume"):
        train(cut)  # never silently overwrite the saved run
    seen = []
    resumed = train(SimTrainConfig(**{**cut.__dict__, "resume": True}), log=lambda row: seen.append(row["step"]))
    assert resumed.start_step == 2 and seen == [3, 4, 5, 6]
    assert _same_weights(resumed.policy, reference.policy)
    assert _same_weights(SimPolicy.load(tmp_path / "cut.pt"), reference.policy)
    assert _csv_rows(tmp_path / "cut.csv") == _csv_rows(tmp_path / "full.csv")
    drop_wall = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert drop_wall(resumed.history) == drop_wall(reference.history)
    # --iterations may grow: resuming a finished run trains on from where it ended
    longer = train(SimTrainConfig(**{**cut.__dict__, "resume": True, "iterations": 7}))
    assert [r["step"] for r in longer.history] == list(range(1, 8))


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    """SIGKILL (no cleanup at all) after iteration 5 with --save-every 2: the resumed run ends as the
    uninterrupted one, and the rows logged after the last checkpoint are dropped."""
    import subprocess
    import sys

    args = ["--algo", "mrt", "--iterations", "7", "--batch-size", "16", "--group-size", "4", "--max-episodes", "4",
            "--save-every", "2"]
    script = (
        "import os, signal, sys, torch\n"
        "from ttc_gym.training.config_cli import parse_config\n"
        "from ttc_gym.training.sim_config import SimTrainConfig\n"
        "from ttc_gym.training.sim_train import train\n"
        "torch.set_num_threads(1)\n"
        "def log(row):\n"
        "    if row['step'] == 5:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "train(parse_config(SimTrainConfig, sys.argv[1:]), log=log)\n"
    )
    paths = ["--checkpoint", str(tmp_path / "run.pt"), "--log-csv", str(tmp_path / "run.csv")]
    done = subprocess.run([sys.executable, "-c", script, *args, *paths], capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, done.stderr
    assert len(_csv_rows(tmp_path / "run.csv")) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.csv", "run.pt"]  # no temporary file left
    torch.set_num_threads(1)
    resumed = train(parse_config(SimTrainConfig, [*args, *paths, "--resume"]))
    assert resumed.start_step == 4
    reference = train(parse_config(SimTrainConfig, [*args, "--checkpoint", str(tmp_path / "ref.pt"),
                                                    "--log-csv", str(tmp_path / "ref.csv")]))
    assert _same_weights(resumed.policy, reference.policy)
    assert _csv_rows(tmp_path / "run.csv") == _csv_rows(tmp_path / "ref.csv")


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    _, policy = _policy(seed=1)
    path = policy.save(tmp_path / "p.pt")
    before = path.read_bytes()

    def torn_save(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(OSError, match="No space left"):
        _policy(seed=2)[1].save(path)
    assert path.read_bytes() == before  # the old checkpoint, whole
    assert [p.name for p in tmp_path.iterdir()] == ["p.pt"]  # and no temporary file


def _bad_paths(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    return [
        (str(tmp_path / "a_dir"), "is a folder"),
        (str(tmp_path / "new_dir") + "/", "is a folder"),
        (str(tmp_path / "a_file" / "p.pt"), "is a file, not a folder"),
        (str(tmp_path / "a_file" / "deeper" / "p.pt"), "is a file, not a folder"),
    ]


@pytest.mark.parametrize("option", ["checkpoint", "log_csv"])
def test_output_paths_are_checked_before_training(tmp_path, option):
    cases = _bad_paths(tmp_path)
    if Path("/proc/self").is_dir():  # a read-only file system (refuses root too)
        cases.append(("/proc/ttc-gym-test/out", "cannot be written"))
    for path, match in cases:
        seen = []
        with pytest.raises(ValueError, match=match):
            train(SimTrainConfig(iterations=2, batch_size=8, group_size=4, **{option: path}), log=seen.append)
        assert seen == [], path  # nothing trained
    assert not (tmp_path / "new_dir").exists()  # the check creates nothing


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    from ttc_gym.training.sim_train import main

    (tmp_path / "a_file").write_text("x")
    small = ["--iterations", "1", "--batch-size", "8", "--group-size", "4"]
    cases = [
        (["--env-kwargs", "{bad"], "expected a JSON object"),  # unparseable
        (["--env-kwargs", "[1, 2]"], "expected a JSON object"),
        (["--env-kwargs", '{"num_strategy": 4}'], "Did you mean 'num_strategies'"),  # unknown env argument
        (["--env-kwargs", '{"alpha": "high"}'], "alpha must be a number"),  # wrong type
        (["--env-kwargs", '{"num_strategies": 2.5}'], "num_strategies must be an integer"),
        (["--env-kwargs", '{"alpha": NaN}'], "alpha must be finite"),
        (["--max-episodes", "100000"], "max_episodes"),  # out of range
        (["--seed", "99999999999999999999999"], "seed must be <="),
        (["--lr", "nan"], "lr must be finite"),
        (["--iterations", "ten"], "--iterations: expected int"),
        (["--no-such-option", "1"], "unrecognized arguments"),
        (["--save-every", "2"], "needs a checkpoint path"),
        (["--checkpoint", str(tmp_path)], "is a folder"),
        (["--log-csv", str(tmp_path / "a_file" / "log.csv")], "is a file, not a folder"),
    ]
    for argv, match in cases:
        assert main([*argv, *small]) == 2, argv
        out, err = capsys.readouterr()
        assert out == "", argv  # nothing trained
        assert err.startswith("error: ") and err.count("\n") == 1 and match in err, (argv, err)
        assert "Traceback" not in err


# -- the expert of the verifier-free baselines ------------------------------------------------------
def test_heterogeneous_expert_is_gold_free_and_its_spread_sets_the_mixture():
    from ttc_gym.agents.heuristics import NeverVerify
    from ttc_gym.training.experts import HeterogeneousExpert

    env = gym.make("TTC-Sim-v0", max_episodes=6, switch_keep=0.5)  # a 7-field observation, too
    model = env.unwrapped.model
    gold = {"J", "J_exact", "progress", "outcome", "reward"}
    mixed = HeterogeneousExpert(6, seed=0, spread=1.0, model=model).agents(60)
    assert len({repr(a) for a in mixed}) > 3  # several strategies and parameters
    for i, agent in enumerate(mixed):
        obs, info = env.reset(seed=i)
        done = False
        while not done:  # the agents act on the gold-free part of info only (a KeyError otherwise)
            obs, _, term, trunc, info = env.step(agent.act(obs, {k: v for k, v in info.items() if k not in gold}))
            done = term or trunc
    single = HeterogeneousExpert(6, seed=0, spread=0.0).agents(20)
    assert {repr(a) for a in single} == {repr(NeverVerify(2))}
    with pytest.raises(TypeError, match="public model"):
        HeterogeneousExpert(6, spread=0.5)
    with pytest.raises(ValueError):
        SimTrainConfig(expert_spread=1.5)


def test_strong_weak_expert_varies_heterogeneity_at_a_fixed_mean_accuracy():
    """The calibrated strong-weak mixture is as accurate as the base heuristic (within Monte Carlo
    error), so the expert's spread changes how much its traces differ, not its mean accuracy."""
    from ttc_gym.training.experts import HeterogeneousExpert, calibrated_strong_share
    from ttc_gym.training.sim_rollout import AgentsActor
    from ttc_gym.training.sim_train import evaluate_policy

    model = gym.make("TTC-Sim-v0", max_episodes=6).unwrapped.model
    cal = calibrated_strong_share(model, problems=4000)
    assert cal["acc_weak"] < cal["acc_base"] < cal["acc_strong"] and 0 < cal["strong_share"] < 1
    n = 6000
    accs = {}
    for spread in (0.0, 1.0):
        expert = HeterogeneousExpert(6, seed=1, spread=spread, model=model, mixture="strong-weak",
                                     strong_share=cal["strong_share"])
        traces = evaluate_policy(None, {"max_episodes": 6}, problems=n, seed=3, actor=AgentsActor(expert.agents(n)), chunk=n)
        accs[spread] = np.mean([t.outcome for t in traces])
    se = np.sqrt(2 * 0.25 / n + 2 * 0.25 / 4000)
    assert abs(accs[1.0] - accs[0.0]) < 3 * se, (accs, se)
    with pytest.raises(ValueError, match="strong_share"):
        HeterogeneousExpert(6, spread=0.5, model=model, mixture="strong-weak")


def test_strong_weak_expert_plans_on_the_whole_observation_of_a_knob_env():
    """The planner reads the env's own observation (kept_steps, ruled_out included), and the calibration
    runs the env the model describes, knobs and all."""
    from ttc_gym.training.experts import HeterogeneousExpert, calibrated_strong_share

    kwargs = {"max_episodes": 5, "switch_keep": 0.5, "rule_out": 0.5, "heterogeneity": 0.95}
    env = gym.make("TTC-Sim-v0", **kwargs)
    model = env.unwrapped.model
    expert = HeterogeneousExpert(5, seed=0, spread=1.0, model=model, mixture="strong-weak", strong_share=1.0)
    correct = []
    for seed, agent in enumerate(expert.agents(300)):
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(agent.act(obs, info))
            done = term or trunc
        correct.append(info["outcome"])
    from ttc_gym.agents.oracle import j_star_curve

    star = j_star_curve(model)[-1]
    assert abs(np.mean(correct) - star) < 3 * np.sqrt(star * (1 - star) / 300)
    assert calibrated_strong_share(model, problems=500)["acc_strong"] == pytest.approx(star)


def test_init_policy_starts_from_a_saved_policy_and_refuses_another_shape(tmp_path):
    base = train(SimTrainConfig(algo="grpo", iterations=2, batch_size=16, group_size=4, seed=0, max_episodes=4,
                                checkpoint=str(tmp_path / "base.pt")))
    cont = SimTrainConfig(algo="star", iterations=1, batch_size=16, seed=5, max_episodes=4,
                          init_policy=str(tmp_path / "base.pt"))
    from ttc_gym.training.sim_train import SimParts

    parts = SimParts(cont)
    for a, b in zip(parts.policy.state_dict().values(), base.policy.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="observation sizes"):
        SimParts(SimTrainConfig(algo="star", iterations=1, batch_size=16, max_episodes=6, init_policy=str(tmp_path / "base.pt")))
    with pytest.raises(ValueError, match="does not exist"):
        SimParts(SimTrainConfig(algo="star", iterations=1, batch_size=16, init_policy=str(tmp_path / "none.pt")))
