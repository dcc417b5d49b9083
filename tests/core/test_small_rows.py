"""`ttc_gym.engines.small_rows`: the few-row linear form computes what `F.linear` computes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from ttc_gym.engines.small_rows import MAX_ROWS, applies, small_row_linear, small_row_linears  # noqa: E402


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
