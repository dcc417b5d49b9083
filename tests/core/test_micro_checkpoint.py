"""The shipped micro-reasoner checkpoints: the base loads offline through the engine registry, runs in
TTC-Math-v0 with the micro problems, and reads the prompts it was trained on; the second one
("micro-long") loads by its spec, matches the config it was trained with, and ships in the package."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import ttc_gym  # noqa: F401  (registers the envs)
from ttc_gym.engines import make_engine
from ttc_gym.engines.base import SamplingConfig
from ttc_gym.micro.checkpoint import (
    MICRO_CHECKPOINTS, MICRO_DIR, load_micro_engine, micro_checkpoint_dir, micro_context,
)
from ttc_gym.micro.task import MicroSource
from ttc_gym.micro.traces import forced_example, generate_trace, trace_example


@pytest.fixture(scope="module")
def engine():
    return make_engine("micro")


def test_checkpoint_is_small_and_complete():
    folder = micro_checkpoint_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "pretrain_config.json"):
        assert (folder / name).is_file(), name
    assert (folder / "model.safetensors").stat().st_size < 8 * 2**20


def test_engine_spec_micro_builds_a_fresh_transformers_engine(engine):
    assert engine.name == "micro" and engine.tokenizer.eos_token == "<|im_end|>"
    assert make_engine("micro").model is not engine.model  # a trainer may update its own copy in place
    with pytest.raises(ValueError, match="takes no model"):
        make_engine("micro:foo")


def test_the_env_prompts_tokenize_as_in_training(engine):
    """What the engine conditions on (`encode(prompt)`) is a prefix of the training text's tokens,
    so generation continues the text the model was trained on."""
    rng = np.random.default_rng(0)
    for p in MicroSource().problems(20, 1):
        t = generate_trace(p, rng)
        pairs = [forced_example(t, j) for j in range(len(t.episodes) + 1)]
        prompt, target = trace_example(t)
        pairs += [(prompt + "\n\n".join(t.episodes[:j]) + "\n\n", t.episodes[j]) for j in range(1, len(t.episodes))]
        for prompt, target in pairs:
            full = engine.tokenizer(prompt + target, add_special_tokens=False)["input_ids"]
            assert full[: len(engine.encode(prompt))] == engine.encode(prompt)


def test_math_env_runs_on_the_micro_model_and_problems(engine):
    env = gym.make("TTC-Math-v0", engine=engine, source="micro:1", max_episodes=3, num_prover_samples=4)
    obs, info = env.reset(seed=0)
    assert obs["problem"].startswith("Start at ") and info["difficulty"] == 1
    episode = engine.generate([env.unwrapped.template.reasoning_prompt(engine, obs["problem"], [])],
                              SamplingConfig(max_new_tokens=40, temperature=0.0, stop=("\n\n",)), seed=0)[0][0].text
    assert episode.startswith("Step 1: ")  # the pretrained model writes the trace's format
    obs, reward, terminated, truncated, info = env.step(episode)
    assert 0.0 <= info["J"] <= 1.0 and len(info["prover_answers"]) == 4
    assert all(a.lstrip("-").isdigit() for a in info["prover_answers"])  # forced answers are numbers


def test_pretrained_model_solves_easy_chains_greedily(engine):
    """Greedy forced answers after a clean full trace copy the number it stands at (what J rises to)."""
    from ttc_gym.micro.traces import TraceStyle
    from ttc_gym.prompts import PromptTemplate

    rng = np.random.default_rng(2)
    template = PromptTemplate()
    prompts, golds = [], []
    for p in MicroSource([1, 2]).problems(16, 3):
        t = generate_trace(p, rng, TraceStyle(slip=(), check=0.0))
        prompts.append(template.forced_answer_prompt(engine, p.question, list(t.episodes[:-1])))
        golds.append(p.answer)
    outs = engine.generate(prompts, template.answer_sampling(8, 0.0), seed=0)
    right = sum(template.answer_of(o[0].text) == g for o, g in zip(outs, golds))
    assert right >= 14, right


@pytest.mark.parametrize("name", list(MICRO_CHECKPOINTS))
def test_missing_checkpoint_names_its_own_rebuild_command(monkeypatch, tmp_path, name):
    import ttc_gym.micro.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "DATA_DIR", tmp_path)
    row = MICRO_CHECKPOINTS[name]
    with pytest.raises(FileNotFoundError) as info:
        ckpt.micro_checkpoint_dir(name)
    command = f"python -m ttc_gym.micro.pretrain --out {tmp_path / row.folder} {row.pretrain_args}"
    assert f"`{command}`" in str(info.value) and repr(name) in str(info.value)
    assert MICRO_DIR.name == "micro"


# -- the second checkpoint, the longer pretraining ("micro-long") ------------------------------------


def test_the_table_rebuilds_each_checkpoint_with_the_config_it_was_trained_with():
    """Each row's pretrain command parses to exactly the config recorded in its pretrain_config.json."""
    from dataclasses import asdict

    from ttc_gym.micro.pretrain import jsonable, parse_command

    assert {"micro", "micro-long"} <= set(MICRO_CHECKPOINTS)
    for name, row in MICRO_CHECKPOINTS.items():
        out, config = parse_command(row.rebuild_command().split()[3:])
        assert out == str(row.path) == str(micro_checkpoint_dir(name))
        recorded = json.loads((row.path / "pretrain_config.json").read_text())
        assert jsonable(asdict(config)) == recorded["config"], name
    long = json.loads((MICRO_CHECKPOINTS["micro-long"].path / "pretrain_config.json").read_text())["config"]
    assert (long["steps"], long["batch_size"], long["warmup"], long["seed"]) == (4800, 16, 100, 0)


def test_the_long_checkpoint_is_complete_and_shares_the_base_tokenizer_and_context():
    base, long = micro_checkpoint_dir("micro"), micro_checkpoint_dir("micro-long")
    assert long == Path(ttc_gym.__file__).resolve().parent / "data" / "micro_long"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "pretrain_config.json"):
        assert (long / name).is_file(), name
    assert (long / "model.safetensors").stat().st_size < 8 * 2**20
    for name in ("tokenizer.json", "tokenizer_config.json"):  # so TTC-Micro-v0's prompt bound holds on it
        assert (long / name).read_bytes() == (base / name).read_bytes(), name
    assert micro_context("micro-long") == micro_context() == micro_context(long) == 1024
    assert (long / "model.safetensors").read_bytes() != (base / "model.safetensors").read_bytes()


def test_engine_spec_micro_long_loads_the_long_checkpoint(engine):
    long = make_engine("micro-long")
    assert long.name == "micro-long" and long.tokenizer.eos_token == "<|im_end|>"
    config = json.loads((micro_checkpoint_dir("micro-long") / "config.json").read_text())
    assert long.model.config.max_position_embeddings == config["max_position_embeddings"] == 1024
    assert long.model.num_parameters() == json.loads(
        (micro_checkpoint_dir("micro-long") / "pretrain_config.json").read_text())["params"]
    weight = "model.embed_tokens.weight"
    assert not torch.equal(long.model.state_dict()[weight], engine.model.state_dict()[weight])
    assert make_engine("micro-long").model is not long.model
    assert load_micro_engine("micro-long", name="x").name == "x"


@pytest.mark.parametrize("spec, words", [
    ("micro-lng", "Did you mean 'micro-long'?"),
    ("micro_long", "Did you mean 'micro-long'?"),
    ("mikro", "Did you mean 'micro'?"),
    ("micro:long", "takes no model name; write just 'micro'. Did you mean 'micro-long'?"),
    ("micro-long:x", "takes no model name; write just 'micro-long'."),
])
def test_unknown_micro_names_are_errors_with_did_you_mean(spec, words):
    with pytest.raises(ValueError) as info:
        make_engine(spec)
    assert words in str(info.value)


def test_unknown_checkpoint_name_is_an_error_with_did_you_mean():
    with pytest.raises(ValueError, match="unknown micro-reasoner checkpoint 'micro-lon'. Did you mean 'micro-long'"):
        micro_checkpoint_dir("micro-lon")
    with pytest.raises(ValueError, match="The shipped ones are 'micro', 'micro-long'"):
        load_micro_engine("big")


def test_the_trainer_and_the_micro_env_take_the_long_checkpoint():
    from ttc_gym.training.llm_config import check_model_spec
    from ttc_gym.training.llm_policy import build_policy_engine
    from ttc_gym.training.llm_config import LLMTrainConfig

    assert check_model_spec("--model", "micro-long") == "micro-long"
    policy = build_policy_engine(LLMTrainConfig(model="micro-long", source="micro:2-3"))
    assert policy.name == "policy:micro-long"
    env = gym.make("TTC-Micro-v0", engine="micro-long", source="micro:2-3", num_prover_samples=2)
    base = env.unwrapped
    assert base.engine.name == "micro-long" and env.action_space.max_length == 204
    env.reset(seed=0)
    assert base.trace.problem.difficulty in (2, 3)
