"""The shipped micro-reasoner checkpoint: loads offline through the engine registry, runs in
TTC-Math-v0 with the micro problems, and reads the prompts it was trained on."""

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401  (registers the envs)
from ttc_gym.engines import make_engine
from ttc_gym.engines.base import SamplingConfig
from ttc_gym.micro.checkpoint import MICRO_DIR, micro_checkpoint_dir
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


def test_missing_checkpoint_names_the_rebuild_command(monkeypatch, tmp_path):
    import ttc_gym.micro.checkpoint as ckpt

    monkeypatch.setattr(ckpt, "MICRO_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="ttc_gym.micro.pretrain"):
        ckpt.micro_checkpoint_dir()
    assert MICRO_DIR.name == "micro"
