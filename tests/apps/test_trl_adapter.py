"""The TRL adapter (ttc_gym.integrations.trl_grpo): real TRL GRPOTrainer runs on TTC-Math-v0 with
the tiny random model; the frozen prover is a scripted engine so that J (and progress) move."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from ttc_gym.training import algorithms as alg
from ttc_gym.engines.base import Completion
from ttc_gym.engines.testing import ScriptedChatEngine, tiny_random_engine

import trl  # in the `test` extra: CI runs this file
from ttc_gym.integrations.trl_grpo import (
    TTCGRPOTrainer,
    problem_dataset,
    problems_by_prompt,
    trace_tokens,
)

QUESTIONS = ["What is 5 + 7?", "What is 3 * 4?", "What is 20 - 8?", "What is 24 / 2?"]


class ScriptedProver(ScriptedChatEngine):
    """A frozen prover whose forced answers are right for a share of the K samples that depends on
    the trace (a checksum of the prompt), so J moves from episode to episode: the tiny random policy
    alone never answers right, and progress would be 0 everywhere."""

    name = "scripted-prover"


    def generate(self, prompts, sampling, *, seed):
        out = []
        for prompt in prompts:
            k = zlib.crc32(prompt.encode()) % (sampling.n + 1)
            out.append([Completion(t, 2, "stop", "}$") for t in ["12}$"] * k + ["13}$"] * (sampling.n - k)])
        return out


def _dataset():
    from datasets import Dataset

    return Dataset.from_list([{"prompt": q, "answer": "12", "id": f"q{i}"} for i, q in enumerate(QUESTIONS)])


def _trainer(tmp_path, alpha, *, algo="mrt-online", steps=1, seed=0):
    engine = tiny_random_engine(seed=3)  # fresh weights for every trainer
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / f"{algo}-{alpha}"), per_device_train_batch_size=4, num_generations=2,
        max_steps=steps, learning_rate=1e-2, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
        seed=seed, gradient_checkpointing=False, bf16=False, temperature=1.0, disable_tqdm=True,
        shuffle_dataset=False)
    return TTCGRPOTrainer(engine.model, args, train_dataset=_dataset(), processing_class=engine.tokenizer,
                          algo=algo, alpha=alpha, prover_engine=ScriptedProver(), max_episodes=3,
                          num_prover_samples=4, max_episode_tokens=6, env_kwargs={"max_answer_tokens": 4})


def _logged(trainer) -> dict:
    """The training step's log row (TRL's `state.log_history`, the row with the loss)."""
    rows = [row for row in trainer.state.log_history if "loss" in row]
    assert len(rows) == trainer.args.max_steps
    return rows[0]


def _mixed_outcomes(monkeypatch):
    """The tiny random policy never answers right: mark the first rollout of each group (of 2)
    correct, so that the outcome part of the credit (GRPO's group baseline) is not all zeros."""
    import ttc_gym.integrations.trl_grpo as adapter

    real = adapter.collect_batch

    def collect(envs, agent, plans):
        rollouts = real(envs, agent, plans)
        for k, ro in enumerate(rollouts):
            ro.outcome = float(k % 2 == 0)
        return rollouts

    monkeypatch.setattr(adapter, "collect_batch", collect)


def test_mrt_credit_reaches_trl_loss_and_both_reward_components_are_logged(tmp_path, monkeypatch):
    """The acceptance point: same seed, alpha 0 vs 1 give the same rollouts and different losses;
    TRL logs outcome and progress separately; the per-token advantages TRL trains on are
    algorithms.online_advantages (mrt-online) of the batch, episode by episode."""
    _mixed_outcomes(monkeypatch)
    runs = {}
    for alpha in (0.0, 1.0):
        trainer = _trainer(tmp_path, alpha)
        trainer.train()
        runs[alpha] = trainer
    logs = {alpha: _logged(t) for alpha, t in runs.items()}
    for row in logs.values():
        assert {"rewards/outcome/mean", "rewards/progress/mean", "ttc/exact_context", "ttc/dropped_tokens", "ttc/J_final"} <= set(row)
        assert np.isfinite(row["loss"])
    batches = {alpha: t.last_batch for alpha, t in runs.items()}
    # Same seed: the same traces and the same env signals.
    for ro0, ro1 in zip(batches[0.0]["rollouts"], batches[1.0]["rollouts"]):
        assert ro0.episode_ids == ro1.episode_ids and ro0.progress == ro1.progress
    assert logs[0.0]["rewards/outcome/mean"] == logs[1.0]["rewards/outcome/mean"] == 0.5
    progress = np.concatenate([t.progress for t in batches[1.0]["trajectories"]])
    assert np.abs(progress).max() > 0  # the scripted prover moves J
    assert logs[1.0]["rewards/progress/mean"] == pytest.approx(
        np.mean([t.total_progress for t in batches[1.0]["trajectories"]]), abs=1e-6)
    # TRL's logged reward is the env's return: outcome + alpha * progress.
    assert logs[0.0]["reward"] == pytest.approx(logs[0.0]["rewards/outcome/mean"], abs=1e-6)
    assert logs[1.0]["reward"] == pytest.approx(
        logs[1.0]["rewards/outcome/mean"] + logs[1.0]["rewards/progress/mean"], abs=1e-6)
    assert logs[0.0]["loss"] != pytest.approx(logs[1.0]["loss"], abs=1e-6)
    for alpha, batch in batches.items():
        # TRL's loss (loss_type "dapo", one step per generation: ratio 1) is minus the mean credit
        # over the trained tokens: the per-episode credit is what reaches the gradient.
        trained = sum(sum(t.mask) for t in batch["traces"])
        assert logs[alpha]["loss"] == pytest.approx(-float(batch["advantages"].sum()) / trained, rel=1e-4, abs=1e-6)
    for alpha, batch in batches.items():
        expected = alg.online_advantages(batch["trajectories"], alpha=alpha)
        for got, want in zip(batch["credit"], expected):
            np.testing.assert_allclose(got, want)
        # Every token of episode j carries A_ij; nothing else does.
        adv = batch["advantages"]
        for i, (trace, row) in enumerate(zip(batch["traces"], expected)):
            covered = torch.zeros(adv.shape[1], dtype=torch.bool)
            for (start, end), value in zip(trace.spans, row):
                assert torch.allclose(adv[i, start:end], torch.full((end - start,), float(value)))
                covered[start:end] = True
            assert torch.all(adv[i, ~covered] == 0)
    # At alpha = 0 MRT's credit is GRPO's: one value per rollout.
    for got, want in zip(batches[0.0]["credit"], alg.outcome_advantages(batches[0.0]["trajectories"])):
        np.testing.assert_array_equal(got, want)


def test_trace_tokens_glues_episodes_and_masks_the_glue():
    from ttc_gym.training.llm_rollouts import Rollout

    ro = Rollout(group=0, prompt_ids=[[1, 2], [1, 2, 7, 8, 9, 5, 5], [1, 2, 7, 8, 9, 5, 5, 4, 6],
                                      [1, 2, 7, 8, 9, 5, 5, 4, 6, 5, 5, 6, 5, 5]],
                 episode_ids=[[7, 8, 9], [3, 4], [6], [2]])
    trace = trace_tokens(ro, separator_ids=[5, 5])
    # Episode 0 extends to prompt 1 exactly (glue: the rest of prompt 1); episode 1's ids [3, 4] are
    # not how prompt 2 has them ([4, 6]): the separator follows, and from there on the sequence TRL
    # scores is not the prompt an episode was sampled after (episodes 2 and 3 are not exact).
    assert trace.ids == [7, 8, 9, 5, 5, 3, 4, 5, 5, 6, 5, 5, 2]
    assert trace.mask == [1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 1]
    assert trace.spans == [(0, 3), (5, 7), (9, 10), (12, 13)] and trace.exact == 2 and trace.dropped == 0


def test_trace_tokens_leaves_out_the_blanks_the_env_discarded():
    from ttc_gym.training.llm_rollouts import Rollout

    # 0 is an end-of-turn token and 9 a blank: episode 0 ended the turn after a blank, and the env
    # went on after its text without them; episode 1 ends in a blank the env kept.
    ro = Rollout(group=0, prompt_ids=[[1, 2], [1, 2, 7, 8, 5, 5], [1, 2, 7, 8, 5, 5, 3, 9, 5]],
                 episode_ids=[[7, 8, 9, 0], [3, 9], [4, 0]])
    trace = trace_tokens(ro, separator_ids=[5, 5], blank=lambda token: token in (0, 9))
    assert trace.ids == [7, 8, 5, 5, 3, 9, 5, 4, 0] and trace.mask == [1, 1, 0, 0, 1, 1, 0, 1, 1]
    assert trace.spans == [(0, 2), (4, 6), (7, 9)]  # the last episode keeps its end-of-turn token
    assert trace.exact == 3 and trace.dropped == 2
    kept = trace_tokens(ro, separator_ids=[5, 5])  # without a blank rule: kept, and the contexts drift
    assert kept.ids[:4] == [7, 8, 9, 0] and kept.exact == 1 and kept.dropped == 0
    # Only blanks are dropped: a next prompt that differs in a word falls back to the separator.
    odd = Rollout(group=0, prompt_ids=[[1, 2], [1, 2, 7, 5, 5]], episode_ids=[[7, 8], [3]])
    assert trace_tokens(odd, separator_ids=[5, 5], blank=lambda token: token in (0, 9)).ids == [7, 8, 5, 5, 3]


def test_bad_arguments_are_refused_before_training(tmp_path):
    engine = tiny_random_engine(seed=3)
    args = trl.GRPOConfig(output_dir=str(tmp_path / "x"), per_device_train_batch_size=2, num_generations=2,
                          report_to="none", use_cpu=True)
    kw = dict(train_dataset=_dataset(), processing_class=engine.tokenizer)
    trainer = TTCGRPOTrainer(engine.model, args, alpha=0.5, **kw)
    assert trainer.args.reward_weights == [1.0, 0.5] and args.reward_weights is None  # the caller's config is kept
    with pytest.raises(TypeError, match="reward_funcs"):
        TTCGRPOTrainer(engine.model, args, reward_funcs=[len], **kw)
    with pytest.raises(ValueError, match="Did you mean 'mrt-online'"):
        TTCGRPOTrainer(engine.model, args, algo="mrt-onlin", **kw)
    with pytest.raises(ValueError, match="ttc-gym train --algo mrt"):
        TTCGRPOTrainer(engine.model, args, algo="mrt", **kw)
    with pytest.raises(ValueError, match="alpha"):
        TTCGRPOTrainer(engine.model, args, alpha=-1.0, **kw)
    with pytest.raises(ValueError, match="max_episodes"):
        TTCGRPOTrainer(engine.model, args, env_kwargs={"max_episodes": 2}, **kw)
    with pytest.raises(ValueError, match="columns 'prompt'"):
        problems_by_prompt(_dataset().remove_columns("answer"))
    from datasets import Dataset

    with pytest.raises(ValueError, match="two answers"):
        problems_by_prompt(Dataset.from_list([{"prompt": "q", "answer": "1"}, {"prompt": "q", "answer": "2"}]))


def test_problem_dataset_is_seeded():
    a, b = problem_dataset("procedural:1", 5, seed=3), problem_dataset("procedural:1", 5, seed=3)
    assert a.column_names == ["prompt", "answer", "id"] and a["prompt"] == b["prompt"]
    assert problem_dataset("procedural:1", 5, seed=4)["prompt"] != a["prompt"]


def test_without_trl_the_import_error_names_the_extra(monkeypatch):
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "trl", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "ttc_gym.integrations.trl_grpo")
    with pytest.raises(ImportError, match=r"pip install 'ttc-gym\[trl\]'"):
        importlib.import_module("ttc_gym.integrations.trl_grpo")
