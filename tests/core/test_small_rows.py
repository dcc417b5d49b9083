"""`ttc_gym.engines.small_rows`: the few-row linear form computes what `F.linear` computes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from ttc_gym.engines.small_rows import (  # noqa: E402
    MAX_ROWS, applies, applies_on, small_row_linear, small_row_linears,
)


@pytest.mark.parametrize("shape", [(1, 48), (2, 48), (3, 48), (8, 48), (3, 1, 48), (2, 2, 48), (48,)])
@pytest.mark.parametrize("bias", [False, True])
def test_small_row_linear_matches_f_linear(shape, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    weight = torch.randn(80, 48, generator=g)
    b = torch.randn(80, generator=g) if bias else None
    expected = F.linear(x, weight, b)
    got = small_row_linear(x, weight, b)
    assert got.shape == expected.shape and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_the_context_reroutes_only_few_float32_rows_and_restores_the_layers():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(48, 80), torch.nn.ReLU(), torch.nn.Linear(80, 8))
    first = model[0]
    g = torch.Generator().manual_seed(1)
    few, many = torch.randn(MAX_ROWS, 48, generator=g), torch.randn(MAX_ROWS + 1, 48, generator=g)
    with small_row_linears(model):
        assert "forward" in vars(first)
        rerouted, plain = first(few), first(many)
        double = model.double()[0](few.double())
        whole = model.float()(few)
    assert "forward" not in vars(first) and "forward" not in vars(model[2])  # restored
    assert torch.equal(rerouted, small_row_linear(few, first.weight, first.bias))
    assert torch.equal(plain, F.linear(many, first.weight, first.bias))
    assert torch.equal(double, F.linear(few.double(), first.weight.double(), first.bias.double()))
    torch.testing.assert_close(whole, model(few))
    # An error inside the block restores the layers too.
    with pytest.raises(RuntimeError), small_row_linears(model):
        model(torch.randn(2, 3))
    assert "forward" not in vars(first)


def test_autograd_flows_through_the_small_row_form():
    weight = torch.randn(6, 4, requires_grad=True)
    x = torch.randn(2, 4)
    small_row_linear(x, weight).sum().backward()
    torch.testing.assert_close(weight.grad, x.sum(dim=0).expand(6, 4))


def test_applies_to_float32_cpu_models_only():
    assert applies(torch.nn.Linear(2, 2))
    assert not applies(torch.nn.Linear(2, 2).to(torch.bfloat16))
    assert not applies(torch.nn.ReLU())


@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda", 0), "mps", "meta"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_gate_is_off_on_every_device_type_but_cpu(device, dtype):
    """Decided by the device type alone (no CUDA needed to check it): the CUDA path has no CPU-only code."""
    assert applies_on(device, dtype) is False


def test_the_gate_is_on_for_float32_on_a_cpu_only():
    assert applies_on("cpu", torch.float32) and applies_on(torch.device("cpu"), torch.float32)
    assert not applies_on("cpu", torch.bfloat16) and not applies_on("cpu", torch.float64)
    with pytest.raises(TypeError, match="device must be a torch.device"):
        applies_on(0, torch.float32)
    with pytest.raises(TypeError, match="dtype must be a torch.dtype"):
        applies_on("cpu", "float32")


def test_a_model_on_the_meta_device_is_not_rerouted():
    """A model whose parameters are not on a CPU (here: meta, standing in for cuda) gets no patch."""
    with torch.device("meta"):
        model = torch.nn.Linear(4, 4)
    assert not applies(model)


def test_the_engine_enters_the_patch_only_when_its_device_type_is_cpu(monkeypatch):
    """The engine's `generate` asks the gate with its own device: with the device type faked to
    "cuda" (the model itself stays on the CPU so that it still runs here) the patch is never entered."""
    from ttc_gym.engines import transformers_engine
    from ttc_gym.engines.base import SamplingConfig
    from ttc_gym.engines.testing import tiny_random_engine

    entered = []
    real = transformers_engine.small_row_linears

    def spy(model, *args, **kwargs):
        entered.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(transformers_engine, "small_row_linears", spy)
    engine = tiny_random_engine(seed=0)
    engine.decode_loop = "hf"  # the patch is the transformers loop's (the static loop's forward calls the form itself)
    sampling = SamplingConfig(max_new_tokens=3, temperature=1.0)
    assert engine.small_rows_active
    on_cpu = engine.generate(["a b c"], sampling, seed=1)
    assert entered == [engine.model]

    engine.device = torch.device("cuda")  # only the gate reads this; the decoder keeps its own device
    assert not engine.small_rows_active
    faked = engine.generate(["a b c"], sampling, seed=1)
    assert entered == [engine.model]  # not entered again
    assert faked == on_cpu  # the same tokens: the patch changes float rounding only

    engine.device = torch.device("cpu")
    engine.small_row_matmul = False
    assert not engine.small_rows_active
