"""Batched, prefix-sharing generation and what rests on it: per-prompt seeds, the prefix store, the
prover's one-call `estimate_many`, `LLMAgent.act_batch`, and the vectorized TTC-Math-v0.

Everything runs on the tiny random model (`tests/conftest.py`): real mechanics, no real cost. The
central property: batching never changes results — a prompt sampled in a batch with its own seed
gives the text it gives alone, whatever else is in the batch, however rows are chunked, and
whether its prefix came from the prefix store or was encoded afresh.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.agents.llm import LLMAgent
from ttc_gym.envs.math_vector import TTCMathVectorEnv, unbatch
from tests.conftest import fast_env_kwargs, tiny_engine
from ttc_gym.engines.base import Completion, SamplingConfig, generate_per_prompt
from ttc_gym.llm_prover import LLMProver
from ttc_gym.problems import Problem

torch = pytest.importorskip("torch")

from ttc_gym.engines.kv_cache import PrefixStore  # noqa: E402
from ttc_gym.engines.testing import tiny_random_model  # noqa: E402
from ttc_gym.engines.sampling import UNIFORMS_PER_ROW, pick_tokens  # noqa: E402
from ttc_gym.engines.transformers_engine import TransformersEngine  # noqa: E402

SAMPLE = SamplingConfig(max_new_tokens=10, temperature=1.0, n=3)


def variant(**kwargs) -> TransformersEngine:
    """Another engine over the tiny model (same weights), e.g. without the prefix store."""
    base = tiny_engine()
    return TransformersEngine(base.model, tokenizer=base.tokenizer, **kwargs)


@pytest.fixture(scope="module")
def prompts():
    e = tiny_engine()
    return [
        e.format_chat("What is 2+3?"),
        "Hello",  # one token: nothing to prefill
        e.format_chat("A much longer question, " * 12, assistant_prefix="Let me think."),
        e.format_chat("What is 2+3?", assistant_prefix="First, 2 + 3"),  # shares a long prefix with [0]
    ]


def texts(rows):
    return [[c.text for c in row] for row in rows]


# -- per-prompt seeds ------------------------------------------------------------------------------


@pytest.mark.parametrize("sampling", [SAMPLE, dataclasses.replace(SAMPLE, top_p=0.9, temperature=0.8),
                                      dataclasses.replace(SAMPLE, stop=("e", "a"))])
def test_each_prompt_in_a_batch_gets_what_it_gets_alone(prompts, sampling):
    engine = tiny_engine()
    seeds = [11, 22, 33, 44]
    batched = engine.generate(prompts, sampling, seed=seeds)
    alone = [engine.generate([p], sampling, seed=s)[0] for p, s in zip(prompts, seeds)]
    assert batched == alone
    # A different batch around a prompt does not change its samples; neither does the order.
    assert engine.generate(prompts[2:0:-1], sampling, seed=[33, 22]) == [batched[2], batched[1]]
    if not sampling.stop:
        assert len({c.text for row in batched for c in row}) == 3 * len(prompts)  # all samples differ


def test_an_integer_seed_equals_the_one_element_sequence(prompts):
    engine = tiny_engine()
    assert engine.generate(prompts[:1], SAMPLE, seed=5) == engine.generate(prompts[:1], SAMPLE, seed=[5])
    # With one seed for the call, equal prompts still get different samples.
    twice = engine.generate([prompts[0], prompts[0]], SAMPLE, seed=5)
    assert twice[0] != twice[1]


@pytest.mark.parametrize("seed, error, words", [
    ([1, 2], ValueError, "seed has 2 entries for 1 prompts"),
    ([-1], ValueError, "seed[0] must be >= 0"),
    (["a"], TypeError, "seed[0] must be an integer"),
    ("7", TypeError, "seed must be an integer"),
])
def test_bad_seed_sequences(seed, error, words):
    with pytest.raises(error) as info:
        tiny_engine().generate(["Hello"], SAMPLE, seed=seed)
    assert words in str(info.value)


def test_generate_per_prompt_falls_back_to_one_call_per_prompt():
    class Plain:  # an engine without per_prompt_seeds
        name, calls = "plain", []

        def generate(self, prompts, sampling, *, seed):
            self.calls.append((list(prompts), seed))
            return [[Completion(f"{p}:{seed}", 1, "length")] for p in prompts]

    engine = Plain()
    rows = generate_per_prompt(engine, ["a", "b"], SamplingConfig(), [7, 8])
    assert [r[0].text for r in rows] == ["a:7", "b:8"] and engine.calls == [(["a"], 7), (["b"], 8)]
    assert generate_per_prompt(engine, [], SamplingConfig(), []) == []
    with pytest.raises(ValueError, match="one seed per prompt"):
        generate_per_prompt(engine, ["a"], SamplingConfig(), [])


# -- shared-prefix decoding, the prefix store, chunking: the same texts --------------------------------


@pytest.mark.parametrize("loop", ["static", "hf"])
@pytest.mark.parametrize("sampling", [SAMPLE, dataclasses.replace(SAMPLE, temperature=0.0, max_new_tokens=14),
                                      dataclasses.replace(SAMPLE, stop=("e",), max_new_tokens=16)])
def test_every_decoding_path_gives_the_same_texts(prompts, sampling, loop):
    seeds = [3, 1, 4, 1]
    reference = variant(shared_prefix=False, prefix_cache_bytes=0, max_batch_size=1, small_row_matmul=False,
                        decode_loop=loop)
    expected = [reference.generate([p], sampling, seed=s)[0] for p, s in zip(prompts, seeds)]
    packed_in_pieces = variant(decode_loop=loop)
    packed_in_pieces.prefill_chunk = 7  # prompts encoded 7 tokens per forward, pieces spanning prompts
    default = tiny_engine()
    default.decode_loop = loop
    for engine in (default, variant(max_batch_size=2, decode_loop=loop), variant(prefix_cache_bytes=0, decode_loop=loop),
                   variant(shared_prefix=False, decode_loop=loop), variant(max_batch_size=64, decode_loop=loop),
                   packed_in_pieces, variant(small_row_matmul=False, decode_loop=loop)):
        assert engine.decode_loop == loop
        assert engine.generate(prompts, sampling, seed=seeds) == expected
    default.decode_loop = "static"
    assert variant(shared_prefix=False, decode_loop=loop).shared_prefix is False and default.shared_prefix is True


def test_greedy_rows_equal_the_models_own_greedy_decoding(prompts):
    engine = variant(max_batch_size=64)
    rows = engine.generate(prompts, SamplingConfig(max_new_tokens=8, temperature=0.0, n=2), seed=0)
    for prompt, row in zip(prompts, rows):
        ids = torch.tensor([engine.encode(prompt)])
        with torch.inference_mode():
            out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                        do_sample=False, eos_token_id=engine.eos_token_ids, pad_token_id=0)
        assert row[0] == row[1] and row[0].text == engine.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        # token_ids are the generated ids themselves (not the text re-tokenized).
        assert list(row[0].token_ids) == out[0, ids.shape[1]:].tolist()[: row[0].num_tokens]


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_prefix_reuse_is_exact(shared_prefix):
    """A prompt whose prefix comes from the store gets what it gets encoded afresh, on both decoding
    paths: the model's own greedy tokens, and the same sampled texts (a stale or misplaced key would
    change the distributions, and with them the draws)."""
    engine = variant(shared_prefix=shared_prefix)
    fresh = variant(shared_prefix=shared_prefix, prefix_cache_bytes=0)
    base = engine.format_chat("What is 12 + 30?", assistant_prefix="I add the tens: 10 + 30 = 40.")
    longer = base + "\n\nThen the units: 2. So 42.\n\nTime is up. The answer is $\\boxed{"
    engine.generate([base], SAMPLE, seed=0)  # stores the prefix of `base` (and its samples)
    if not shared_prefix:  # the next-token logits after a stored prefix, through the engine's decoder
        ids = engine.encode(longer)
        decoder = engine.decoder
        with torch.inference_mode():
            full = engine.model(input_ids=torch.tensor([ids])).logits[0, -1]
            reused = engine.stats["reused_tokens"]
            kv = decoder.prefill(ids[:-1])  # extends the stored prefix (and stores the result)
            assert engine.stats["reused_tokens"] - reused >= len(engine.encode(base)) - 2
            logits = decoder.forward(torch.tensor([[ids[-1]]]), torch.tensor([[len(ids) - 1]]), decoder.new_cache(kv))[0]
        # Tight: an off-by-one position after the stored prefix moves this tiny model's logits by ~1e-4.
        torch.testing.assert_close(logits, full, rtol=1e-5, atol=1e-5)
        engine.reset_prefix_cache()
        engine.generate([base], SAMPLE, seed=0)
    reused = engine.stats["reused_tokens"]
    greedy = SamplingConfig(max_new_tokens=12, temperature=0.0)
    [[first]] = engine.generate([longer], greedy, seed=0)  # extends the stored prefix
    assert engine.stats["reused_tokens"] - reused >= len(engine.encode(base)) - 2
    ids = torch.tensor([engine.encode(longer)])
    with torch.inference_mode():
        out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                                    do_sample=False, eos_token_id=engine.eos_token_ids, pad_token_id=0)
    assert first.num_tokens >= 1 and list(first.token_ids) == out[0, ids.shape[1]:].tolist()[: first.num_tokens]
    assert [[first]] == fresh.generate([longer], greedy, seed=0)
    sampled = SamplingConfig(max_new_tokens=12, temperature=1.0, n=16)
    reused = engine.stats["reused_tokens"]
    assert engine.generate([longer], sampled, seed=3) == fresh.generate([longer], sampled, seed=3)
    assert engine.stats["reused_tokens"] - reused == len(ids[0]) - 1  # the whole prompt but its last token
    assert fresh.stats["reused_tokens"] == 0


def test_policy_episodes_are_stored_for_the_next_prompt():
    engine = variant()
    prompt = engine.format_chat("What is 2+3?")
    [[episode]] = engine.generate([prompt], SamplingConfig(max_new_tokens=12, temperature=1.0), seed=1)
    before = engine.stats["prefill_tokens"]
    nxt = prompt + episode.text + "\n\nTime is up."
    engine.generate([nxt], SamplingConfig(max_new_tokens=2, temperature=0.0), seed=0)
    # Only the text after the stored episode (its last token, the separator, the suffix) is encoded.
    assert engine.stats["prefill_tokens"] - before <= engine.count_tokens("\n\nTime is up.") + 2


def test_prefix_store_lookup_dedupe_and_eviction():
    def kv(n):
        return [(torch.zeros(1, 1, n, 4), torch.zeros(1, 1, n, 4))]  # 32 bytes per token

    store = PrefixStore(max_bytes=32 * 10)
    store.put([1, 2, 3], kv(3))
    assert store.lookup([1, 2, 9])[1] == 2 and store.lookup([7])[1] == 0 and store.lookup([1, 2, 3, 4])[1] == 3
    store.put([1, 2, 3, 4], kv(4))  # extends [1, 2, 3]: replaces it
    assert len(store) == 1 and store.nbytes == 32 * 4
    store.put([5, 6, 7, 8], kv(4))
    store.put([9, 9, 9], kv(3))  # over budget: the least recently used entry goes
    assert len(store) == 2 and store.lookup([1, 2, 3, 4])[1] == 0 and store.nbytes <= 32 * 10
    store.put(list(range(20)), kv(20))  # bigger than the whole store: not kept
    assert store.lookup(list(range(20)))[1] == 0
    assert PrefixStore(0).put([1], kv(1)) is None and len(PrefixStore(0)) == 0


def test_the_store_is_dropped_when_the_weights_change():
    model, tokenizer = tiny_random_model(seed=7)
    engine = TransformersEngine(model, tokenizer=tokenizer)
    prompt = engine.format_chat("What is 2+3?")
    greedy = SamplingConfig(max_new_tokens=10, temperature=0.0)
    first = engine.generate([prompt], greedy, seed=0)
    assert len(engine.prefix_store) > 0
    with torch.no_grad():  # in-place updates, as an optimizer makes
        model.model.layers[0].mlp.up_proj.weight.mul_(-3.0)
        model.model.layers[1].self_attn.v_proj.weight.mul_(-3.0)
    reused = engine.stats["reused_tokens"]
    second = engine.generate([prompt], greedy, seed=0)
    assert engine.stats["reused_tokens"] == reused  # nothing stale was reused
    fresh = TransformersEngine(model, tokenizer=tokenizer, prefix_cache_bytes=0).generate([prompt], greedy, seed=0)
    assert second == fresh != first


def test_the_sampler_draws_from_softmax_over_temperature_and_top_p():
    # 40,000 rows with their own uniforms: token frequencies must match softmax(logits / T) within
    # 4.5 binomial standard deviations (a false alarm has probability < 1e-5 per token).
    n = 40_000
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -9.0]).repeat(n, 1)
    uniforms = torch.rand(n, UNIFORMS_PER_ROW, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for temperature, top_p in ((1.0, 1.0), (0.5, 1.0), (1.0, 0.8)):
        sampling = SamplingConfig(temperature=temperature, top_p=top_p)
        picks = pick_tokens(logits, uniforms, sampling)
        probs = torch.softmax(logits[0] / temperature, -1).double()
        if top_p < 1:
            keep = (probs.cumsum(-1) - probs) < top_p  # the nucleus: here the first 3 tokens
            probs = probs * keep / (probs * keep).sum()
        freq = torch.bincount(picks, minlength=6).double() / n
        bound = 4.5 * (probs * (1 - probs) / n).sqrt() + 1e-12
        assert ((freq - probs).abs() <= bound).all(), (temperature, top_p, freq, probs)
        if top_p < 1:
            assert freq[3:].sum() == 0
    greedy = pick_tokens(logits[:3], None, SamplingConfig(temperature=0.0))
    assert greedy.tolist() == [0, 0, 0]


def test_the_sampler_is_robust_to_float_noise_and_its_blocks_are_exact():
    # A flat distribution over a real-size vocabulary (the worst case): the draws barely move when
    # the logits move by float rounding (here 1e-6, ten times more than batched products differ).
    gen = torch.Generator().manual_seed(1)
    logits = 0.01 * torch.randn(2000, 49152, generator=gen)
    uniforms = torch.rand(2000, UNIFORMS_PER_ROW, generator=gen, dtype=torch.float64)
    cfg = SamplingConfig(temperature=1.0)
    a = pick_tokens(logits, uniforms, cfg)
    b = pick_tokens(logits * (1 + 1e-6), uniforms, cfg)
    assert (a == b).float().mean() >= 0.999
    # Across blocks: the block totals decide the block (here token 300 holds half the mass).
    skewed = torch.full((4000, 600), -30.0)
    skewed[:, 300], skewed[:, 5] = 0.0, 0.0
    u = torch.rand(4000, UNIFORMS_PER_ROW, generator=gen, dtype=torch.float64)
    picks = pick_tokens(skewed, u, cfg)
    assert set(picks.tolist()) == {5, 300} and abs((picks == 300).float().mean() - 0.5) < 0.04


# -- the prover and the LLM agent ---------------------------------------------------------------------


class CountingEngine:
    """Wraps an engine and records its generate calls."""

    def __init__(self, engine):
        self.engine, self.name, self.calls = engine, engine.name, []
        self.per_prompt_seeds = getattr(engine, "per_prompt_seeds", False)

    def generate(self, prompts, sampling, *, seed=None):
        self.calls.append(len(prompts))
        return self.engine.generate(prompts, sampling, seed=seed)

    def count_tokens(self, text):
        return self.engine.count_tokens(text)

    def format_chat(self, *args, **kwargs):
        return self.engine.format_chat(*args, **kwargs)


PROBLEMS = [Problem(id=f"p{i}", question=f"What is {i} + {i}?", answer=str(2 * i), source="test") for i in range(3)]
ITEMS = [(PROBLEMS[0], []), (PROBLEMS[0], ["I add.", "It is 0."]), (PROBLEMS[1], ["1 and 1."]),
         (PROBLEMS[2], []), (PROBLEMS[1], ["1 and 1."])]  # the last repeats the third


def test_estimate_many_is_one_engine_call_and_equals_the_naive_prover():
    engine = CountingEngine(variant(max_batch_size=64))
    prover = LLMProver(engine, num_samples=4, max_answer_tokens=6, seed=3)
    batched = prover.estimate_many(ITEMS)
    assert engine.calls == [4]  # one call for the 4 distinct prefixes
    assert batched[4] is batched[2] and prover.calls == 4
    assert prover.estimate_many(ITEMS[:2]) == batched[:2] and engine.calls == [4]  # memoized
    # The naive path: one estimate at a time, the full prompt re-encoded, no shared prefix, one
    # sample row per forward batch. Same seeds => the very same forced answers, hence the same J.
    naive = LLMProver(variant(shared_prefix=False, prefix_cache_bytes=0, max_batch_size=1),
                      num_samples=4, max_answer_tokens=6, seed=3)
    one_by_one = [naive.estimate(problem, episodes) for problem, episodes in ITEMS]
    assert batched == one_by_one
    assert [e.j for e in batched] == [e.j for e in one_by_one]
    assert len({e.answers for e in batched}) == 4  # the prefixes' answers differ


def test_estimate_many_on_an_engine_without_per_prompt_seeds():
    from tests.envs.test_math_envs import PROBLEM, ScriptedEngine

    engine = ScriptedEngine()
    prover = LLMProver(engine, num_samples=8)
    estimates = prover.estimate_many([(PROBLEM, []), (PROBLEM, ["[ep] a"]), (PROBLEM, [])])
    assert [e.j for e in estimates] == [1 / 8, 3 / 8, 1 / 8] and engine.calls == 2


def test_act_batch_equals_acting_on_each_trace_alone():
    engine = CountingEngine(tiny_engine())
    agent = LLMAgent(engine, max_episode_tokens=8)
    observations = [{"problem": p.question, "episodes": eps} for p, eps in
                    [(PROBLEMS[0], ()), (PROBLEMS[1], ("Let me see.",)), (PROBLEMS[2], ("A.", "B."))]]
    infos = [{"tokens_left": None}] * 3
    batch = agent.act_batch(observations, infos)
    assert engine.calls == [3]
    assert batch == [agent.act(o, i) for o, i in zip(observations, infos)]
    assert agent.act_batch(observations[1:2], infos[1:2]) == batch[1:2]
    # Per-trace seeds: trace k gets what an agent seeded seeds[k] writes for it.
    seeds = [11, 0, 12]
    mixed = agent.act_batch(observations, infos, seeds=seeds)
    assert mixed[1] == batch[1] and mixed[0] != batch[0]
    assert mixed == [LLMAgent(engine, max_episode_tokens=8, seed=s).act(o, i) for s, o, i in zip(seeds, observations, infos)]
    with pytest.raises(ValueError, match="one seed per observation"):
        agent.act_batch(observations, infos, seeds=[1])


# -- the vectorized TTC-Math-v0 ------------------------------------------------------------------------


def make_vector(num_envs, mode, **kwargs):
    return gym.make_vec("TTC-Math-v0", num_envs=num_envs, vectorization_mode=mode,
                        **{**fast_env_kwargs("TTC-Math-v0"), **kwargs})


def assert_same_step(a, b):
    (o1, *rest1), (o2, *rest2) = a, b
    assert o1 == o2
    if len(rest1) == 4:  # step: rewards, terminated, truncated
        for x, y in zip(rest1[:3], rest2[:3]):
            assert np.array_equal(x, y) and x.dtype == y.dtype
    i1, i2 = rest1[-1], rest2[-1]
    assert i1.keys() == i2.keys()
    for key in i1:
        assert np.array_equal(i1[key], i2[key]), key


SCRIPT = [
    ["First I add.", "Let me compute.", "Hmm.", "So \\boxed{4}."],
    ["Then more.", "So the answer is \\boxed{0}.", "Wait.", "Again."],
    ["Still going.", "New problem.", "Next.", "x"],
    ["Yet more.", "Think.", "Done \\boxed{7}.", "y"],
    ["z", "z", "z", "z"],
]


def test_the_vector_env_matches_a_loop_over_single_envs():
    engine = CountingEngine(tiny_engine())
    vec = make_vector(4, "vector_entry_point", engine=engine, max_episodes=3)
    assert isinstance(vec, TTCMathVectorEnv) and vec.metadata["autoreset_mode"].value == "NextStep"
    loop = make_vector(4, "sync", max_episodes=3)  # gymnasium's loop over single TTC-Math-v0 envs
    assert_same_step(vec.reset(seed=42), loop.reset(seed=42))
    assert engine.calls == [4]  # every J_0 in one prover call
    ended = np.zeros(4, dtype=bool)
    for actions in SCRIPT:
        engine.calls.clear()
        out_vec, out_loop = vec.step(actions), loop.step(actions)
        assert_same_step(out_vec, out_loop)
        assert len(engine.calls) == 1  # one prover call for the whole step (resets included)
        ended |= out_vec[2] | out_vec[3]
    assert ended.all()  # the script covers commits, budget truncations and autoresets
    # reset with a list of seeds, and with a new integer seed: still the loop's results.
    assert_same_step(vec.reset(seed=[5, 6, 7, 8]), loop.reset(seed=[5, 6, 7, 8]))
    assert_same_step(vec.step(SCRIPT[0]), loop.step(SCRIPT[0]))


def test_the_vector_env_with_the_llm_agent_matches_the_loop():
    engine = CountingEngine(tiny_engine())
    vec = make_vector(3, "vector_entry_point", engine=engine, max_episodes=2, max_episode_chars=2000)
    loop = make_vector(3, "sync", max_episodes=2, max_episode_chars=2000)
    agent = LLMAgent(engine, max_episode_tokens=8)
    single = LLMAgent(tiny_engine(), max_episode_tokens=8)
    (obs_v, info_v), (obs_l, info_l) = vec.reset(seed=0), loop.reset(seed=0)
    for _ in range(4):
        actions = agent.act_batch(*unbatch(obs_v, info_v))
        engine.calls.clear()
        assert actions == [single.act(o, i) for o, i in zip(*unbatch(obs_l, info_l))]
        out_v, out_l = vec.step(actions), loop.step(actions)
        assert_same_step(out_v, out_l)
        assert len(engine.calls) == 1
        obs_v, info_v, obs_l, info_l = out_v[0], out_v[-1], out_l[0], out_l[-1]


def test_the_vector_env_checks_its_arguments():
    vec = make_vector(2, "vector_entry_point")
    with pytest.raises(RuntimeError, match="before reset"):
        vec.step(["a", "b"])
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="sequence of 2 episode texts"):
        vec.step(["only one"])
    with pytest.raises(ValueError, match="empty episode"):
        vec.step(["fine", "  "])
    with pytest.raises(ValueError, match="2 seeds for num_envs=2|1 seeds for num_envs=2"):
        vec.reset(seed=[1])
    with pytest.raises(ValueError, match="Did you mean 'num_prover_samples'"):
        make_vector(2, "vector_entry_point", num_prover_sample=3)
    problem = PROBLEMS[1]
    obs, _ = vec.reset(seed=0, options={"problem": problem})
    assert obs["problem"] == (problem.question,) * 2
    ansi = make_vector(2, "vector_entry_point", render_mode="ansi")
    ansi.reset(seed=0)
    assert all("J_0" in text for text in ansi.render())


def test_per_sub_env_problems_equal_single_envs_given_that_problem():
    vec = make_vector(3, "vector_entry_point", max_episodes=3)
    singles = [gym.make("TTC-Math-v0", **{**fast_env_kwargs("TTC-Math-v0"), "max_episodes": 3}) for _ in range(3)]
    given = [PROBLEMS[2], None, PROBLEMS[0]]  # None: sub-env 1 draws its own problem
    obs, infos = vec.reset(seed=7, options={"problems": given})
    ref = [env.reset(seed=7 + i, options={"problem": p} if p else None) for i, (env, p) in enumerate(zip(singles, given))]
    assert unbatch(obs, infos) == ([o for o, _ in ref], [i for _, i in ref])
    assert obs["problem"][0] == PROBLEMS[2].question and obs["problem"][2] == PROBLEMS[0].question
    for options, error, words in [
        ({"problems": PROBLEMS[:2]}, ValueError, "sequence of 3 problems"),
        ({"problems": PROBLEMS, "problem": PROBLEMS[0]}, ValueError, "not both"),
        ({"problems": ["What is 1 + 1?", None, None]}, TypeError, "sub-env 0 must be a ttc_gym.problems.Problem"),
        ({"problem_list": PROBLEMS}, ValueError, "accept only 'problem', 'problems', 'prefix', 'prefixes', 'reset_mask'"),
        ({"reset_mask": [True, False, False]}, ValueError, "numpy bool array of shape"),
        ({"reset_mask": np.zeros(3, dtype=bool)}, ValueError, "at least one"),
    ]:
        with pytest.raises(error, match=words):
            vec.reset(seed=0, options=options)
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        make_vector(2, "vector_entry_point", autoreset_mode="same_step")
    with pytest.raises(RuntimeError, match="first reset"):
        make_vector(2, "vector_entry_point").reset(options={"reset_mask": np.array([True, False])})


def test_without_autoreset_finished_sub_envs_take_none_and_stay_put():
    """autoreset_mode="disabled": each sub-env is a single env stepped until its problem ends; then
    its action is None and it reports reward 0, not terminated, not truncated, no info, its last
    observation, until `reset(options={"reset_mask": ...})` restarts it alone."""
    from gymnasium.vector import AutoresetMode

    engine = CountingEngine(tiny_engine())
    vec = make_vector(3, "vector_entry_point", engine=engine, max_episodes=3, autoreset_mode="disabled")
    assert vec.metadata["autoreset_mode"] == AutoresetMode.DISABLED
    assert make_vector(1, "vector_entry_point", autoreset_mode=AutoresetMode.DISABLED).autoreset_mode == AutoresetMode.DISABLED
    singles = [gym.make("TTC-Math-v0", **{**fast_env_kwargs("TTC-Math-v0"), "max_episodes": 3}) for _ in range(3)]
    obs, infos = vec.reset(seed=3, options={"problem": PROBLEMS[1]})
    assert unbatch(obs, infos) == tuple(map(list, zip(*[env.reset(seed=3 + i, options={"problem": PROBLEMS[1]})
                                                         for i, env in enumerate(singles)])))
    script = [["First I add.", "So \\boxed{2}.", "Hmm."], ["More.", None, "Next."], ["Done.", None, "x"]]
    for actions in script:
        engine.calls.clear()
        obs, rewards, terminated, truncated, infos = vec.step(actions)
        assert engine.calls == [sum(a is not None for a in actions)]  # one prover call, running sub-envs only
        per_obs, per_info = unbatch(obs, infos)
        for i, (env, action) in enumerate(zip(singles, actions)):
            if action is None:  # stepping a finished sub-env does nothing
                assert (rewards[i], terminated[i], truncated[i], per_info[i]) == (0.0, False, False, {})
                assert not infos["_J"][i]
                assert per_obs[i]["episodes"] == tuple(env.unwrapped.trace.episodes)
                continue
            o, r, term, trunc, info = env.step(action)
            assert (per_obs[i], rewards[i], terminated[i], truncated[i], per_info[i]) == (o, r, term, trunc, info)
        if actions is script[0]:
            assert terminated[1] and per_info[1]["committed_answer"] == "2"
            with pytest.raises(ValueError, match="sub-env 1's problem has ended.*must be None"):
                vec.step(["a", "b", "c"])
            with pytest.raises(ValueError, match="sub-env 0 is still running"):
                vec.step([None, None, "c"])
    assert terminated[0] and truncated[0] and terminated[2]  # the budget's forced answers
    engine.calls.clear()
    obs, rewards, terminated, truncated, infos = vec.step([None, None, None])
    assert engine.calls == [] and infos == {} and not rewards.any() and not (terminated | truncated).any()
    # Restart sub-env 1 alone: the others keep their traces.
    before = vec.traces
    obs, infos = vec.reset(seed=[None, 11, None], options={"reset_mask": np.array([False, True, False]),
                                                          "problems": [None, PROBLEMS[2], None]})
    assert vec.traces[0] is before[0] and vec.traces[2] is before[2] and vec.traces[1] is not before[1]
    assert list(infos["_J"]) == [False, True, False]
    assert obs["problem"][1] == PROBLEMS[2].question and obs["episodes"][1] == ()
    assert obs["episodes"][0] == tuple(singles[0].unwrapped.trace.episodes)
    ref_obs, ref_info = singles[1].reset(seed=11, options={"problem": PROBLEMS[2]})
    assert unbatch(obs, infos)[1][1] == ref_info
    obs, rewards, terminated, truncated, infos = vec.step([None, "Go on.", None])
    o, r, term, trunc, info = singles[1].step("Go on.")
    assert unbatch(obs, infos)[0][1] == o and rewards[1] == r and unbatch(obs, infos)[1][1] == info


@pytest.mark.slow
def test_the_benchmark_script_runs(tmp_path):
    import subprocess
    import sys

    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "benchmarks" / "bench_engine.py"
    done = subprocess.run(
        [sys.executable, str(script), "--tiny", "--envs", "2", "--episodes", "1", "--k", "2",
         "--naive-estimates", "1", "--episode-tokens", "4", "--answer-tokens", "4"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "dense-reward cost" in done.stdout and "optimized" in done.stdout and "roofline" in done.stdout
