"""The LLM trainer on TTC-Math-v0 (ttc_gym.agents.training.llm_train), with tiny random engines."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from ttc_gym.agents.training import algorithms as alg
from ttc_gym.agents.training.llm_config import LLMTrainConfig
from ttc_gym.agents.training.llm_train import (
    collect_batch,
    episode_logprobs,
    find_checkpoints,
    train,
)
from tests.conftest import tiny_engine
from ttc_gym.engines.testing import tiny_random_engine

FAST = dict(iterations=1, problems_per_iter=2, group_size=2, max_episodes=2, max_episode_tokens=8,
            num_prover_samples=2, env_kwargs={"max_answer_tokens": 4}, micro_batch_size=3, lr=1e-2,
            tensorboard=False)


def _config(tmp_path, **kw) -> LLMTrainConfig:
    return LLMTrainConfig(**{**FAST, "out": str(tmp_path / "run"), **kw})


def _prompt_and_text(engine):
    prompt = engine.format_chat("What is 2 + 3?", "Let me add.\n\n")
    return prompt, "2 + 3 = 5, so the answer is 5."


def test_episode_logprobs_matches_hand_computation():
    engine = tiny_random_engine(seed=1)
    model, tok = engine.model, engine.tokenizer
    prompt, text = _prompt_and_text(engine)
    p_ids = engine.encode(prompt)
    t_ids = tok(text, add_special_tokens=False)["input_ids"]
    lp = episode_logprobs(model, p_ids, t_ids)
    assert lp.shape == (len(t_ids),)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p_ids + t_ids])).logits[0]
    expected = []
    for k, tid in enumerate(t_ids):
        row = logits[len(p_ids) + k - 1].double()
        expected.append(float(row[tid] - torch.logsumexp(row, 0)))
    np.testing.assert_allclose(lp.detach().double().numpy(), expected, atol=1e-5)
    assert episode_logprobs(model, p_ids, []).numel() == 0


def test_rollouts_record_the_ids_the_engine_conditioned_on_and_sampled(tmp_path):
    """A prompt that ends with the paragraph break tokenizes differently alone than as the engine
    encodes it; the trainer scores the engine's ids and the sampled ids, not re-tokenized text."""
    import gymnasium as gym

    from ttc_gym.agents.llm import LLMAgent
    from ttc_gym.engines import SamplingConfig
    from ttc_gym.llm_prover import prefix_seed
    from ttc_gym.prompts import PromptTemplate

    engine = tiny_random_engine(seed=2)
    prompt = PromptTemplate().reasoning_prompt(engine, "What is 2+3?", ["First I add.", "Then I check."])
    assert engine.encode(prompt) != engine.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    config = _config(tmp_path, problems_per_iter=1, group_size=2)
    env = gym.make("TTC-Math-v0", engine=tiny_engine(), max_episodes=2, num_prover_samples=2, max_answer_tokens=4)
    agent = LLMAgent(engine, max_episode_tokens=8, temperature=1.0)
    for ro in collect_batch(config, env, agent, iteration=0):
        assert ro.prompt_ids == [engine.encode(p) for p in ro.prompts]
        for e_ids, text in zip(ro.episode_ids, ro.episodes):
            assert 1 <= len(e_ids) <= 8 and engine.tokenizer.decode(e_ids).startswith(text)
    # The episode ids are the sampled ones (`Completion.token_ids`).
    episode = agent.write_batch([{"problem": "What is 2+3?", "episodes": ("First I add.", "Then I check.")}],
                                [{"tokens_left": None}])[0]
    completion = engine.generate([prompt], SamplingConfig(max_new_tokens=8, temperature=1.0, stop=("\n\n",)),
                                 seed=[prefix_seed(0, "episode", "What is 2+3?", "First I add.", "Then I check.", "\x00")])
    assert episode.token_ids == completion[0][0].token_ids and len(episode.token_ids) == completion[0][0].num_tokens


def test_bad_configs_fail_before_any_model_loads(tmp_path, monkeypatch):
    import ttc_gym.agents.training.llm_train as lt

    monkeypatch.setattr(lt, "build_policy_engine", lambda c: pytest.fail("a model was loaded"))
    with pytest.raises(ValueError, match="multiple of group_size"):
        LLMTrainConfig(batch_size=6, group_size=4)
    with pytest.raises(ValueError, match="alpha"):
        LLMTrainConfig(alpha=-0.5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LLMTrainConfig(model=str(tmp_path / "missing" / "checkpoint-3"))
    with pytest.raises(ValueError, match="Did you mean 'mrt'"):
        LLMTrainConfig(algo="mtr")
    with pytest.raises(ValueError, match="lr"):
        LLMTrainConfig(lr=0.0)
    with pytest.raises(ValueError, match="group_size >= 2"):
        LLMTrainConfig(algo="grpo", group_size=1)
    # The command line reports them as errors (exit 2), no traceback, no model.
    assert lt.main(["--batch-size", "6", "--group-size", "4"]) == 2
    assert lt.main(["--alpha", "-1"]) == 2
    assert lt.main(["--model", str(tmp_path / "nope")]) == 2


def test_mrt_reduces_to_grpo_at_alpha_zero_on_real_rollouts(tmp_path):
    import gymnasium as gym

    from ttc_gym.agents.llm import LLMAgent

    config = _config(tmp_path, problems_per_iter=2, group_size=3)
    env = gym.make("TTC-Math-v0", engine=tiny_engine(), max_episodes=2, num_prover_samples=2, max_answer_tokens=4)
    agent = LLMAgent(tiny_random_engine(seed=2), max_episode_tokens=8, temperature=1.0)
    rollouts = collect_batch(config, env, agent, iteration=0)
    assert len(rollouts) == 6 and [r.group for r in rollouts] == [0, 0, 0, 1, 1, 1]
    assert len({tuple(r.episodes) for r in rollouts[:3]}) > 1  # per-rollout seeds: the G traces differ
    trajs = [r.trajectory() for r in rollouts]
    for r, t in zip(rollouts, trajs):
        assert t.num_episodes == len(r.episodes) == len(r.prompts)
        assert np.isclose(t.total_progress, r.j_final - r.j0)
    mrt0 = alg.mrt_advantages(trajs, alpha=0.0)
    grpo = alg.outcome_advantages(trajs)
    for a, b in zip(mrt0, grpo):
        np.testing.assert_array_equal(a, b)


def test_collect_batch_equals_collecting_each_rollout_alone(tmp_path):
    """The lockstep collection (one policy call and one prover batch per round) gives exactly the
    rollouts that `collect` gives one at a time through the gym API, with the same seeds."""
    import gymnasium as gym

    from ttc_gym.agents.llm import LLMAgent
    from ttc_gym.agents.training.llm_train import collect

    config = _config(tmp_path, problems_per_iter=2, group_size=3)

    def make():
        # A token budget that ends some rollouts an episode before others (episodes are counted as
        # their text re-tokenizes: 8 or 9 tokens).
        env = gym.make("TTC-Math-v0", engine=tiny_engine(), max_episodes=4, max_tokens=17, num_prover_samples=2,
                       max_answer_tokens=4, prover_seed=1)
        return env, LLMAgent(tiny_random_engine(seed=2), max_episode_tokens=8, temperature=1.0)

    env, agent = make()
    batched = collect_batch(config, env, agent, iteration=1)
    env, agent = make()  # fresh prover memo: the reference samples every estimate itself
    rng = np.random.default_rng([config.seed, 1])
    alone = []
    for group in range(config.problems_per_iter):
        problem = env.unwrapped.source.sample(rng)
        reset_seed = int(rng.integers(0, 2**31))
        for _ in range(config.group_size):
            alone.append(collect(env, agent, problem, group=group, seed=reset_seed,
                                 agent_seed=int(rng.integers(0, 2**31))))
    assert batched == alone
    assert len({len(r.episodes) for r in batched}) >= 2, [len(r.episodes) for r in batched]


def _mixed_outcomes(monkeypatch):
    """A tiny random model never answers right: mark the first rollout of each group correct, so
    that the group-normalized advantages are not all zero."""
    import ttc_gym.agents.training.llm_train as lt

    real = lt.collect_batch

    def collect(config, env, agent, iteration):
        rollouts = real(config, env, agent, iteration)
        for i, ro in enumerate(rollouts):
            ro.outcome = float(i % config.group_size == 0)
        return rollouts

    monkeypatch.setattr(lt, "collect_batch", collect)


def test_one_step_changes_weights_finite_loss_and_checkpoint_reloads(tmp_path, monkeypatch):
    from ttc_gym.engines.transformers_engine import TransformersEngine

    _mixed_outcomes(monkeypatch)
    engine = tiny_random_engine(seed=3)
    before = [p.detach().clone() for p in engine.model.parameters()]
    config = _config(tmp_path, algo="mrt", kl_coef=0.1, temperature=1.0)
    result = train(config, policy_engine=engine, prover_engine=tiny_engine())
    assert result.step == 1 and len(result.history) == 1
    row = result.history[0]
    assert np.isfinite(row["loss"]) and np.isfinite(row["kl"]) and row["kl"] >= 0
    assert row["outcome"] == 0.5 and row["loss"] != 0.0
    assert any(not torch.equal(a, b) for a, b in zip(before, engine.model.parameters()))
    assert not engine.model.training
    # The log has one row per step with reward and progress.
    with open(tmp_path / "run" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1"] and {"reward", "progress", "outcome", "J_final"} <= set(rows[0])
    # Reloading the checkpoint reproduces the policy's log-probabilities exactly.
    (step, path), = find_checkpoints(tmp_path / "run")
    assert step == 1 and (path / "config.json").is_file()
    reloaded = TransformersEngine(str(path))
    prompt, text = _prompt_and_text(engine)
    assert reloaded.encode(prompt) == engine.encode(prompt)
    ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        a = episode_logprobs(engine.model, engine.encode(prompt), ids)
        b = episode_logprobs(reloaded.model, reloaded.encode(prompt), ids)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # ... and it is a bench agent.
    from ttc_gym.agents.factories import llm_checkpoint
    from ttc_gym.bench.agent_registry import parse_agent_spec

    spec = parse_agent_spec(f"llm-checkpoint:{path}")
    assert spec.name == "llm-checkpoint" and spec.args == (str(path),)
    import gymnasium as gym

    env = gym.make("TTC-Math-v0", engine=tiny_engine(), max_episodes=2, num_prover_samples=2, max_answer_tokens=4)
    obs, info = env.reset(seed=0)
    assert isinstance(llm_checkpoint(env, str(path), max_episode_tokens=4).act(obs, info), str)
    with pytest.raises(FileNotFoundError):
        llm_checkpoint.check(str(tmp_path / "nope"))


def test_resume_continues_the_step_count(tmp_path):
    engine = tiny_random_engine(seed=4)
    config = _config(tmp_path, algo="grpo", iterations=1, temperature=1.0)
    train(config, policy_engine=engine, prover_engine=tiny_engine())
    with pytest.raises(FileExistsError, match="--resume"):
        train(_config(tmp_path, algo="grpo", iterations=2), policy_engine=tiny_random_engine(seed=4),
              prover_engine=tiny_engine())
    fresh = tiny_random_engine(seed=4)  # the initial weights: resume must load the checkpoint's
    result = train(_config(tmp_path, algo="grpo", iterations=2, temperature=1.0, resume=True),
                   policy_engine=fresh, prover_engine=tiny_engine())
    assert result.step == 2 and [r["step"] for r in result.history] == [2]
    assert [s for s, _ in find_checkpoints(tmp_path / "run")] == [1, 2]
    with open(tmp_path / "run" / "log.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2"]


@pytest.mark.parametrize("algo", ["star", "mrt-star"])
def test_star_selection_fits_kept_rollouts(tmp_path, monkeypatch, algo):
    _mixed_outcomes(monkeypatch)
    result = train(_config(tmp_path, algo=algo, temperature=1.0), policy_engine=tiny_random_engine(seed=5),
                   prover_engine=tiny_engine())
    row = result.history[0]
    assert row["kept"] == 0.5 if algo == "star" else 0.0 <= row["kept"] <= 0.5
    assert np.isnan(row["loss"]) if row["kept"] == 0 else np.isfinite(row["loss"])


def test_lora_trains_adapters_only(tmp_path, monkeypatch):
    pytest.importorskip("peft")
    _mixed_outcomes(monkeypatch)
    engine = tiny_random_engine(seed=6)
    base = {n: p.detach().clone() for n, p in engine.model.named_parameters()}
    result = train(_config(tmp_path, lora_rank=2, lora_targets="q_proj,v_proj", kl_coef=0.1, temperature=1.0),
                   policy_engine=engine, prover_engine=tiny_engine())
    assert np.isfinite(result.history[0]["loss"])
    assert (tmp_path / "run" / "checkpoint-1" / "adapter").is_dir()
    lora_names = [n for n in dict(engine.model.named_parameters()) if "lora_" in n]
    assert lora_names
    for n, p in engine.model.named_parameters():  # base weights (renamed by peft) are unchanged
        key = n.replace("base_layer.", "")
        if key in base:
            assert torch.equal(p.detach(), base[key]), n


def test_cli_train_dispatches(capsys):
    from ttc_gym.cli import main

    assert main(["train", "--env", "TTC-Math-v0", "--alpha", "-1"]) == 2
    assert "alpha" in capsys.readouterr().err
    assert main(["train", "--env", "TTC-Nope-v0"]) == 2
    assert main(["train", "--env", "TTC-Sim-v0", "--batch-size", "5", "--group-size", "2"]) == 2


def test_save_dense_saves_a_gguf_loaded_model(tmp_path):
    """GGUF-loaded models carry a quantizer marker that save_pretrained refuses; save_dense drops it."""
    from types import SimpleNamespace

    from ttc_gym.agents.training.llm_train import save_dense
    from ttc_gym.engines.testing import tiny_random_model

    model, _ = tiny_random_model(seed=0)
    marker = SimpleNamespace(quantization_config=SimpleNamespace(quant_method="gguf"))
    model.hf_quantizer = marker
    with pytest.raises(ValueError, match="gguf"):
        model.save_pretrained(tmp_path / "plain")
    save_dense(model, tmp_path / "dense")
    assert (tmp_path / "dense" / "config.json").is_file() and model.hf_quantizer is marker
