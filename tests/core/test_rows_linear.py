"""`ttc_gym.engines.rows_linear`: the compiled few-row kernel computes what `F.linear` computes, on
any number of threads, after a fork and from two threads at once; the static loop uses it for big
float32 models and gives torch its threads back."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from ttc_gym.engines import llama_forward, rows_linear  # noqa: E402


@pytest.fixture(scope="module")
def lib():
    found, reason = rows_linear.library()
    if found is None:
        pytest.skip(f"no few-row kernel here: {reason}")
    return found


@pytest.mark.parametrize("rows", range(1, rows_linear.MAX_ROWS + 1))
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_kernel_computes_f_linear(lib, rows, threads):
    g = torch.Generator().manual_seed(rows)
    for out_features, in_features in ((7, 5), (100, 48), (301, 577), (1024, 64)):  # tails of tiles and vectors
        x = torch.randn(rows, in_features, generator=g)
        weight = torch.randn(out_features, in_features, generator=g)
        got = rows_linear.rows_linear(x, weight, threads)
        torch.testing.assert_close(got, F.linear(x, weight), rtol=1e-4, atol=1e-4)


def test_products_it_does_not_take_are_refused_with_what_came(lib):
    weight = torch.randn(16, 8)
    for x, words in ((torch.randn(rows_linear.MAX_ROWS + 1, 8), "9, 8"), (torch.randn(2, 8).double(), "float64"),
                     (torch.randn(2, 7), "(2, 7)")):
        with pytest.raises(ValueError, match="rows_linear takes") as err:
            rows_linear.rows_linear(x, weight, 2)
        assert words in str(err.value)
    with pytest.raises(ValueError, match="contiguous"):
        rows_linear.rows_linear(torch.randn(2, 8), torch.randn(8, 16).t(), 2)


def _child(queue) -> None:
    x, weight = torch.ones(3, 64), torch.ones(256, 64)
    queue.put(float(rows_linear.rows_linear(x, weight, 2).sum()))


def test_a_forked_child_starts_its_own_pool(lib):
    """The parent's pool threads do not exist in a forked child: it must not wait for them."""
    rows_linear.rows_linear(torch.randn(4, 64), torch.randn(256, 64), 2)  # the parent's pool is running
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in rows_linear")
    assert child.exitcode == 0 and queue.get(timeout=5) == 3 * 256 * 64


def test_two_threads_calling_at_once_get_their_own_products(lib):
    g = torch.Generator().manual_seed(3)
    weights = [torch.randn(512, 96, generator=g) for _ in range(2)]
    inputs = [torch.randn(5, 96, generator=g) for _ in range(2)]
    errors: list[float] = []

    def work(i: int) -> None:
        for _ in range(200):
            got = rows_linear.rows_linear(inputs[i], weights[i], 2)
            errors.append(float((got - F.linear(inputs[i], weights[i])).abs().max()))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(errors) == 400 and max(errors) < 1e-3


def test_the_static_loop_uses_it_for_big_models_and_restores_torch_threads(lib, monkeypatch):
    from ttc_gym.engines.base import SamplingConfig
    from ttc_gym.engines.testing import tiny_random_model
    from ttc_gym.engines.transformers_engine import TransformersEngine

    monkeypatch.setattr(llama_forward, "FUSE_BYTES", 0)  # "big": the model's own weights, few-row products
    model, tokenizer = tiny_random_model(seed=2)
    engine = TransformersEngine(model, tokenizer=tokenizer)
    plain = TransformersEngine(model, tokenizer=tokenizer, compiled_step=False)  # small_row_linear instead
    assert engine.static_decoder.weights().kernel and not plain.static_decoder.weights().kernel
    before = torch.get_num_threads()
    sampling = SamplingConfig(max_new_tokens=12, temperature=1.0, n=3)
    prompts = ["What is 2 + 3?", "Name a prime."]
    assert engine.generate(prompts, sampling, seed=4) == plain.generate(prompts, sampling, seed=4)
    assert torch.get_num_threads() == before


def test_without_avx512_the_kernel_is_not_used_and_says_why(lib, monkeypatch, tmp_path):
    """Built for a CPU without AVX-512 (where its tiles would spill; never measured), the library
    declines, and the engine keeps MKL's few-row form."""
    monkeypatch.setenv("TTC_GYM_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(rows_linear, "FLAGS", rows_linear.FLAGS + ("-mno-avx512f",))
    monkeypatch.setattr(rows_linear, "_state", {})
    found, reason = rows_linear.library()
    assert found is None and "AVX-512" in reason and "small_row_linear" in reason
    with pytest.raises(RuntimeError, match="not available: the few-row kernel is tuned for AVX-512"):
        rows_linear.rows_linear(torch.randn(4, 8), torch.randn(16, 8), 2)
