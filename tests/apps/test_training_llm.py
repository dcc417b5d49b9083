"""The LLM trainer on TTC-Math-v0 (ttc_gym.training.llm_train), with tiny random engines."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from ttc_gym.training import algorithms as alg
from ttc_gym.training.llm_config import LLMTrainConfig
from ttc_gym.training.llm_checkpoint import find_checkpoints
from ttc_gym.training.llm_loss import episode_logprobs
from ttc_gym.training.llm_rollouts import collect_batch, make_envs, plan_iteration
from ttc_gym.training.llm_train import train
from ttc_gym.problems import make_source
from tests.conftest import tiny_engine
from ttc_gym.engines.testing import tiny_random_engine

FAST = dict(algo="mrt-online", iterations=1, problems_per_iter=2, group_size=2, max_episodes=2, max_episode_tokens=8,
            num_prover_samples=2, env_kwargs={"max_answer_tokens": 4}, micro_batch_size=3, lr=1e-2,
            tensorboard=False)


def _config(tmp_path, **kw) -> LLMTrainConfig:
    return LLMTrainConfig(**{**FAST, "out": str(tmp_path / "run"), **kw})


def _collect(config, agent, iteration=0):
    """The rollouts of `iteration`, as the trainer collects them (prover: the policy itself)."""
    plans = plan_iteration(config, make_source(config.source), iteration)
    return collect_batch(make_envs(config, agent.engine), agent, plans)


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
    from ttc_gym.agents.llm import LLMAgent
    from ttc_gym.engines import SamplingConfig
    from ttc_gym.seeding import prefix_seed
    from ttc_gym.prompts import PromptTemplate

    engine = tiny_random_engine(seed=2)
    prompt = PromptTemplate().reasoning_prompt(engine, "What is 2+3?", ["First I add.", "Then I check."])
    assert engine.encode(prompt) != engine.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    config = _config(tmp_path, problems_per_iter=1, group_size=2)
    agent = LLMAgent(engine, max_episode_tokens=8, temperature=1.0)
    for ro in _collect(config, agent):
        assert ro.prompt_ids == [engine.encode(p) for p in ro.prompts]
        for e_ids, text in zip(ro.episode_ids, ro.episodes):
            assert 1 <= len(e_ids) <= 8 and engine.tokenizer.decode(e_ids).startswith(text)
    # The episode ids are the sampled ones (`Completion.token_ids`).
    episode = agent.write_batch([{"problem": "What is 2+3?", "episodes": ("First I add.", "Then I check.")}],
                                [{"tokens_left": None}])[0]
    completion = engine.generate([prompt], SamplingConfig(max_new_tokens=8, temperature=1.0, stop=("\n\n",)),
                                 seed=[prefix_seed(0, "episode", "What is 2+3?", "First I add.", "Then I check.", "\x00")])
    assert episode.token_ids == completion[0][0].token_ids and len(episode.token_ids) == completion[0][0].num_tokens
    # ... and the agent reports the prompt it wrote after, as the engine encoded it.
    assert episode.prompt == prompt and episode.prompt_ids == tuple(engine.encode(prompt))


def test_bad_configs_fail_before_any_model_loads(tmp_path, monkeypatch):
    import ttc_gym.training.llm_train as lt

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
    with pytest.raises(ValueError, match="prover='frozen'"):
        LLMTrainConfig(prover="policy", prover_model="default")
    with pytest.raises(ValueError, match="Did you mean 'policy'"):
        LLMTrainConfig(prover="polcy")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LLMTrainConfig(prover_model=str(tmp_path / "missing-prover"))
    # The command line reports them as errors (exit 2), no traceback, no model.
    assert lt.main(["--batch-size", "6", "--group-size", "4"]) == 2
    assert lt.main(["--alpha", "-1"]) == 2
    assert lt.main(["--model", str(tmp_path / "nope")]) == 2
    assert lt.main(["--prover", "policy", "--prover-model", "default"]) == 2


def test_the_prover_is_the_policy_by_default_and_frozen_on_request():
    """MRT's online setting: J from the policy being trained (docs/formulation.md §2); a frozen prover
    when asked for (explicitly, or by naming its model)."""
    config = LLMTrainConfig()
    assert config.prover == "policy" and config.prover_model is None
    assert LLMTrainConfig(prover="frozen").prover_model == "default"
    named = LLMTrainConfig(prover_model="default")
    assert named.prover == "frozen" and named.prover_model == "default"


def test_mrt_online_reduces_to_grpo_at_alpha_zero_on_real_rollouts(tmp_path):
    from ttc_gym.agents.llm import LLMAgent

    config = _config(tmp_path, problems_per_iter=2, group_size=3)
    agent = LLMAgent(tiny_random_engine(seed=2), max_episode_tokens=8, temperature=1.0)
    rollouts = _collect(config, agent)
    assert len(rollouts) == 6 and [r.group for r in rollouts] == [0, 0, 0, 1, 1, 1]
    assert len({tuple(r.episodes) for r in rollouts[:3]}) > 1  # per-rollout seeds: the G traces differ
    trajs = [r.trajectory() for r in rollouts]
    for r, t in zip(rollouts, trajs):
        assert t.num_episodes == len(r.episodes) == len(r.prompts)
        assert np.isclose(t.total_progress, r.j_final - r.j0)
    mrt0 = alg.online_advantages(trajs, alpha=0.0)
    grpo = alg.outcome_advantages(trajs)
    for a, b in zip(mrt0, grpo):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("prover", ["policy", "frozen"])
def test_collect_batch_equals_collecting_each_rollout_alone(tmp_path, prover):
    """The lockstep collection on the vector env (one policy call and one prover batch per round,
    finished rollouts not stepped) gives exactly the rollouts that `collect` gives one at a time on
    a single env, with the same plans — with the policy as its own prover, and with a frozen prover
    (then the forced answers at the budget's end are the policy's, batched too)."""
    import gymnasium as gym

    from ttc_gym.agents.llm import LLMAgent
    from ttc_gym.training.llm_rollouts import collect, math_env_kwargs

    # A token budget that ends some rollouts an episode before others (episodes are counted as
    # their text re-tokenizes: 8 or 9 tokens).
    config = _config(tmp_path, problems_per_iter=2, group_size=3, max_episodes=4, max_tokens=17,
                     env_kwargs={"max_answer_tokens": 4, "prover_seed": 1}, prover=prover)

    def prover_engine():
        return tiny_engine() if prover == "frozen" else None

    plans = plan_iteration(config, make_source(config.source), 1)
    assert [p.group for p in plans] == [0, 0, 0, 1, 1, 1] and len({p.seed for p in plans}) == 6
    assert plans[0].problem == plans[2].problem != plans[3].problem
    policy = tiny_random_engine(seed=2)
    envs = make_envs(config, policy, prover_engine())
    assert envs.prover.is_policy == (prover == "policy") and envs.engine is policy
    batched = collect_batch(envs, LLMAgent(policy, max_episode_tokens=8, temperature=1.0), plans)
    # A fresh env and engine (own memos): the reference samples every estimate itself.
    policy = tiny_random_engine(seed=2)
    env = gym.make("TTC-Math-v0", engine=policy, prover_engine=prover_engine(), **math_env_kwargs(config))
    agent = LLMAgent(policy, max_episode_tokens=8, temperature=1.0)
    alone = [collect(env, agent, plan) for plan in plans]
    assert batched == alone
    assert len({len(r.episodes) for r in batched}) >= 2, [len(r.episodes) for r in batched]
    assert agent.seed == 0  # the trainer passes seeds, never sets the agent's
    with pytest.raises(ValueError, match="one sub-env per rollout"):
        collect_batch(make_envs(config, policy, prover_engine()), agent, plans[:4])


def test_the_iteration_plan_depends_only_on_seed_and_iteration(tmp_path):
    source = make_source("procedural")
    config = _config(tmp_path, problems_per_iter=3, group_size=2)
    a = plan_iteration(config, source, 5)
    source.sample(np.random.default_rng(123))  # other draws do not matter
    assert plan_iteration(config, make_source("procedural"), 5) == a == plan_iteration(config, source, 5)
    assert plan_iteration(config, source, 6) != a
    assert plan_iteration(_config(tmp_path, problems_per_iter=3, group_size=2, seed=1), source, 5) != a


@pytest.mark.parametrize("prover", ["policy", "frozen"])
def test_training_is_deterministic_for_a_seed(tmp_path, prover):
    """Two runs of the same config from the same initial weights log the same rows and end with
    the same weights (with the policy as its own prover, and with a frozen prover)."""
    runs = []
    for name in ("a", "b"):
        engine = tiny_random_engine(seed=7)
        result = train(_config(tmp_path / name, algo="mrt-online", temperature=1.0, kl_coef=0.1, iterations=2, prover=prover),
                       policy_engine=engine, prover_engine=tiny_engine() if prover == "frozen" else None)
        rows = [{k: v for k, v in row.items() if k != "wall_s"} for row in result.history]
        runs.append((rows, [p.detach().clone() for p in engine.model.parameters()]))
    (rows_a, weights_a), (rows_b, weights_b) = runs
    assert len(rows_a) == 2
    np.testing.assert_equal(rows_a, rows_b)
    assert all(torch.equal(x, y) for x, y in zip(weights_a, weights_b))


def _mixed_outcomes(monkeypatch):
    """A tiny random model never answers right: mark the first rollout of each group correct, so
    that the group-normalized advantages are not all zero."""
    import ttc_gym.training.llm_train as lt

    real = lt.collect_batch

    def collect(envs, agent, plans):
        rollouts = real(envs, agent, plans)
        for i, ro in enumerate(rollouts):
            ro.outcome = float(i == 0 or plans[i].group != plans[i - 1].group)
        return rollouts

    monkeypatch.setattr(lt, "collect_batch", collect)


def test_one_step_changes_weights_finite_loss_and_checkpoint_reloads(tmp_path, monkeypatch):
    from ttc_gym.engines.transformers_engine import TransformersEngine

    _mixed_outcomes(monkeypatch)
    engine = tiny_random_engine(seed=3)
    before = [p.detach().clone() for p in engine.model.parameters()]
    config = _config(tmp_path, algo="mrt-online", kl_coef=0.1, temperature=1.0)
    result = train(config, policy_engine=engine)
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
    train(config, policy_engine=engine)
    with pytest.raises(FileExistsError, match="--resume"):
        train(_config(tmp_path, algo="grpo", iterations=2), policy_engine=tiny_random_engine(seed=4))
    fresh = tiny_random_engine(seed=4)  # the initial weights: resume must load the checkpoint's
    result = train(_config(tmp_path, algo="grpo", iterations=2, temperature=1.0, resume=True),
                   policy_engine=fresh)
    assert result.step == 2 and [r["step"] for r in result.history] == [2]
    assert [s for s, _ in find_checkpoints(tmp_path / "run")] == [1, 2]
    with open(tmp_path / "run" / "log.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2"]


@pytest.mark.parametrize("algo", ["star", "mrt-star", "mrt-star-threshold"])
def test_star_selection_fits_kept_rollouts(tmp_path, monkeypatch, algo):
    _mixed_outcomes(monkeypatch)
    result = train(_config(tmp_path, algo=algo, temperature=1.0), policy_engine=tiny_random_engine(seed=5))
    row = result.history[0]
    assert row["kept"] == 0.5 if algo == "star" else 0.0 <= row["kept"] <= 0.5
    assert np.isnan(row["loss"]) if row["kept"] == 0 else np.isfinite(row["loss"])


def test_lora_trains_adapters_only(tmp_path, monkeypatch):
    pytest.importorskip("peft")
    _mixed_outcomes(monkeypatch)
    engine = tiny_random_engine(seed=6)
    base = {n: p.detach().clone() for n, p in engine.model.named_parameters()}
    result = train(_config(tmp_path, lora_rank=2, lora_targets="q_proj,v_proj", kl_coef=0.1, temperature=1.0,
                           prover="frozen"), policy_engine=engine, prover_engine=tiny_engine())
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

    from ttc_gym.training.llm_checkpoint import save_dense
    from ttc_gym.engines.testing import tiny_random_model

    model, _ = tiny_random_model(seed=0)
    marker = SimpleNamespace(quantization_config=SimpleNamespace(quant_method="gguf"))
    model.hf_quantizer = marker
    with pytest.raises(ValueError, match="gguf"):
        model.save_pretrained(tmp_path / "plain")
    save_dense(model, tmp_path / "dense")
    assert (tmp_path / "dense" / "config.json").is_file() and model.hf_quantizer is marker


def test_a_policy_prover_re_estimates_j_after_an_optimizer_step():
    """The prover is the policy: after one optimizer step that changes the weights, J of the same
    prefix is sampled again (the engine is called again, and re-encodes the prompt: its prefix store
    was dropped too), not served from the memo; without a step it is served from the memo."""
    from ttc_gym.llm_prover import LLMProver
    from ttc_gym.problems import Problem

    engine = tiny_random_engine(seed=8)
    calls = []
    generate = engine.generate
    engine.generate = lambda prompts, sampling, *, seed: calls.append(len(prompts)) or generate(
        prompts, sampling, seed=seed)
    prover = LLMProver(engine, num_samples=2, max_answer_tokens=4)
    problem = Problem(id="q", question="What is 2 + 3?", answer="5", source="test")
    first = prover.estimate(problem, ["I add 2 and 3."])
    assert prover.estimate(problem, ["I add 2 and 3."]) == first and len(calls) == 1 and prover.weights_version == 0
    assert len(engine.prefix_store) > 0
    # One optimizer step on the policy's weights, in place (as the trainer takes it).
    model = engine.model
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    ids = torch.tensor([engine.encode("What is 2 + 3?")])
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    model.eval()
    reused = engine.stats["reused_tokens"]
    again = prover.estimate(problem, ["I add 2 and 3."])
    assert len(calls) == 2 and prover.weights_version == 1 and prover.calls == 2
    assert engine.stats["reused_tokens"] == reused  # the old weights' keys and values were not reused
    assert prover.estimate(problem, ["I add 2 and 3."]) == again and len(calls) == 2
    # A frozen engine's estimates stay memoized (its weights do not change).
    frozen = LLMProver(tiny_random_engine(seed=9), num_samples=2, max_answer_tokens=4)
    frozen.estimate(problem, [])
    optimizer.step()  # another model's step
    frozen.estimate(problem, [])
    assert frozen.calls == 1 and frozen.weights_version == 0


def test_training_with_the_policy_as_prover_measures_j_with_the_current_weights(tmp_path, monkeypatch):
    """`--prover policy` (the default): the env's prover runs on the policy's engine, and the
    second iteration's estimates are made with the updated weights (the prover saw them change)."""
    import ttc_gym.training.llm_train as lt

    _mixed_outcomes(monkeypatch)
    made = []
    real = lt.make_envs
    monkeypatch.setattr(lt, "make_envs", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    engine = tiny_random_engine(seed=10)
    train(_config(tmp_path, algo="mrt-online", temperature=1.0, iterations=2), policy_engine=engine)
    (envs,) = made
    assert envs.prover.engine is engine and envs.engine is engine and envs.prover.is_policy
    assert envs.prover.weights_version == 1  # one step between the two iterations' rollouts
    with pytest.raises(ValueError, match="prover='frozen'"):
        train(_config(tmp_path / "b"), policy_engine=engine, prover_engine=tiny_engine())
    with pytest.raises(ValueError, match="must not share"):
        train(_config(tmp_path / "c", prover="frozen"), policy_engine=engine, prover_engine=engine)
