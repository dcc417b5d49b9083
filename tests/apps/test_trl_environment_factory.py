"""TRL's `environment_factory` path (docs/integrations.md, "TRL's `environment_factory`: not offered,
and why"), checked against the real TRL 1.16 rather than asserted: GRPOTrainer refuses an
`environment_factory` with the default model, whose chat template cannot render a tool call (TRL's
own `supports_tool_calling` check), so a TTC-Math-v0 environment whose episodes are tool calls could
not run on it at all."""

from __future__ import annotations

import pytest

trl = pytest.importorskip("trl")  # in the `test` extra: CI runs this file


class EpisodeTool:
    """The shape a TTC-Math-v0 factory environment would have: `reset` gives the problem, each
    episode of reasoning is a tool call, `get_reward` the rollout's one number."""

    def reset(self, **row) -> str:
        return "Submit each episode of your reasoning with the `episode` tool."

    def episode(self, text: str) -> str:
        """Submit one episode of reasoning.

        Args:
            text: the episode's text.
        """
        return "Continue your reasoning."

    def get_reward(self) -> float:
        return 0.0


@pytest.mark.slow
def test_grpo_trainer_refuses_environment_factory_on_the_default_model(tmp_path):
    from trl.chat_template_utils import supports_tool_calling

    from ttc_gym.integrations.trl_grpo import load_policy, problem_dataset

    model, tokenizer = load_policy("default")
    assert not supports_tool_calling(tokenizer)
    args = trl.GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2, max_steps=1,
                          report_to="none", save_strategy="no", use_cpu=True, bf16=False, disable_tqdm=True)
    with pytest.raises(ValueError, match="does not support tool calling"):
        trl.GRPOTrainer(model, args=args, train_dataset=problem_dataset("procedural:1", 4, seed=0),
                        processing_class=tokenizer, environment_factory=EpisodeTool)
