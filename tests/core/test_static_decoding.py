"""The static decode loop (`ttc_gym.engines.static_decoding`, issue 28): its forward computes the
model's logits, its sampler (version 2) draws from the same distributions as the transformers loop's
(version 1), greedy decoding and the stop rules give the transformers loop's texts, and models it
cannot run fall back to the transformers loop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
scipy_stats = pytest.importorskip("scipy.stats")  # in the `test` extra: CI runs this file

from ttc_gym.engines import llama_forward  # noqa: E402
from ttc_gym.engines.base import SamplingConfig  # noqa: E402
from ttc_gym.engines.sampling import (  # noqa: E402
    SAMPLER_VERSIONS, pick_tokens_v2, row_seed, splitmix64_reference, splitmix64_uniforms,
)
from ttc_gym.engines.testing import tiny_random_model  # noqa: E402
from ttc_gym.engines.transformers_engine import TransformersEngine  # noqa: E402


@pytest.fixture(scope="module")
def micro():
    from ttc_gym.micro.checkpoint import load_micro_engine

    return load_micro_engine()


def gqa_model():
    """A tiny random Llama with grouped-query attention (4 query heads share 2 kv heads) and untied
    head, on the default model's tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tokenizer = tiny_random_model(seed=0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=0, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval(), tokenizer


def test_splitmix64_uniforms_equal_the_python_reference():
    seeds = [0, 1, 12345, 2**62 + 7, 2**63 - 1, row_seed(3, 1)]
    got = splitmix64_uniforms(torch.tensor(seeds, dtype=torch.int64), 40)
    for i, s in enumerate(seeds):
        assert got[i].tolist() == [splitmix64_reference(s, t) for t in range(40)]
    assert 0.0 <= float(got.min()) and float(got.max()) < 1.0
    # Known first output of SplitMix64 seeded with 0 (splitmix64.c): 0xE220A8397B1DCDAF.
    assert splitmix64_reference(0, 0) == (0xE220A8397B1DCDAF >> 11) * 2.0**-53
    assert SAMPLER_VERSIONS == {"hf": 1, "static": 2}


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("which", ["micro", "gqa"])
def test_the_forward_computes_the_models_logits(micro, which, fuse, monkeypatch):
    """Prefill + one step of the static loop give the model's own last-position logits, for groups
    of several rows and single rows, a prompt partly from the prefix store, fused and in-place weights."""
    if not fuse:
        monkeypatch.setattr(llama_forward, "FUSE_BYTES", 0)
    if which == "micro":
        engine = TransformersEngine(micro.model, tokenizer=micro.tokenizer)
    else:
        model, tokenizer = gqa_model()
        engine = TransformersEngine(model, tokenizer=tokenizer)
    assert engine.decode_loop == "static" and engine.static_unsupported is None
    texts = ["Start at 7. Step 1: add 5. Step 2: multiply by 3. What is the result?", "Step 1: 7 + 5 = 12.",
             "A", "Start at 7. Step 1: add 5."]
    encoded = [engine.encode(t) for t in texts]
    rows = [encoded[0], encoded[0], encoded[1], encoded[2], encoded[3], encoded[0]]
    decoder = engine.static_decoder
    with torch.inference_mode():
        assert decoder.weights().fused is fuse
        expected = torch.stack([engine.model(input_ids=torch.tensor([ids])).logits[0, -1].float() for ids in rows])
        got = decoder.next_logits(rows)
        unshared = decoder.next_logits(rows, shared_prefix=False)
        # Prompt 0 but its last 3 tokens in the store (keys/values of the model's own forward): reused.
        decoder.prefix_store.put(encoded[0][:-3], _kv_of(engine, encoded[0][:-3]))
        reused_before = decoder.prefix_store.reused_tokens
        reused = decoder.next_logits([encoded[0]])
        assert decoder.prefix_store.reused_tokens - reused_before == len(encoded[0]) - 3
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(unshared, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(reused[0], expected[0], rtol=1e-4, atol=1e-4)


def _kv_of(engine, ids):
    """Keys/values of `ids` from the model's own forward ([1, kv_heads, len, dim] per layer)."""
    out = engine.model(input_ids=torch.tensor([ids]), use_cache=True)
    cache = out.past_key_values
    return [(layer.keys, layer.values) for layer in cache.layers]


def test_greedy_decoding_and_stop_rules_equal_the_transformers_loop(micro):
    """Greedy rows do not use the sampler: both loops give the same texts, stop strings, closing
    braces and token counts (the static loop checks the text only for candidate tokens)."""
    static = TransformersEngine(micro.model, tokenizer=micro.tokenizer)
    hf = TransformersEngine(micro.model, tokenizer=micro.tokenizer, decode_loop="hf")
    from ttc_gym.micro.task import MicroSource
    from ttc_gym.prompts import PromptTemplate

    template = PromptTemplate()
    problems = MicroSource().problems(3, 1)
    prompts = [template.reasoning_prompt(static, p.question, []) for p in problems]
    prompts += [template.forced_answer_prompt(static, p.question, ["Step 1: 3 + 4 = 7."]) for p in problems]
    for sampling in (SamplingConfig(max_new_tokens=48, temperature=0.0),
                     SamplingConfig(max_new_tokens=48, temperature=0.0, stop=("\n\n",)),
                     SamplingConfig(max_new_tokens=48, temperature=0.0, stop=(" = ", "Step 3"), n=2),
                     SamplingConfig(max_new_tokens=24, temperature=0.0, stop_at_closing_brace=True)):
        a, b = static.generate(prompts, sampling, seed=0), hf.generate(prompts, sampling, seed=0)
        assert a == b
        assert [[c.token_ids for c in row] for row in a] == [[c.token_ids for c in row] for row in b]
    assert {c.finish_reason for row in a for c in row} >= {"stop"}


def _first_token_counts(engine, prompt, samples, sampling):
    rows = engine.generate([prompt], dataclasses.replace(sampling, n=samples, max_new_tokens=1), seed=11)[0]
    return np.bincount([c.token_ids[0] if c.token_ids else -1 for c in rows], minlength=len(engine.tokenizer))


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (2.0, 1.0), (2.0, 0.9)])
def test_both_samplers_draw_the_models_next_token_distribution(micro, temperature, top_p):
    """Sampler versions 1 (transformers loop) and 2 (static loop) give other texts for a seed but the
    same distribution: the first token's frequencies over 4096 samples at a fixed prompt fit
    softmax(logits / T) (nucleus-filtered) by a chi-square test. The seed is fixed, so the test
    cannot flake; p > 1e-3 fails for a wrong distribution (e.g. the logits at the wrong position,
    or T applied twice) by many orders of magnitude."""
    from ttc_gym.micro.task import MicroSource
    from ttc_gym.prompts import PromptTemplate

    problem = MicroSource().problems(1, 2)[0]
    prompt = PromptTemplate().reasoning_prompt(micro, problem.question, []) + "So"  # a prefix with some spread
    sampling = SamplingConfig(temperature=temperature, top_p=top_p)
    with torch.inference_mode():
        logits = micro.model(input_ids=torch.tensor([micro.encode(prompt)])).logits[0, -1].double()
    probs = torch.softmax(logits / temperature, -1)
    if top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        keep = (sorted_probs.cumsum(-1) - sorted_probs) < top_p
        mask = torch.zeros_like(probs, dtype=torch.bool)
        mask[order[keep]] = True
        probs = probs * mask / (probs * mask).sum()
    probs = probs.numpy()
    assert probs.max() < 0.9, "a fixed prefix with some spread, or the test says little"
    samples = 4096
    counts = {}
    for loop in ("static", "hf"):
        engine = TransformersEngine(micro.model, tokenizer=micro.tokenizer, decode_loop=loop)
        counts[loop] = _first_token_counts(engine, prompt, samples, sampling)
        assert counts[loop][probs == 0].sum() == 0  # nothing outside the nucleus
        # Chi-square over tokens with expected count >= 5 (the rest pooled).
        big = probs * samples >= 5
        observed = np.append(counts[loop][big], counts[loop][~big].sum())
        expected = np.append(probs[big], probs[~big].sum()) * samples
        if expected[-1] < 5:
            observed, expected = observed[:-1], expected[:-1] * observed[:-1].sum() / expected[:-1].sum()
        p = scipy_stats.chisquare(observed, expected).pvalue
        assert p > 1e-3, (loop, p)
    assert not np.array_equal(counts["static"], counts["hf"])  # other draws: the versions differ


def test_pick_tokens_v2_matches_softmax_and_is_stable_under_rounding():
    n = 40_000
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -9.0]).repeat(n, 1)
    uniforms = splitmix64_uniforms(torch.arange(n, dtype=torch.int64) * 7919, 1)[:, 0]
    for temperature, top_p in ((1.0, 1.0), (0.5, 1.0), (1.0, 0.8)):
        picks = pick_tokens_v2(logits, uniforms, SamplingConfig(temperature=temperature, top_p=top_p))
        probs = torch.softmax(logits[0] / temperature, -1).double()
        if top_p < 1:
            keep = (probs.cumsum(-1) - probs) < top_p
            probs = probs * keep / (probs * keep).sum()
        freq = torch.bincount(picks, minlength=6).double() / n
        assert ((freq - probs).abs() <= 4.5 * (probs * (1 - probs) / n).sqrt() + 1e-12).all(), (freq, probs)
    assert pick_tokens_v2(logits[:2], uniforms[:2], SamplingConfig(temperature=0.0)).tolist() == [0, 0]
    # A flat distribution over a real vocabulary: float rounding of the logits barely moves draws.
    gen = torch.Generator().manual_seed(1)
    flat = 0.01 * torch.randn(2000, 49152, generator=gen)
    u = splitmix64_uniforms(torch.arange(2000, dtype=torch.int64), 1)[:, 0]
    a = pick_tokens_v2(flat, u, SamplingConfig(temperature=1.0))
    b = pick_tokens_v2(flat * (1 + 1e-6), u, SamplingConfig(temperature=1.0))
    assert (a == b).float().mean() >= 0.999


@pytest.mark.parametrize("compiled", [False, True])
def test_samples_that_finish_apart_are_compacted_and_keep_their_texts(micro, compiled, monkeypatch):
    """A prompt's K samples that end at different steps: once the open rows fit in half the grid the
    loop continues on a smaller one (finished rows leave it, not only finished prompts), and every
    sample's text is the one it gets decoded alone (each row its own group: no row compaction)."""
    engine = TransformersEngine(micro.model, tokenizer=micro.tokenizer)
    alone = TransformersEngine(micro.model, tokenizer=micro.tokenizer, shared_prefix=False, max_batch_size=1)
    for e in (engine, alone):
        e.static_decoder.compiled = compiled
    from ttc_gym.micro.task import MicroSource
    from ttc_gym.prompts import PromptTemplate

    template = PromptTemplate()
    prompts = [template.reasoning_prompt(engine, p.question, []) for p in MicroSource().problems(2, 1)]
    sampling = SamplingConfig(max_new_tokens=40, temperature=1.5, n=8, stop=("=",))
    rows_per_step: list[int] = []
    if compiled:
        from ttc_gym.engines import compiled_step

        if compiled_step.library()[0] is None:
            pytest.skip(f"no compiled step here: {compiled_step.library()[1]}")
        owner, name = compiled_step.CompiledStep, "decode_step"
    else:
        owner, name = llama_forward.LlamaWeights, "step"
    original = getattr(owner, name)

    def counting(self, ids, *args, **kwargs):
        rows_per_step.append(ids.shape[0])
        return original(self, ids, *args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    rows = engine.generate(prompts, sampling, seed=5)
    lengths = [c.num_tokens for row in rows for c in row]
    assert len(set(lengths)) > 2  # the samples did end apart
    assert rows_per_step[0] == 16 and min(rows_per_step) < 8  # a smaller grid than whole prompts allow
    assert rows == alone.generate(prompts, sampling, seed=5)


def test_decode_loop_choice_and_fallback():
    model, tokenizer = tiny_random_model(seed=0)
    engine = TransformersEngine(model, tokenizer=tokenizer)
    assert (engine.decode_loop, engine.sampler_version) == ("static", 2)
    engine.decode_loop = "hf"
    assert (engine.decode_loop, engine.sampler_version) == ("hf", 1)
    with pytest.raises(ValueError, match="Did you mean 'static'"):
        TransformersEngine(model, tokenizer=tokenizer, decode_loop="statc")
    # On a CPU "auto" picks the static loop above STATIC_AUTO_MAX_HIDDEN too (the default model's case).
    from transformers import LlamaConfig, LlamaForCausalLM

    from ttc_gym.engines.transformers_engine import STATIC_AUTO_MAX_HIDDEN

    wide = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=2 * STATIC_AUTO_MAX_HIDDEN,
                                        intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                                        num_key_value_heads=2, eos_token_id=tokenizer.eos_token_id)).eval()
    assert TransformersEngine(wide, tokenizer=tokenizer).decode_loop == "static"
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2,
                                      eos_token_id=tokenizer.eos_token_id)).eval()
    other = TransformersEngine(gpt2, tokenizer=tokenizer)
    assert other.decode_loop == "hf" and "model_type is 'gpt2'" in other.static_unsupported
    [[c]] = other.generate(["Hello"], SamplingConfig(max_new_tokens=3), seed=0)
    assert 1 <= c.num_tokens <= 3


def test_a_model_changed_into_one_the_loop_cannot_run_is_decoded_by_the_transformers_loop():
    """Adapters injected after the engine was built (as LoRA training does) replace plain linear
    layers: the static loop would ignore them, so such a call runs on the transformers loop."""

    class Adapted(torch.nn.Linear):
        def forward(self, x):
            return super().forward(x) * 1.5

    model, tokenizer = tiny_random_model(seed=1)
    engine = TransformersEngine(model, tokenizer=tokenizer)
    sampling = SamplingConfig(max_new_tokens=6, temperature=1.0, n=2)
    before = engine.generate(["Hello there"], sampling, seed=3)
    old = model.model.layers[0].mlp.up_proj
    new = Adapted(old.in_features, old.out_features, bias=False)
    with torch.no_grad():
        new.weight.copy_(old.weight)
    model.model.layers[0].mlp.up_proj = new
    assert "not a plain nn.Linear" in engine.static_decoder.runnable()
    reference = TransformersEngine(model, tokenizer=tokenizer, decode_loop="hf")
    assert engine.generate(["Hello there"], sampling, seed=3) == reference.generate(["Hello there"], sampling, seed=3)
    assert engine.generate(["Hello there"], sampling, seed=3) != before


@pytest.mark.slow
def test_the_default_model_gives_the_same_greedy_texts_on_both_loops():
    """SmolLM2-135M (9 query heads over 3 kv heads, tied head, weights used in place with the few-row
    form): greedy episodes and forced answers equal the transformers loop's."""
    from ttc_gym.engines import make_engine

    engine = make_engine(None)
    hf = TransformersEngine(engine.model, tokenizer=engine.tokenizer, decode_loop="hf")
    prompts = [engine.format_chat("What is 12 + 30?"),
               engine.format_chat("What is 7 * 6?", assistant_prefix="Time is up. The answer is $\\boxed{")]
    for sampling in (SamplingConfig(max_new_tokens=24, temperature=0.0, n=2),
                     SamplingConfig(max_new_tokens=12, temperature=0.0, stop_at_closing_brace=True)):
        assert engine.generate(prompts, sampling, seed=0) == hf.generate(prompts, sampling, seed=0)
