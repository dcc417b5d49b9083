"""TTC-Math-v0 behind TRL's `GRPOTrainer(environment_factory=...)`: each tool call is one episode.

    pip install 'ttc-gym[trl]'

    import trl
    from ttc_gym.integrations.trl_environment import (episode_return, tool_calling_template, tool_dataset,
                                                      tool_env_factory)
    from ttc_gym.integrations.trl_grpo import load_policy

    model, tokenizer = load_policy("default")
    tool_calling_template(tokenizer)                      # the default model's template cannot render tools
    trainer = trl.GRPOTrainer(model, args=trl.GRPOConfig(..., bf16=False), processing_class=tokenizer,
                              train_dataset=tool_dataset("procedural:1", 8), reward_funcs=[episode_return],
                              environment_factory=tool_env_factory(max_episodes=4))
    trainer.train()

**The chat template.** TRL 1.16 refuses `environment_factory` when the tokenizer's chat template
cannot render a tool-calling conversation (`trl.chat_template_utils.supports_tool_calling`).
SmolLM2-135M-Instruct (the default model) ships a plain ChatML template with no tools section.
`tool_calling_template` gives its tokenizer TRL's own Qwen2.5 ChatML template (`qwen2_5_chat_template`:
the same `<|im_start|>`/`<|im_end|>` turns SmolLM2 was trained on, plus a `# Tools` system section,
`<tool_call>{"name": ..., "arguments": ...}</tool_call>` blocks and `<tool_response>` turns), with
Qwen's default system line replaced by SmolLM2's, and sets TRL's parser for that format
(`qwen3_template`: the same `<tool_call>` JSON blocks) as the tokenizer's `response_template`.
This is our choice, not the model's: SmolLM2-135M was not trained on this tool format, so it rarely
writes a well-formed call; a tool-trained model needs none of this.

**What a rollout is.** TRL samples one assistant turn per prompt; each `<tool_call>` of the
`episode` tool is one TTC-Math-v0 step (the env appends the episode, its prover measures J, the
progress J_j - J_{j-1} is the step's reward), and TRL feeds the tool's gold-free reply back and
samples again, up to `max_tool_calling_iterations`. The turn's final message (the text after the
last call) is the rollout's last episode: `episode_return` steps the env with it when the trace is
still open, so a rollout that never called the tool is still one episode.

**What reaches the loss.** One number per rollout: `episode_return` = the env's return, outcome +
alpha * (J_final - J_0) - episode costs (docs/formulation.md §3), which TRL turns into one
group-normalized advantage for every trained token of the completion. The per-episode progress is
summed before TRL sees it: no per-episode credit (for that, `ttc_gym.integrations.trl_grpo`). The tool
replies say only how many episodes are left (J is gold-derived and never shown to the policy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ttc_gym.optional import require

trl = require("trl", extra="trl", purpose="TRL's environment_factory (ttc_gym.integrations.trl_environment)")

#: SmolLM2-Instruct's default system line (its own template's), in place of Qwen's.
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
_QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
#: What the policy reads after the problem (appended by TRL to the user message at reset).
INSTRUCTIONS = ("\n\nReason in episodes: submit each episode of your reasoning with the `episode` tool. "
                "Write your final answer as \\boxed{answer}.")


def tool_calling_template(tokenizer: Any, system: str = SMOLLM2_SYSTEM) -> Any:
    """Give `tokenizer` a ChatML chat template that renders tools and `<tool_call>` blocks, and TRL's
    parser for them (module docstring); returns the tokenizer. Refuses a tokenizer without the
    ChatML turn tokens, for which the template would be wrong."""
    from trl import chat_template_utils as ctu

    vocab = tokenizer.get_vocab()
    missing = [t for t in ("<|im_start|>", "<|im_end|>") if t not in vocab]
    if missing:
        raise ValueError(f"tool_calling_template writes ChatML turns; this tokenizer has no {missing} token(s). "
                         f"Use a model whose own chat template supports tools.")
    if ctu.qwen2_5_chat_template.count(_QWEN_SYSTEM) != 2:
        raise RuntimeError("TRL's qwen2_5_chat_template changed (its default system line); this helper is tested "
                           "with trl 1.16.")
    tokenizer.chat_template = ctu.qwen2_5_chat_template.replace(_QWEN_SYSTEM, system)
    tokenizer.response_template = ctu.qwen3_template
    return tokenizer


def tool_dataset(source: Any, num_problems: int, seed: int = 0) -> Any:
    """`trl_grpo.problem_dataset` with conversational prompts (a user message holding the question), as
    TRL's tool loop needs; columns `prompt`, `question`, `answer`, `id` (`question` and `answer` reach
    `TTCMathToolEnv.reset`, the answer only the env's grader)."""
    from ttc_gym.integrations.trl_grpo import problem_dataset

    data = problem_dataset(source, num_problems, seed=seed)
    return data.map(lambda row: {"question": row["prompt"], "prompt": [{"role": "user", "content": row["prompt"]}]})


class TTCMathToolEnv:
    """One TTC-Math-v0 trace per rollout, for TRL's `environment_factory`. Public methods other than
    `reset` (and `get_reward`, which this class leaves out: `episode_return` is its reward) become tools; here one: `episode`. Build instances with `tool_env_factory(...)`, which
    shares one model engine between them.

    Args:
        engine: the env's engine (its prover, token counter and forced answers), shared; None: the
            default model, loaded once per factory.
        **env_kwargs: TTC-Math-v0 arguments (`max_episodes`, `num_prover_samples`, `alpha`, ...);
            not `source` (problems come from TRL's rows).
    """

    def __init__(self, engine: Any = None, **env_kwargs: Any):
        import gymnasium as gym

        import ttc_gym  # noqa: F401  (registers the envs)

        if "source" in env_kwargs:
            raise ValueError("TTCMathToolEnv takes its problems from TRL's dataset rows (question, answer); remove source=.")
        self.env = gym.make("TTC-Math-v0", engine=engine, **env_kwargs)
        #: Per instance, for checks and logs: steps taken in the current trace, and over its lifetime.
        self.steps = 0
        self.total_steps = 0
        self.return_ = 0.0
        self.done = True
        self.info: dict = {}

    def reset(self, question: str, answer: Any, id: Any = None, **_: Any) -> str:
        """Start the trace of the row's problem; return the instructions TRL appends to the prompt."""
        problem = {"question": question, "answer": str(answer)}
        if id is not None:
            problem["id"] = str(id)
        self.env.reset(options={"problem": problem})
        self.steps, self.return_, self.done = 0, 0.0, False
        return INSTRUCTIONS

    def episode(self, text: str) -> str:
        """Submit one episode of your reasoning.

        Args:
            text: the episode's text; writing \\boxed{answer} in it commits your final answer.
        """
        if self.done:
            return "The problem is over: no more episodes."
        if not isinstance(text, str) or not text.strip():
            return "An episode must be non-empty text."
        self._step(text)
        if self.done:
            return "The problem is over."
        left = self.env.unwrapped._settings.max_episodes - self.info["episodes_used"]
        return f"Episode recorded; at most {left} more."

    def _finish(self, text: str) -> None:
        """Step the trace with the turn's final message, if the trace is open and the text non-empty."""
        if not self.done and isinstance(text, str) and text.strip():
            self._step(text)

    def _step(self, text: str) -> None:
        limit = self.env.unwrapped._settings.max_episode_chars
        _, reward, terminated, truncated, self.info = self.env.step(text[:limit])
        self.steps += 1
        self.total_steps += 1
        self.return_ += float(reward)
        self.done = bool(terminated or truncated)


def tool_env_factory(engine: Any = None, **env_kwargs: Any) -> Callable[[], TTCMathToolEnv]:
    """A zero-argument callable for `environment_factory`, its instances sharing one engine."""
    from ttc_gym.engines import make_engine

    shared: dict = {}

    def make() -> TTCMathToolEnv:
        if "engine" not in shared:
            shared["engine"] = make_engine(engine)
        instance = TTCMathToolEnv(engine=shared["engine"], **env_kwargs)
        make.instances.append(instance)
        return instance

    make.instances = []  # type: ignore[attr-defined]
    return make


def _final_text(completion: Any) -> str:
    """The text of a completion's last assistant message (a conversational completion), or the text."""
    if isinstance(completion, str):
        return completion
    for message in reversed(list(completion)):
        if message.get("role") == "assistant":
            content = message.get("content") or ""
            return content if isinstance(content, str) else " ".join(c.get("text", "") for c in content)
    return ""


def episode_return(completions: Sequence[Any], environments: Sequence[TTCMathToolEnv] | None = None,
                   **_: Any) -> list[float]:
    """TRL reward function: step each rollout's env with the turn's final message (its last episode)
    and return the env's return (module docstring)."""
    if environments is None:
        raise ValueError("episode_return needs TRL's environments: pass environment_factory=tool_env_factory(...).")
    rewards = []
    for completion, env in zip(completions, environments, strict=True):
        env._finish(_final_text(completion))
        rewards.append(env.return_)
    return rewards
