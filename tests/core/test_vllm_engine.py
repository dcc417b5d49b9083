"""The vLLM engine on a CPU: request building and result parsing against vLLM's documented output
shapes (RequestOutput / CompletionOutput built here), seeds, weight sync, and the clear errors.

Nothing here needs vLLM or a GPU: a fake `LLM` stands in for `vllm.LLM`. Its `generate` behaves as
vLLM documents it (one RequestOutput per prompt, in order, with `n` CompletionOutputs; per-request
seeded sampling; text cut before the first stop string found, which is reported in `stop_reason`;
EOS in `token_ids` but not in `text`; finish_reason "stop" or "length").
"""

from __future__ import annotations

import pickle
import random
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from ttc_gym.engines import Completion, Engine, SamplingConfig, TrainableEngine, make_engine
from ttc_gym.engines import vllm_engine
from ttc_gym.engines.model_source import check_model_source
from ttc_gym.engines.vllm_engine import SamplingParamsSpec, VLLMEngine, clear_shared_engines, request_seed
from ttc_gym.llm_prover import LLMProver
from ttc_gym.problems import Problem

VLLM_INSTALLED = "vllm" in sys.modules or __import__("importlib").util.find_spec("vllm") is not None

# ----------------------------------------------------------------------------------------------------
# vLLM's output objects, with the attribute names vLLM documents (vllm.outputs)


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: Any
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: Any
    outputs: list[CompletionOutput]
    finished: bool = True


# ----------------------------------------------------------------------------------------------------
# A character-level tokenizer with a chat template, and a fake LLM that samples like vLLM


class FakeTokenizer:
    """One token per character; BOS "<s>" (id 1), EOS (id 2) never appears in text."""

    bos_token, bos_token_id, eos_token, eos_token_id = "<s>", 1, "</s>", 2
    chat_template = "fake"

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([self.bos_token_id] if add_special_tokens else []) + [ord(c) + 10 for c in text]

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i - 10) for i in ids if i >= 10)

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        assert tokenize is False
        body = "".join(f"[{m['role']}]{m['content']}" for m in messages)
        return "<s>" + body + ("[assistant]" if add_generation_prompt else "")


WORDS = ("so", "x", "= 4", "wait", "\n", "}$", "ok", " ", "\n\n")


class FakeLLM:
    """`generate` as vLLM's: seeded per request (child j of a request uses seed + j)."""

    def __init__(self, eos_probability: float = 0.05):
        self.tokenizer = FakeTokenizer()
        self.calls: list[dict] = []
        self.eos_probability = eos_probability

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, sampling_params=None, use_tqdm=True):
        self.calls.append({"prompts": prompts, "sampling_params": sampling_params, "use_tqdm": use_tqdm})
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        assert len(params) == len(prompts)
        return [
            RequestOutput(
                request_id=str(i), prompt=None, prompt_token_ids=p["prompt_token_ids"], prompt_logprobs=None,
                outputs=[self._sample(p["prompt_token_ids"], sp, j) for j in range(sp.n)],
            )
            for i, (p, sp) in enumerate(zip(prompts, params))
        ]

    def _sample(self, prompt_ids, sp, j) -> CompletionOutput:
        seed = random.randrange(2**62) if sp.seed is None else sp.seed + j
        rng = random.Random(seed if sp.temperature > 0 else sum(prompt_ids))
        ids: list[int] = []
        while len(ids) < sp.max_tokens:
            if rng.random() < self.eos_probability:
                ids.append(FakeTokenizer.eos_token_id)
                return CompletionOutput(j, self.tokenizer.decode(ids), ids, -1.0, None, "stop", None)
            ids.extend(self.tokenizer.encode(rng.choice(WORDS), add_special_tokens=False)[:1])
            text = self.tokenizer.decode(ids)
            for stop in sp.stop:  # vLLM checks its stop strings in order; the first found wins
                k = text.find(stop)
                if k >= 0:
                    return CompletionOutput(j, text[:k], ids, -1.0, None, "stop", stop)
        return CompletionOutput(j, self.tokenizer.decode(ids), ids, -1.0, None, "length", None)


def fake_engine(**kwargs) -> tuple[VLLMEngine, FakeLLM]:
    llm = kwargs.pop("llm", None) or FakeLLM()
    return VLLMEngine("fake/model", llm=llm, **kwargs), llm


@pytest.fixture(autouse=True)
def no_shared_engines():
    """Engines `make_engine("vllm:...")` shares per process must not leak from one test to the next."""
    clear_shared_engines()
    yield
    clear_shared_engines()


def out(text="", token_ids=(5, 6, 7), finish_reason="stop", stop_reason=None, index=0) -> CompletionOutput:
    return CompletionOutput(index, text, list(token_ids), -1.0, None, finish_reason, stop_reason)


# ----------------------------------------------------------------------------------------------------
# Request building


def test_all_prompts_go_to_one_generate_with_one_seeded_request_each():
    engine, llm = fake_engine()
    sampling = SamplingConfig(max_new_tokens=12, temperature=0.7, top_p=0.9, stop=("\n\n", "}$"), n=3)
    prompts = ["<s>[user]a[assistant]", "plain prompt", "<s>[user]a[assistant]"]
    result = engine.generate(prompts, sampling, seed=5)

    assert len(llm.calls) == 1  # one batched generate for every prompt
    call = llm.calls[0]
    assert call["use_tqdm"] is False
    params = call["sampling_params"]
    assert len(params) == 3 and all(isinstance(p, SamplingParamsSpec) for p in params)  # vllm is absent here
    for i, p in enumerate(params):
        assert (p.n, p.temperature, p.top_p, p.max_tokens, p.stop) == (3, 0.7, 0.9, 12, ["\n\n", "}$"])
        assert p.seed == request_seed(5, i)
    assert len({p.seed for p in params}) == 3  # the same prompt twice still gets its own samples
    # Token ids: chat-template output (starting with the BOS text) gets no second BOS; plain text gets one.
    tok = FakeTokenizer()
    assert call["prompts"][0] == {"prompt_token_ids": tok.encode(prompts[0], add_special_tokens=False)}
    assert call["prompts"][1] == {"prompt_token_ids": tok.encode(prompts[1], add_special_tokens=True)}

    assert [len(row) for row in result] == [3, 3, 3]
    assert all(isinstance(c, Completion) for row in result for c in row)
    assert result[0] != result[2]


def test_max_tokens_is_always_set_and_the_params_class_gets_exactly_these_keywords():
    captured = []

    def params(**kwargs):
        captured.append(kwargs)
        return SamplingParamsSpec(**kwargs)

    engine, _ = fake_engine(sampling_params=params)
    engine.generate(["q"], SamplingConfig(), seed=0)  # the defaults: 256 new tokens, not vLLM's 16
    assert captured == [
        {"n": 1, "temperature": 0.7, "top_p": 1.0, "max_tokens": 256, "stop": [], "seed": request_seed(0, 0)}
    ]


def test_greedy_decodes_once_and_repeats_the_completion():
    engine, llm = fake_engine()
    [row] = engine.generate(["q"], SamplingConfig(max_new_tokens=8, temperature=0.0, top_p=0.5, n=4), seed=1)
    [p] = llm.calls[0]["sampling_params"]
    assert (p.n, p.temperature, p.top_p) == (1, 0.0, 1.0)
    assert len(row) == 4 and len(set(row)) == 1


def test_empty_inputs_and_bad_arguments():
    engine, llm = fake_engine()
    assert engine.generate([], SamplingConfig(), seed=0) == [] and not llm.calls
    with pytest.raises(TypeError, match="single string"):
        engine.generate("q", SamplingConfig(), seed=0)
    with pytest.raises(TypeError, match="SamplingConfig"):
        engine.generate(["q"], {"n": 2}, seed=0)
    with pytest.raises(ValueError, match="seed"):
        engine.generate(["q"], SamplingConfig(), seed=-1)
    engine.generate([""], SamplingConfig(max_new_tokens=2), seed=0)  # an empty prompt is conditioned on BOS
    assert llm.calls[-1]["prompts"] == [{"prompt_token_ids": [FakeTokenizer.bos_token_id]}]


# ----------------------------------------------------------------------------------------------------
# Seeds


def test_same_seed_same_texts_other_seed_other_texts():
    engine, _ = fake_engine()
    sampling = SamplingConfig(max_new_tokens=16, temperature=1.0, n=4)
    prompts = ["a", "b"]
    a = engine.generate(prompts, sampling, seed=7)
    assert engine.generate(prompts, sampling, seed=7) == a
    assert engine.generate(prompts, sampling, seed=8) != a
    texts = {c.text for row in a for c in row}
    assert len(texts) > 1  # the n samples differ


def test_one_seed_per_prompt_gives_each_prompt_what_it_gets_alone():
    engine, llm = fake_engine()
    assert engine.per_prompt_seeds is True
    sampling = SamplingConfig(max_new_tokens=16, temperature=1.0, n=3)
    together = engine.generate(["a", "b", "a"], sampling, seed=[5, 9, 11])
    alone = [engine.generate([p], sampling, seed=s)[0] for p, s in (("a", 5), ("b", 9), ("a", 11))]
    assert together == alone
    assert [p.seed for p in llm.calls[0]["sampling_params"]] == [request_seed(s, 0) for s in (5, 9, 11)]
    with pytest.raises(ValueError, match="one seed per prompt, got 1 for 2"):
        engine.generate(["a", "b"], sampling, seed=[1])
    with pytest.raises(ValueError, match=r"seed\[1\]"):
        engine.generate(["a", "b"], sampling, seed=[1, -2])


PROBLEMS = [Problem(id=f"p{i}", question=f"What is {i} + {i}?", answer=str(2 * i), source="test") for i in range(3)]
PREFIXES = [(PROBLEMS[0], ()), (PROBLEMS[0], ("I add.", "It is 0.")), (PROBLEMS[1], ("1 and 1.",)), (PROBLEMS[2], ())]


def test_the_prover_sends_a_whole_batch_in_one_generate_and_gets_what_each_prefix_gets_alone():
    """`LLMProver.estimate_many` on the vLLM engine: one `LLM.generate` for every (problem, prefix), each
    request with its own seed; the estimates equal those of a prover asked one prefix at a time."""
    engine, llm = fake_engine()
    prover = LLMProver(engine, num_samples=4, max_answer_tokens=6, seed=3)
    batched = prover.estimate_many(PREFIXES)
    assert len(llm.calls) == 1
    [call] = llm.calls
    assert len(call["prompts"]) == len(PREFIXES) and len(call["sampling_params"]) == len(PREFIXES)
    assert len({p.seed for p in call["sampling_params"]}) == len(PREFIXES)
    assert {p.n for p in call["sampling_params"]} == {4}

    alone_engine, alone_llm = fake_engine()
    alone = LLMProver(alone_engine, num_samples=4, max_answer_tokens=6, seed=3)
    one_by_one = [alone.estimate(problem, episodes) for problem, episodes in PREFIXES]
    assert len(alone_llm.calls) == len(PREFIXES)  # one prefix per call there
    assert batched == one_by_one
    # The very requests of the one-by-one calls, sent together.
    assert [c["sampling_params"][0] for c in alone_llm.calls] == call["sampling_params"]
    assert len({e.answers for e in batched}) > 1  # the prefixes' answers differ


def test_the_llm_agent_writes_a_batch_of_traces_in_one_generate():
    """`LLMAgent.write_batch` on the vLLM engine: one `LLM.generate` for all traces of a token cap; each
    trace gets the episode it gets alone."""
    from ttc_gym.agents.llm import LLMAgent

    engine, llm = fake_engine(llm=FakeLLM(eos_probability=0.0))
    agent = LLMAgent(engine, max_episode_tokens=8, temperature=1.0, seed=4)
    observations = [{"problem": p.question, "episodes": eps} for p, eps in PREFIXES]
    infos = [{"tokens_left": None}] * len(observations)
    batch = agent.write_batch(observations, infos)
    assert len(llm.calls) == 1 and len(llm.calls[0]["prompts"]) == len(observations)
    assert all(e.text.strip() and e.token_ids for e in batch)  # sampled episodes, not forced answers
    alone = [agent.write_batch([o], [i])[0] for o, i in zip(observations, infos)]
    assert len(llm.calls) == 1 + len(observations)
    assert batch == alone
    assert [e.token_ids for e in batch] == [e.token_ids for e in alone]
    assert len({e.text for e in batch}) > 1
    # Per-trace seeds reach vLLM as per-request seeds in the same single call.
    agent.write_batch(observations, infos, seeds=[1, 2, 3, 4])
    assert len(llm.calls) == 2 + len(observations)
    assert len({p.seed for p in llm.calls[-1]["sampling_params"]}) == len(observations)


def test_request_seeds_are_stable_distinct_and_leave_room_for_sample_indices():
    seeds = [request_seed(s, i) for s in range(20) for i in range(20)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**62 for s in seeds)
    assert request_seed(3, 1) == request_seed(3, 1)


def test_seed_none_draws_fresh_randomness():
    engine, llm = fake_engine()
    sampling = SamplingConfig(max_new_tokens=16, temperature=1.0, n=2)
    engine.generate(["a"], sampling, seed=None)
    engine.generate(["a"], sampling, seed=None)
    s1, s2 = (c["sampling_params"][0].seed for c in llm.calls)
    assert s1 != s2


# ----------------------------------------------------------------------------------------------------
# Result parsing


@pytest.mark.parametrize(
    "output, stops, expected",
    [
        # A stop string: vLLM has cut the text before it and names it in stop_reason.
        (out("The answer is 4", (5, 6, 7, 8), "stop", "\n\n"), ("\n\n",),
         Completion("The answer is 4", 4, "stop", "\n\n")),
        # EOS: finish_reason "stop", stop_reason None; the EOS token is counted (it is in token_ids).
        (out("done", (5, 6, 2), "stop", None), ("\n",), Completion("done", 3, "stop", None)),
        # A stop token id (e.g. a second EOS from the model's generation config) is EOS to us.
        (out("done", (5, 6, 151645), "stop", 151645), (), Completion("done", 3, "stop", None)),
        # Cut by length.
        (out("abcd", (5, 6, 7, 8), "length", None), ("\n",), Completion("abcd", 4, "length", None)),
        # Two stops completed by one token: vLLM reports the one listed first ("b"); we cut at the earliest ("ab").
        (out("xa", (5, 6), "stop", "b"), ("b", "ab"), Completion("x", 2, "stop", "ab")),
        # A text that still holds its stop (include_stop_str_in_output=True) is cut before it.
        (out("4}$", (5, 6, 7), "stop", "}$"), ("}$",), Completion("4", 3, "stop", "}$")),
    ],
    ids=["stop-string", "eos", "stop-token-id", "length", "earliest-stop", "stop-in-text"],
)
def test_completion_outputs_become_completions(output, stops, expected):
    engine, _ = fake_engine()
    sampling = SamplingConfig(max_new_tokens=4, stop=stops)
    assert engine.parse_completion(output, sampling) == expected


@pytest.mark.parametrize(
    "text, stops, expected",
    [
        ("42} so", (), Completion("42", 3, "stop", "}")),
        ("\\frac{1}{2}} x", (), Completion("\\frac{1}{2}", 12, "stop", "}")),
        ("{a}{b}", (), Completion("{a}{b}", 6, "length")),
    ],
)
def test_closing_brace_cuts_the_text_and_counts_tokens_up_to_it(text, stops, expected):
    """vLLM has no closing-brace rule: it decodes on, and the text is cut (and counted) here."""
    engine, _ = fake_engine()
    ids = FakeTokenizer().encode(text, add_special_tokens=False)
    sampling = SamplingConfig(max_new_tokens=len(ids), stop=stops, stop_at_closing_brace=True)
    assert engine.parse_completion(out(text, ids, "length"), sampling) == expected


def test_a_stop_string_before_the_closing_brace_wins():
    engine, _ = fake_engine()
    sampling = SamplingConfig(max_new_tokens=8, stop=("\n",), stop_at_closing_brace=True)
    # vLLM stopped at "\n" (its text is cut before it); the brace comes later and does not matter.
    assert engine.parse_completion(out("7", (5, 6), "stop", "\n"), sampling) == Completion("7", 2, "stop", "\n")


def test_token_counts_never_exceed_max_new_tokens_and_unfinished_outputs_are_errors():
    engine, _ = fake_engine()
    sampling = SamplingConfig(max_new_tokens=2)
    assert engine.parse_completion(out("abc", (5, 6, 7), "length"), sampling).num_tokens == 2
    for reason in ("abort", None):
        with pytest.raises(RuntimeError, match="finish_reason"):
            engine.parse_completion(out("a", (5,), reason), sampling)


def test_generate_cuts_stops_and_counts_tokens_end_to_end():
    engine, _ = fake_engine(llm=FakeLLM(eos_probability=0.0))
    stops = ("}$", "\n")
    rows = engine.generate(["q1", "q2"], SamplingConfig(max_new_tokens=24, temperature=1.0, stop=stops, n=8), seed=3)
    reasons = set()
    for c in (c for row in rows for c in row):
        assert not any(s in c.text for s in stops)
        assert 1 <= c.num_tokens <= 24
        reasons.add((c.finish_reason, c.stop_reason))
        if c.finish_reason == "length":
            assert c.num_tokens == 24
    assert ("stop", "\n") in reasons or ("stop", "}$") in reasons


def test_output_count_mismatches_are_errors():
    engine, llm = fake_engine()
    llm.generate = lambda prompts, sampling_params=None, use_tqdm=True: []
    with pytest.raises(RuntimeError, match="0 outputs for 1 prompts"):
        engine.generate(["q"], SamplingConfig(), seed=0)


# ----------------------------------------------------------------------------------------------------
# Tokenizer-based methods


def test_count_tokens_and_format_chat_use_the_llms_tokenizer():
    engine, _ = fake_engine()
    assert engine.count_tokens("abc") == 3  # no special tokens added
    assert engine.format_chat("2+2?") == "<s>[user]2+2?[assistant]"
    assert engine.format_chat("2+2?", "So", system="Be brief.") == "<s>[system]Be brief.[user]2+2?[assistant]So"
    with pytest.raises(TypeError):
        engine.count_tokens(3)
    with pytest.raises(TypeError):
        engine.format_chat("q", system=1)


def test_format_chat_without_a_template_falls_back_to_chatml():
    tokenizer = FakeTokenizer()
    tokenizer.chat_template = None
    engine, _ = fake_engine(tokenizer=tokenizer)
    assert engine.format_chat("hi", "A") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nA"


def test_make_engine_shares_one_vllm_engine_per_model_and_arguments(monkeypatch):
    fake = FakeVLLM()
    fake.install(monkeypatch)
    a = make_engine("vllm:m", max_model_len=2048)
    assert make_engine("vllm:m", max_model_len=2048) is a  # two envs of one process: one LLM on the GPU
    assert make_engine("vllm:m", max_model_len=4096) is not a
    assert len(fake.built) == 2
    assert VLLMEngine("m", max_model_len=2048) is not a  # the class itself always builds


def test_it_is_an_engine_and_make_engine_passes_it_through():
    engine, _ = fake_engine()
    assert isinstance(engine, Engine)
    assert make_engine(engine) is engine
    assert engine.name == "vllm:fake/model"


# ----------------------------------------------------------------------------------------------------
# Weight sync


class FakeModel:
    def __init__(self):
        self.loaded: list = []

    def load_weights(self, weights):
        self.loaded.append(list(weights))
        return {name for name, _ in weights}


class PicklableFakeModel(FakeModel):
    pass


def in_process_llm(events: list) -> FakeLLM:
    """A V0 / in-process V1 LLM: llm.llm_engine.model_executor.driver_worker.worker.model_runner.model."""
    llm = FakeLLM()
    model = FakeModel()
    llm.llm_engine = types.SimpleNamespace(model_executor=types.SimpleNamespace(driver_worker=types.SimpleNamespace(
        worker=types.SimpleNamespace(model_runner=types.SimpleNamespace(model=model)))))
    llm.model = model
    original = model.load_weights
    model.load_weights = lambda weights: (events.append("load"), original(weights))[1]
    llm.reset_prefix_cache = lambda: (events.append("reset"), True)[1]
    return llm


def test_load_weights_in_process_then_resets_the_prefix_cache():
    events: list = []
    llm = in_process_llm(events)
    engine, _ = fake_engine(llm=llm)
    weights = [("model.layers.0.mlp.weight", [1.0, 2.0]), ("lm_head.weight", [3.0])]
    assert engine.load_weights(weights) == "in-process"
    assert llm.model.loaded == [weights]
    assert events == ["load", "reset"]
    assert engine.load_weights(dict(weights)) == "in-process"  # a state dict works too
    assert llm.model.loaded[-1] == weights


def test_the_engine_gives_a_trainer_what_it_needs():
    """The TrainableEngine names: model (the in-process module, or None), tokenizer, encode,
    load_weights, reset_prefix_cache."""
    events: list = []
    llm = in_process_llm(events)
    engine, _ = fake_engine(llm=llm)
    assert isinstance(engine, TrainableEngine) and engine.model is llm.model
    assert engine.encode("ab") == [1, ord("a") + 10, ord("b") + 10]
    assert engine.encode("<s>a") == [ord(c) + 10 for c in "<s>a"]  # the prompt has the BOS text: no BOS id
    engine.reset_prefix_cache()
    assert events == ["reset"]
    assert fake_engine()[0].model is None  # the model lives in vLLM's own process
    with pytest.raises(TypeError, match="prompt must be a string"):
        engine.encode(3)


def test_load_weights_through_apply_model_reaches_every_worker():
    events: list = []
    workers = [PicklableFakeModel(), PicklableFakeModel()]  # two tensor-parallel ranks

    class ApplyModelLLM(FakeLLM):
        def apply_model(self, func):
            func = pickle.loads(pickle.dumps(func))  # vLLM ships the function to its worker processes
            events.append("apply")
            return [func(model) for model in workers]

        def reset_prefix_cache(self):
            events.append("reset")
            return True

    engine, _ = fake_engine(llm=ApplyModelLLM())
    weights = [("w", 1.0)]
    assert engine.load_weights(weights) == "apply_model"
    assert [m.loaded for m in workers] == [[weights], [weights]]
    assert events == ["apply", "reset"]

    # With tensor parallelism the in-process model is one rank only: apply_model is used even if it exists.
    tp_llm = in_process_llm(events)
    tp_llm.apply_model = ApplyModelLLM.apply_model.__get__(tp_llm)
    engine = VLLMEngine("m", llm=tp_llm, tensor_parallel_size=2)
    assert engine.load_weights(weights) == "apply_model" and tp_llm.model.loaded == []


def test_apply_model_failures_name_the_vllm_settings():
    class Refusing(FakeLLM):
        def apply_model(self, func):
            raise TypeError("Object of type <class 'function'> is not serializable")

        def reset_prefix_cache(self):
            return True

    engine, _ = fake_engine(llm=Refusing())
    with pytest.raises(RuntimeError, match="VLLM_ALLOW_INSECURE_SERIALIZATION=1"):
        engine.load_weights([("w", 1.0)])


def test_load_weights_fails_clearly_when_the_model_is_unreachable_or_the_cache_cannot_be_reset():
    engine, llm = fake_engine()  # no model path, no apply_model
    llm.reset_prefix_cache = lambda: True
    with pytest.raises(RuntimeError, match="cannot reach the served model"):
        engine.load_weights([("w", 1.0)])

    events: list = []
    old = in_process_llm(events)
    del old.reset_prefix_cache  # an old vLLM: stale KV would be reused, so refuse before loading
    engine, _ = fake_engine(llm=old)
    with pytest.raises(RuntimeError, match="reset_prefix_cache"):
        engine.load_weights([("w", 1.0)])
    assert old.model.loaded == []
    engine, _ = fake_engine(llm=old, enable_prefix_caching=False)
    assert engine.load_weights([("w", 1.0)]) == "in-process"

    busy = in_process_llm(events)
    busy.reset_prefix_cache = lambda: False
    engine, _ = fake_engine(llm=busy)
    with pytest.raises(RuntimeError, match="could not reset its prefix cache"):
        engine.load_weights([("w", 1.0)])

    engine, _ = fake_engine(llm=in_process_llm(events))
    with pytest.raises(TypeError, match=r"weights\[0\] must be a \(name, tensor\) pair"):
        engine.load_weights([1.0])


# ----------------------------------------------------------------------------------------------------
# vLLM's weight-transfer API (IPC backend). DISPATCH tests, not vLLM tests: a fake LLM records which of
# vLLM's RL methods the engine calls, in which order, with which message; the CUDA part (moving the
# weights to the GPU, torch's reduce_tensor handles) is replaced by a CPU stand-in. No vLLM runs here.


class TransferLLM(FakeLLM):
    """The offline LLM's RL methods as vLLM 0.29-0.33 document them (four phases), recording calls."""

    def __init__(self, events: list, start_takes_format: bool = True, phases: bool = True):
        super().__init__()
        self.events, self.updates = events, []
        if phases:
            if start_takes_format:
                self.start_weight_update = lambda is_checkpoint_format=False: events.append(
                    ("start", is_checkpoint_format))
            else:
                self.start_weight_update = lambda: events.append(("start",))
            self.finish_weight_update = lambda weight_version=None: events.append(("finish",))

    def init_weight_transfer_engine(self, request):
        self.events.append(("init", request))

    def update_weights(self, request):
        self.events.append(("update",))
        self.updates.append(request)

    def reset_prefix_cache(self):
        self.events.append(("reset",))
        return True


def cpu_stand_in_for_gpu(items):
    """Replaces `vllm_weight_transfer.to_gpu` (CUDA only): same items, a fixed UUID, a recording reducer."""
    return list(items), "GPU-0000", lambda tensor: ("rebuild_cuda_tensor", (tuple(tensor.shape),))


def ipc_engine(monkeypatch, llm) -> VLLMEngine:
    engine, _ = fake_engine(llm=llm, weight_transfer="ipc")
    monkeypatch.setattr(engine, "_to_gpu", cpu_stand_in_for_gpu)
    return engine


def test_dispatch_weight_transfer_calls_vllms_four_phases_then_resets_the_cache(monkeypatch):
    torch = pytest.importorskip("torch")
    events: list = []
    engine = ipc_engine(monkeypatch, TransferLLM(events))
    weights = [("model.embed_tokens.weight", torch.zeros(4, 2)), ("lm_head.weight", torch.ones(3, dtype=torch.bfloat16))]
    assert engine.load_weights(weights) == "weight-transfer"
    assert events == [("init", {"init_info": {}}), ("start", True), ("update",), ("finish",), ("reset",)]
    [request] = engine.llm.updates
    info = request["update_info"]
    assert info["names"] == ["model.embed_tokens.weight", "lm_head.weight"]
    assert info["dtype_names"] == ["float32", "bfloat16"] and info["shapes"] == [[4, 2], [3]]
    handles = pickle.loads(__import__("base64").b64decode(info["ipc_handles_pickled"]))
    assert handles == [{"GPU-0000": ("rebuild_cuda_tensor", ((4, 2),))}, {"GPU-0000": ("rebuild_cuda_tensor", ((3,),))}]
    assert engine.weights_version == 1
    events.clear()
    engine.load_weights(weights)  # the channel is set up once
    assert [e[0] for e in events] == ["start", "update", "finish", "reset"]


def test_dispatch_weight_transfer_follows_the_release_s_methods(monkeypatch):
    torch = pytest.importorskip("torch")
    weights = [("w", torch.zeros(1))]
    events: list = []  # a two-phase release: no start/finish
    ipc_engine(monkeypatch, TransferLLM(events, phases=False)).load_weights(weights)
    assert [e[0] for e in events] == ["init", "update", "reset"]
    events = []  # a four-phase release whose start takes no argument
    ipc_engine(monkeypatch, TransferLLM(events, start_takes_format=False)).load_weights(weights)
    assert events[1] == ("start",)


def test_dispatch_in_process_model_comes_before_weight_transfer(monkeypatch):
    events: list = []
    llm = in_process_llm(events)
    llm.init_weight_transfer_engine = llm.update_weights = lambda request: events.append("transfer")
    engine = ipc_engine(monkeypatch, llm)
    assert engine.load_weights([("w", 1.0)]) == "in-process" and events == ["load", "reset"]


def test_dispatch_weight_transfer_failure_names_the_settings(monkeypatch):
    torch = pytest.importorskip("torch")

    class Refusing(TransferLLM):
        def update_weights(self, request):
            raise ValueError("Refusing to deserialize `ipc_handles_pickled` without VLLM_ALLOW_INSECURE_SERIALIZATION=1")

    engine = ipc_engine(monkeypatch, Refusing([]))
    with pytest.raises(RuntimeError, match=r"weight transfer \(IPC backend\) failed.*weight_transfer=None"):
        engine.load_weights([("w", torch.zeros(1))])
    assert engine.weights_version == 0


def test_weight_transfer_argument_is_checked():
    with pytest.raises(ValueError, match="weight_transfer must be one of"):
        fake_engine(weight_transfer="nccl")
    with pytest.raises(ValueError, match="tensor_parallel_size > 1"):
        fake_engine(weight_transfer="ipc", tensor_parallel_size=2)
    with pytest.raises(TypeError, match="has no init_weight_transfer_engine or update_weights"):
        fake_engine(weight_transfer="ipc")  # a plain LLM, not built with the IPC backend
    engine, _ = fake_engine()  # an injected llm: "auto" cannot know how it was built
    assert engine.weight_transfer is False


# ----------------------------------------------------------------------------------------------------
# Building the LLM, and the clear errors


@dataclass
class FakeVLLM:
    """What the engine uses of the vllm module: LLM, SamplingParams, platforms.current_platform."""

    device_type: str = "cuda"
    built: list = field(default_factory=list)
    weight_transfer: bool = False  # whether this vLLM has vllm.config.WeightTransferConfig (0.22 on)

    def install(self, monkeypatch) -> None:
        module = types.ModuleType("vllm")
        built = self.built

        class LLM(FakeLLM):
            def __init__(self, **kwargs):
                super().__init__()
                built.append(kwargs)

        class SamplingParams(SamplingParamsSpec):
            pass

        module.LLM, module.SamplingParams = LLM, SamplingParams
        platforms = types.ModuleType("vllm.platforms")
        platform_cls = type("UnspecifiedPlatform" if not self.device_type else "CudaPlatform", (), {})
        platforms.current_platform = platform_cls()
        platforms.current_platform.device_type = self.device_type
        module.platforms = platforms
        monkeypatch.setitem(sys.modules, "vllm", module)
        monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
        if self.weight_transfer:
            LLM.init_weight_transfer_engine = LLM.update_weights = lambda self, request: None
            config = types.ModuleType("vllm.config")
            config.WeightTransferConfig = type("WeightTransferConfig", (), {
                "__init__": lambda self, backend="nccl": setattr(self, "backend", backend)})
            module.config = config
            monkeypatch.setitem(sys.modules, "vllm.config", config)
        # The hub ids used here are neither cached nor reachable offline: pretend they are cached.
        monkeypatch.setattr(vllm_engine, "check_model_source", lambda model: "cached")


@pytest.mark.skipif(VLLM_INSTALLED, reason="vLLM is installed here")
def test_missing_vllm_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install 'ttc-gym\[vllm\]'"):
        make_engine("vllm:some/model")
    with pytest.raises(ImportError, match=r"pip install 'ttc-gym\[vllm\]'"):
        VLLMEngine("some/model")


def test_missing_gpu_is_a_clear_error(monkeypatch):
    fake = FakeVLLM(device_type="")
    fake.install(monkeypatch)
    with pytest.raises(RuntimeError, match="needs a GPU") as info:
        make_engine("vllm:some/model")
    assert "transformers:<model>" in str(info.value)
    assert fake.built == []  # failed before vLLM tried to start


def test_make_engine_builds_the_llm_with_the_documented_arguments(monkeypatch):
    fake = FakeVLLM()
    fake.install(monkeypatch)
    engine = make_engine("vllm:Qwen/Qwen2.5-Math-1.5B", max_model_len=4096, enforce_eager=True)
    assert isinstance(engine, VLLMEngine) and engine.name == "vllm:Qwen/Qwen2.5-Math-1.5B"
    assert fake.built == [{
        "model": "Qwen/Qwen2.5-Math-1.5B", "seed": 0, "gpu_memory_utilization": 0.85,
        "enable_prefix_caching": True, "dtype": "auto", "max_model_len": 4096, "tensor_parallel_size": 1,
        "enforce_eager": True,
    }]
    engine.generate(["q"], SamplingConfig(max_new_tokens=3), seed=0)
    [params] = engine.llm.calls[0]["sampling_params"]
    assert type(params).__name__ == "SamplingParams"  # vllm.SamplingParams when vLLM is installed

    VLLMEngine("m")  # max_model_len=None is left to vLLM (the model's own)
    assert "max_model_len" not in fake.built[-1]


def test_the_llm_is_built_with_the_ipc_weight_transfer_backend_where_vllm_has_it(monkeypatch):
    fake = FakeVLLM(weight_transfer=True)
    fake.install(monkeypatch)
    engine = VLLMEngine("m")
    assert fake.built[-1]["weight_transfer_config"].backend == "ipc" and engine.weight_transfer is True
    engine = VLLMEngine("m", tensor_parallel_size=2)  # IPC handles are per GPU: apply_model then
    assert "weight_transfer_config" not in fake.built[-1] and engine.weight_transfer is False
    engine = VLLMEngine("m", weight_transfer=None)
    assert "weight_transfer_config" not in fake.built[-1] and engine.weight_transfer is False


def test_weight_transfer_ipc_on_a_vllm_without_it_is_refused(monkeypatch):
    fake = FakeVLLM()  # before 0.22: no vllm.config.WeightTransferConfig
    fake.install(monkeypatch)
    assert VLLMEngine("m").weight_transfer is False  # "auto" falls back to apply_model
    with pytest.raises(RuntimeError, match="needs vLLM's weight-transfer API"):
        VLLMEngine("m", weight_transfer="ipc")


def test_a_weight_transfer_config_without_the_llm_methods_is_not_enough(monkeypatch):
    fake = FakeVLLM(weight_transfer=True)
    fake.install(monkeypatch)
    llm_class = sys.modules["vllm"].LLM
    monkeypatch.delattr(llm_class, "update_weights")
    assert VLLMEngine("m").weight_transfer is False and "weight_transfer_config" not in fake.built[-1]


def test_a_missing_model_folder_fails_before_vllm_starts(monkeypatch):
    fake = FakeVLLM()
    fake.install(monkeypatch)
    monkeypatch.setattr(vllm_engine, "check_model_source", check_model_source)  # the real check
    with pytest.raises(FileNotFoundError, match="'/no/such/model': no such file or folder"):
        make_engine("vllm:/no/such/model")
    assert fake.built == []


def test_bad_construction_arguments():
    with pytest.raises(TypeError, match="only\\s+apply when the engine builds"):
        VLLMEngine("m", llm=FakeLLM(), enforce_eager=True)
    with pytest.raises(TypeError, match="has no generate"):
        VLLMEngine("m", llm=object())
    with pytest.raises(TypeError, match="needs a model"):
        VLLMEngine()
    with pytest.raises(TypeError, match="model must be"):
        VLLMEngine("", llm=FakeLLM())
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        VLLMEngine("m", llm=FakeLLM(), tensor_parallel_size=0)


def test_importing_the_engine_module_does_not_import_vllm_or_torch():
    import subprocess

    code = (
        "import sys, ttc_gym.engines.vllm_engine, ttc_gym.engines;"
        "print('vllm' in sys.modules, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"] and result.stderr == ""


# ----------------------------------------------------------------------------------------------------
# The env on top of it


def test_ttc_math_runs_on_the_vllm_engine():
    """TTC-Math-v0's prover and trace bookkeeping work through this engine (K samples per estimate)."""
    import gymnasium as gym

    engine, llm = fake_engine()
    env = gym.make("TTC-Math-v0", engine=engine, num_prover_samples=4, max_episodes=2, max_answer_tokens=8)
    obs, info = env.reset(seed=0)
    assert 0.0 <= info["J"] <= 1.0 and len(info["prover_answers"]) == 4
    obs, reward, terminated, truncated, info = env.step("Let me think. 2 + 2 = 4.")
    assert info["episodes_used"] == 1 and info["tokens_used"] == engine.count_tokens("Let me think. 2 + 2 = 4.")
    params = [p for call in llm.calls for p in call["sampling_params"]]
    assert {p.n for p in params} == {4} and {p.max_tokens for p in params} == {8}
    env.close()
