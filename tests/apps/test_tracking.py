"""`--report-to` of both trainers (ttc_gym.training.tracking): TensorBoard events read back with
TensorBoard's own EventAccumulator; W&B in offline mode; bad values and missing libraries refused."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("tensorboard")  # in the `test` extra: CI runs this file

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ttc_gym.training import sim_train, tracking
from ttc_gym.training.llm_config import LLMTrainConfig
from ttc_gym.training.llm_train import train as llm_train
from ttc_gym.training.sim_config import SimTrainConfig
from tests.conftest import tiny_engine


def events(folder) -> EventAccumulator:
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return acc


def test_sim_trainer_reports_to_tensorboard(tmp_path):
    config = SimTrainConfig(algo="mrt", iterations=2, batch_size=16, group_size=4, report_to="tensorboard",
                            report_dir=str(tmp_path / "run"))
    result = sim_train.train(config)
    acc = events(tmp_path / "run" / "tensorboard")
    tags = set(acc.Tags()["scalars"])
    for tag in ("return", "accuracy", "progress", "loss", "episodes", "cost", "tokens", "entropy", "J_curve/episode_0"):
        assert tag in tags, tag
    assert [e.step for e in acc.Scalars("return")] == [1, 2]
    assert [e.value for e in acc.Scalars("return")] == pytest.approx([r["return"] for r in result.history])
    assert all(0.0 <= e.value <= 1.0 for e in acc.Scalars("J_curve/episode_0"))
    assert all(e.value > 0.0 for e in acc.Scalars("entropy"))  # a fresh softmax policy is not deterministic


def test_llm_trainer_reports_to_tensorboard(tmp_path):
    config = LLMTrainConfig(iterations=1, problems_per_iter=2, group_size=2, max_episodes=2, max_episode_tokens=8,
                            num_prover_samples=2, env_kwargs={"max_answer_tokens": 4}, micro_batch_size=3, lr=1e-2,
                            algo="mrt", temperature=1.0, out=str(tmp_path / "run"), report_to="tensorboard")
    result = llm_train(config, policy_engine=tiny_engine())
    acc = events(tmp_path / "run" / "tensorboard")
    tags = set(acc.Tags()["scalars"])
    for tag in ("reward", "outcome", "progress", "cost", "J_0", "J_final", "tokens", "loss", "entropy",
                "J_curve/episode_0"):
        assert tag in tags, tag
    row = result.history[0]
    assert acc.Scalars("J_final")[0].step == 1 and acc.Scalars("J_final")[0].value == pytest.approx(row["J_final"])
    assert acc.Scalars("J_curve/episode_0")[0].value == pytest.approx(row["J_0"])


def test_wandb_offline_run_is_written(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    reporter = tracking.make_reporter("wandb", tmp_path, run_name="t", config={"algo": "mrt"})
    assert reporter.reporters[0].run.settings.mode == "offline"
    reporter.log({"step": 1, "reward": 0.5, "J_curve/episode_0": 0.25, "note": "text", "nan": float("nan")}, 1)
    reporter.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_bad_and_missing_targets_are_refused_up_front(monkeypatch):
    with pytest.raises(ValueError, match="Did you mean 'tensorboard'"):
        SimTrainConfig(report_to="tensorbord")
    with pytest.raises(ValueError, match="cannot be combined"):
        tracking.parse_report_to("none,wandb")
    assert tracking.parse_report_to("tensorboard, wandb,tensorboard") == ("tensorboard", "wandb")
    assert tracking.parse_report_to("none") == ()
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"pip install 'ttc-gym\[tracking\]'"):
        tracking.check_report_to("wandb")
