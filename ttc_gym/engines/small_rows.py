"""Linear layers for decoding a few rows at a time on a CPU.

Decoding a handful of sequences (a lone policy trace, the last forced answers still open) is
bounded by how fast the weights stream from memory: every step reads all of them (~540 MB for
SmolLM2-135M in float32) to produce a few tokens. torch's `F.linear(x, W)` with 1-8 rows, in float32
on a CPU, is computed by MKL as `x @ W^T`, and on some CPUs (seen: AMD EPYC with the CPU wheel of
torch 2.13) that kernel streams the weights at a third of the memory bandwidth; the same product
computed as `(W @ x^T)^T`, with a single row repeated once (two-column products get the fast kernel,
matrix-vector products do not), streams them 2-3x faster. Measured on 2 cores (one SmolLM2-135M
decoding step, median of 15): 1 row 57 -> 36 ms, 2 rows 97 -> 51 ms, 3 rows 121 -> 50 ms,
8 rows 83 -> 73 ms; from about 12 rows on the two forms are equally fast. Measured again on another
2-core AMD EPYC (`examples/benchmarks/bench_linear_forms.py`, the model's 211 linear layers, median
of 9-15 steps, 2026-12-08): 1.3-3.7x faster at 1-8 rows; from 9 to 128 rows 0.79-1.25x, no
consistent gain (12 rows 0.79x, 16 rows 1.10x, 64 rows 0.95-1.01x), so MAX_ROWS stays 8.

`small_row_linears(model)` is a context manager in which the model's `nn.Linear` layers compute
forwards of at most `max_rows` rows that way (float32 on a CPU only: `applies_on` is the gate, and it
is False on every other device type, so a CUDA engine never enters the block). It sets an instance-level
`forward` on each plain `nn.Linear` for the duration of the block and removes it after (the
weights are untouched; the result is the same product up to float rounding). Like any change of a
module's forward, it is not meant for a model used from another thread at the same time.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
import torch.nn.functional as F

# Up to this many rows the transposed form was faster (see the module docstring).
MAX_ROWS = 8


def small_row_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)` computed as `(weight @ x^T)^T` (a single row is repeated once)."""
    rows = x.reshape(-1, x.shape[-1])
    count = rows.shape[0]
    if count == 1:
        rows = torch.cat([rows, rows])
    out = (weight @ rows.t()).t()[:count].contiguous()
    if bias is not None:
        out = out + bias
    return out.reshape(*x.shape[:-1], weight.shape[0])


def _linear_forward(module: torch.nn.Linear, max_rows: int, x: torch.Tensor) -> torch.Tensor:
    weight = module.weight
    if (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.dim() >= 1 and x.numel() <= max_rows * x.shape[-1]):
        return small_row_linear(x, weight, module.bias)
    return F.linear(x, weight, module.bias)


@contextlib.contextmanager
def small_row_linears(model: torch.nn.Module, max_rows: int = MAX_ROWS) -> Iterator[None]:
    """Within the block, `model`'s plain `nn.Linear` layers use `small_row_linear` for inputs of at
    most `max_rows` rows (float32, CPU) and `F.linear` otherwise."""
    patched = []
    for module in model.modules():
        if type(module) is torch.nn.Linear and "forward" not in vars(module):
            module.forward = functools.partial(_linear_forward, module, max_rows)
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


def applies_on(device: torch.device | str, dtype: torch.dtype) -> bool:
    """True for float32 on a CPU, the one place the reroute was measured to help; False on every
    other device type (CUDA, MPS, ...) whatever the dtype, and for every other dtype. This is the
    gate: on a GPU the engine's linear layers stay `F.linear` (cuBLAS), untouched."""
    if not isinstance(device, (torch.device, str)):
        raise TypeError(f"device must be a torch.device or a device string such as 'cpu', got {device!r}.")
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float32, got {dtype!r}.")
    return torch.device(device).type == "cpu" and dtype == torch.float32


def applies(model: torch.nn.Module) -> bool:
    """`applies_on` the device and dtype of `model`'s first parameter (False for a model without any)."""
    param = next(model.parameters(), None)
    return param is not None and applies_on(param.device, param.dtype)
