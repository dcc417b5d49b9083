"""TRL's `environment_factory` path (docs/integrations.md) with the real TRL 1.16 and the default
model: `ttc_gym.integrations.trl_environment` gives SmolLM2's tokenizer a tool-calling ChatML
template, and one `GRPOTrainer(environment_factory=...)` step runs with TTC-Math-v0 behind the
`episode` tool."""

from __future__ import annotations

import math

import pytest

trl = pytest.importorskip("trl")  # in the `test` extra: CI runs this file


@pytest.mark.slow
def test_default_template_refused_and_ours_accepted():
    from trl.chat_template_utils import is_chat_template_prefix_preserving, supports_tool_calling

    from transformers import AutoTokenizer

    from ttc_gym.engines.default_model import default_model_path
    from ttc_gym.integrations.trl_environment import tool_calling_template

    path = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    assert not supports_tool_calling(tokenizer)  # why the helper exists: TRL refuses the shipped template
    tool_calling_template(tokenizer)
    assert supports_tool_calling(tokenizer) and is_chat_template_prefix_preserving(tokenizer)
    text = '<tool_call>\n{"name": "episode", "arguments": {"text": "2 + 2 = 4"}}\n</tool_call><|im_end|>'
    parsed = tokenizer.parse_response(text, prefix="")
    assert parsed["tool_calls"][0]["function"] == {"name": "episode", "arguments": {"text": "2 + 2 = 4"}}
    assert "SmolLM" in tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


@pytest.mark.slow
def test_tool_env_steps_ttc_math_and_keeps_gold_out_of_replies():
    from ttc_gym.integrations.trl_environment import episode_return, tool_env_factory

    make = tool_env_factory(max_episodes=2, num_prover_samples=2)
    env = make()
    assert "episode" in env.reset(question="What is 2 + 3?", answer="5", id="p0")
    reply = env.episode("2 + 3 = 5.")
    assert env.steps == 1 and "5" not in reply.replace("recorded", "")
    assert episode_return([[{"role": "assistant", "content": "So \\boxed{5}."}]], environments=[env]) == [
        pytest.approx(env.return_)]
    assert env.done and env.steps == 2 and env.info["outcome"] == 1.0
    assert env.episode("more") == "The problem is over: no more episodes."


@pytest.mark.slow
def test_grpo_trainer_environment_factory_one_step_on_the_default_model(tmp_path):
    from ttc_gym.integrations.trl_environment import episode_return, tool_calling_template, tool_dataset, tool_env_factory
    from ttc_gym.integrations.trl_grpo import load_policy

    model, tokenizer = load_policy("default")
    tool_calling_template(tokenizer)
    make = tool_env_factory(max_episodes=3, num_prover_samples=2)
    args = trl.GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2, max_steps=1,
                          max_completion_length=32, max_tool_calling_iterations=2, report_to="none",
                          save_strategy="no", use_cpu=True, bf16=False, disable_tqdm=True, logging_steps=1, seed=0)
    trainer = trl.GRPOTrainer(model, args=args, train_dataset=tool_dataset("procedural:1", 4, seed=0),
                              processing_class=tokenizer, reward_funcs=[episode_return], environment_factory=make)
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    assert len(make.instances) >= 2 and all(env.total_steps >= 1 for env in make.instances)  # each rollout stepped it
    logged = trainer.state.log_history[0]
    assert "rewards/episode_return/mean" in logged and math.isfinite(logged["rewards/episode_return/mean"])
