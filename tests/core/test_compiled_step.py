"""The compiled decoding step (`ttc_gym.engines.compiled_step`, issue 28): it computes the torch
step's logits and keys/values, draws what `pick_tokens_v2` draws, gives the static loop's texts, is
built once into its cache folder, and falls back to the torch step (saying why) where it cannot run."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ttc_gym.engines import compiled_step  # noqa: E402
from ttc_gym.engines.base import SamplingConfig  # noqa: E402
from ttc_gym.engines.llama_forward import LlamaWeights  # noqa: E402
from ttc_gym.engines.sampling import pick_tokens_v2, splitmix64_uniforms  # noqa: E402
from ttc_gym.engines.static_decoding import StaticDecoder  # noqa: E402
from ttc_gym.engines.transformers_engine import TransformersEngine  # noqa: E402

needs_compiler = pytest.mark.skipif(compiled_step.library()[0] is None,
                                    reason=f"compiled step unavailable: {compiled_step.library()[1]}")


@pytest.fixture(scope="module")
def micro():
    from ttc_gym.micro.checkpoint import load_micro_engine

    return load_micro_engine()


def odd_model():
    """A tiny random Llama whose sizes are not multiples of the kernel's tiles: hidden 72, 6 query
    heads over 2 kv heads of dim 12, intermediate 100, vocab 101, untied head."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=101, hidden_size=72, intermediate_size=100, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, head_dim=12, max_position_embeddings=256,
                         eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        return LlamaForCausalLM(config).eval()


def grid(w: LlamaWeights, groups: int, n: int, lengths: list[int], t: int, seed: int = 0):
    """A random grid: prompt keys/values, own keys/values up to t, ids, positions, some rows finished."""
    g = torch.Generator().manual_seed(seed)
    p_max = max(lengths)
    prompt_kv = torch.randn((w.layers_count, 2, groups, w.kv_heads, p_max, w.head_dim), generator=g)
    own_kv = torch.randn((w.layers_count, 2, groups * n, w.kv_heads, t + 4, w.head_dim), generator=g)
    decoder = StaticDecoder.__new__(StaticDecoder)
    cache = decoder._cache(w, prompt_kv, lengths, list(range(groups)), n, own_kv, t + 4)
    ids = torch.randint(0, w.embed.shape[0], (groups * n,), generator=g)
    positions = torch.tensor([lengths[r // n] + t for r in range(groups * n)])
    live = torch.rand(groups * n, generator=g) < 0.7
    live[0] = True
    return ids, positions, cache, live


@needs_compiler
@pytest.mark.parametrize("which", ["micro", "odd"])
def test_the_compiled_step_computes_the_torch_steps_logits_and_keys(micro, which):
    model = micro.model if which == "micro" else odd_model()
    with torch.inference_mode():
        w = LlamaWeights(model, small_rows=False)
        step = compiled_step.CompiledStep(compiled_step.library()[0], w)
        for groups, n, lengths, t in ((1, 1, [9], 0), (3, 4, [5, 17, 1], 6), (2, 8, [40, 3], 13)):
            ids, positions, cache, live = grid(w, groups, n, lengths, t)
            before = cache.own_kv.clone()
            expected = w.step(ids, positions, t, cache)
            expected_kv = cache.own_kv.clone()
            cache.own_kv.copy_(before)
            got = step.step(ids, positions, t, cache, live)
            torch.testing.assert_close(got[live], expected[live], rtol=1e-4, atol=1e-4)
            assert (got[~live] == 0).all()
            # Live rows wrote their key/value at t; finished rows' buffers are untouched.
            torch.testing.assert_close(cache.own_kv[:, :, live], expected_kv[:, :, live], rtol=1e-5, atol=1e-5)
            assert torch.equal(cache.own_kv[:, :, ~live], before[:, :, ~live])


@needs_compiler
@pytest.mark.parametrize("which", ["micro", "odd"])
def test_the_compiled_prefill_writes_the_torch_prefills_keys_and_values(micro, which):
    """Packed pieces of three groups, one continuing positions already stored, one split in two
    pieces (two batches, as `prefill_chunk` splits them): the same keys/values as `LlamaWeights.prefill`."""
    model = micro.model if which == "micro" else odd_model()
    with torch.inference_mode():
        w = LlamaWeights(model, small_rows=False)
        step = compiled_step.CompiledStep(compiled_step.library()[0], w)
        g = torch.Generator().manual_seed(4)
        base = torch.zeros((w.layers_count, 2, 3, w.kv_heads, 30, w.head_dim))
        base[:, :, 1, :, :6] = torch.randn(base[:, :, 1, :, :6].shape, generator=g)  # group 1: 6 positions stored
        batches = [[(0, 0, 9, 0), (1, 9, 20, 6)], [(2, 0, 14, 0)], [(2, 0, 5, 14)]]
        torch_kv, c_kv = base.clone(), base.clone()
        for pieces in batches:
            count = pieces[-1][2]
            ids = torch.randint(0, w.embed.shape[0], (count,), generator=g)
            positions = torch.cat([torch.arange(first, first + end - start) for _, start, end, first in pieces])
            w.prefill(ids, positions, pieces, torch_kv[:, 0], torch_kv[:, 1])
            step.prefill(ids, positions, pieces, c_kv)
        torch.testing.assert_close(c_kv, torch_kv, rtol=1e-4, atol=1e-4)
        assert c_kv[:, :, 0, :, 9:].abs().sum() == 0  # nothing written past a piece
        with pytest.raises(ValueError, match="does not fit"):
            step.prefill(ids, positions, [(3, 0, 5, 14)], c_kv)
        with pytest.raises(ValueError, match="cover every token"):
            step.prefill(ids, positions, [(2, 0, 3, 14)], c_kv)


@needs_compiler
@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0])
def test_decode_step_draws_what_pick_tokens_v2_draws_and_keeps_the_books(micro, temperature):
    """Same tokens as the torch sampler on the compiled logits; EOS rows finish, candidate rows are
    listed for the text check, positions advance, and the open-group flags follow `live`."""
    with torch.inference_mode():
        w = LlamaWeights(micro.model, small_rows=False)
        step = compiled_step.CompiledStep(compiled_step.library()[0], w)
        groups, n, lengths, t, steps = 6, 4, [7, 12, 3, 30, 5, 9], 5, 10
        ids, positions, cache, live = grid(w, groups, n, lengths, t, seed=1)
        live[4:8] = False  # group 1 already closed
        sampling = SamplingConfig(temperature=temperature, max_new_tokens=steps)
        uniforms = None if sampling.greedy else splitmix64_uniforms(torch.arange(groups * n) * 31 + 7, steps)
        before = cache.own_kv.clone()
        logits = step.step(ids, positions, t, cache, live).clone()
        cache.own_kv.copy_(before)
        expected = pick_tokens_v2(logits, None if uniforms is None else uniforms[:, t], sampling)
        vocab = w.embed.shape[0]
        eos = torch.zeros(vocab, dtype=torch.bool)
        cand = torch.zeros(vocab, dtype=torch.bool)
        eos[expected[live][:3]] = True  # some live rows end
        cand[expected[live][-2:]] = True
        out = torch.full((groups * n, steps), -5, dtype=torch.long)
        ended = torch.full((groups * n,), steps, dtype=torch.long)
        live_before, positions_before = live.clone(), positions.clone()
        count, check, open_groups = step.decode_step(ids, positions, t, cache, live, uniforms, sampling, eos, cand,
                                                     out, ended)
    assert torch.equal(out[live_before, t], expected[live_before])
    assert torch.equal(ids[live_before], expected[live_before])
    assert (out[~live_before, t] == 0).all()
    finished = live_before & eos[expected]
    assert finished.any() and torch.equal(live, live_before & ~finished)
    assert torch.equal(ended, torch.where(finished, t + 1, steps))
    assert check == (live_before & ~finished & cand[expected]).nonzero()[:, 0].tolist()
    assert torch.equal(positions, positions_before + 1)
    assert torch.equal(open_groups, live.view(groups, n).any(dim=1)) and count == int(open_groups.sum())
    assert not open_groups[1]


@needs_compiler
def test_the_engine_gives_the_same_texts_with_and_without_the_compiled_step(micro):
    """The static loop's texts, token ids and finish reasons are the same on the compiled step as on
    the torch step (sampled, nucleus-filtered, greedy, stop strings, closing braces, several samples)."""
    from ttc_gym.micro.task import MicroSource
    from ttc_gym.prompts import PromptTemplate

    engine = TransformersEngine(micro.model, tokenizer=micro.tokenizer)
    assert engine.compiled_step and engine.compiled_step_reason is None
    template = PromptTemplate()
    problems = MicroSource().problems(6, 4)
    prompts = [template.reasoning_prompt(engine, p.question, []) for p in problems]
    prompts += [template.forced_answer_prompt(engine, p.question, ["Step 1: 3 + 4 = 7."]) for p in problems[:3]]
    for sampling in (SamplingConfig(max_new_tokens=64, temperature=1.0),
                     SamplingConfig(max_new_tokens=64, temperature=0.8, n=5, stop=("\n\n",)),
                     SamplingConfig(max_new_tokens=64, temperature=1.0, top_p=0.9, n=2),
                     SamplingConfig(max_new_tokens=48, temperature=0.0, stop=(" = ", "Step 3"), n=2),
                     SamplingConfig(max_new_tokens=24, temperature=1.0, n=3, stop_at_closing_brace=True)):
        engine.compiled_step = True
        engine.reset_prefix_cache()
        compiled = engine.generate(prompts, sampling, seed=5)
        engine.compiled_step = False
        engine.reset_prefix_cache()
        assert engine.compiled_step_reason == "turned off (compiled=False)"
        torch_step = engine.generate(prompts, sampling, seed=5)
        assert compiled == torch_step, sampling
    assert {c.finish_reason for row in compiled for c in row} >= {"stop"}


def test_without_a_compiler_the_torch_step_runs_and_says_why(micro, monkeypatch):
    monkeypatch.setattr(compiled_step, "_state", {})
    monkeypatch.setattr(compiled_step, "compiler", lambda: None)
    engine = TransformersEngine(micro.model, tokenizer=micro.tokenizer)
    assert "no C compiler found" in engine.compiled_step_reason
    assert engine.static_decoder.stepper(engine.static_decoder.weights()) is None
    [[c]] = engine.generate(["Start at 3."], SamplingConfig(max_new_tokens=8, temperature=1.0), seed=1)
    assert 1 <= c.num_tokens <= 8
    monkeypatch.setattr(compiled_step, "_state", {})
    monkeypatch.setenv("TTC_GYM_COMPILED_STEP", "0")
    assert "TTC_GYM_COMPILED_STEP=0" in TransformersEngine(micro.model, tokenizer=micro.tokenizer).compiled_step_reason
    hf = TransformersEngine(micro.model, tokenizer=micro.tokenizer, decode_loop="hf")
    assert "belongs to the static loop" in hf.compiled_step_reason
    with pytest.raises(TypeError, match="compiled_step must be a bool"):
        TransformersEngine(micro.model, tokenizer=micro.tokenizer, compiled_step="yes")


@needs_compiler
def test_the_library_is_built_once_into_its_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TTC_GYM_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(compiled_step, "_state", {})
    lib, reason = compiled_step.library()
    assert reason is None and lib is not None
    [built] = tmp_path.glob("compiled_step-*.so")
    assert [p.name for p in tmp_path.iterdir()] == [built.name]  # no temporary files left

    def no_compiler_runs(*args, **kwargs):
        raise AssertionError("compiled again although the library is in the cache")

    monkeypatch.setattr(compiled_step.subprocess, "run", no_compiler_runs)
    monkeypatch.setattr(compiled_step, "_state", {})
    assert compiled_step.library()[0] is not None
    # A compiler that fails: the reason carries its message, and nothing is left behind.
    monkeypatch.setattr(compiled_step, "_state", {})
    monkeypatch.setenv("TTC_GYM_KERNEL_CACHE", str(tmp_path / "other"))
    monkeypatch.setattr(compiled_step.subprocess, "run", lambda *a, **k: compiled_step.subprocess.CompletedProcess(
        a, 1, "", "error: something broke"))
    lib, reason = compiled_step.library()
    assert lib is None and "something broke" in reason
    assert not list((tmp_path / "other").glob("*.so"))


@needs_compiler
def test_a_failed_first_check_turns_the_compiled_step_off(micro, monkeypatch):
    monkeypatch.setattr(compiled_step, "_state", {})
    monkeypatch.setattr(compiled_step, "check_against_torch", lambda step, factory: "logits differ by 1e+00")
    engine = TransformersEngine(micro.model, tokenizer=micro.tokenizer)
    assert engine.static_decoder.stepper(engine.static_decoder.weights()) is None
    assert "logits differ" in engine.compiled_step_reason and "turned off for this process" in engine.compiled_step_reason


@needs_compiler
def test_bad_input_is_refused_before_any_compiled_code_runs(micro, monkeypatch):
    from ttc_gym.engines import llama_forward

    lib = compiled_step.library()[0]
    with torch.inference_mode():
        w = LlamaWeights(micro.model, small_rows=False)
        step = compiled_step.CompiledStep(lib, w)
        ids, positions, cache, live = grid(w, 2, 2, [4, 6], 3)
        with pytest.raises(ValueError, match="below the own capacity"):
            step.step(ids, positions, cache.own_kv.shape[4], cache, live)
        with pytest.raises(ValueError, match="ids must be a contiguous torch.int64 tensor of 4 rows"):
            step.step(ids[:3], positions, 3, cache, live)
        with pytest.raises(ValueError, match="token ids must lie in"):
            step.step(torch.full_like(ids, 384), positions, 3, cache, live)
        with pytest.raises(ValueError, match="rotary positions"):
            step.step(ids, torch.full_like(positions, 5000), 3, cache, live)
        with pytest.raises(ValueError, match="token ids must lie in"):
            step.prefill(torch.tensor([5, 999]), torch.tensor([0, 1]), [(0, 0, 2, 0)], cache.prompt_kv)
        with pytest.raises(ValueError, match="rotary positions"):
            step.decode_step(ids, torch.full_like(positions, 1000), 3, cache, live, None,
                             SamplingConfig(temperature=0.0), torch.zeros(384, dtype=torch.bool),
                             torch.zeros(384, dtype=torch.bool), torch.zeros(4, 64, dtype=torch.long),
                             torch.zeros(4, dtype=torch.long))
        with pytest.raises(ValueError, match="nucleus"):
            step.decode_step(ids, positions, 3, cache, live, None, SamplingConfig(temperature=1.0, top_p=0.5),
                             torch.zeros(384, dtype=torch.bool), torch.zeros(384, dtype=torch.bool),
                             torch.zeros(4, 8, dtype=torch.long), torch.zeros(4, dtype=torch.long))
        monkeypatch.setattr(llama_forward, "FUSE_BYTES", 0)
        with pytest.raises(ValueError, match="too big for the fused layout"):
            compiled_step.CompiledStep(lib, LlamaWeights(micro.model, small_rows=False))


@needs_compiler
def test_an_engine_with_a_bound_compiled_step_copies_and_pickles(micro):
    """The binding holds ctypes pointers: copies and unpickled engines bind their own on first use."""
    import copy
    import pickle

    engine = TransformersEngine(micro.model, tokenizer=micro.tokenizer)
    sampling = SamplingConfig(max_new_tokens=16, temperature=1.0, n=2)
    first = engine.generate(["Start at 3."], sampling, seed=2)
    assert engine.static_decoder._compiled is not None
    for other in (copy.deepcopy(engine), pickle.loads(pickle.dumps(engine))):
        assert other.compiled_step_reason is None
        assert other.generate(["Start at 3."], sampling, seed=2) == first
        assert other.static_decoder._compiled is not None
