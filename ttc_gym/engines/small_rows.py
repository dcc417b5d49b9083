"""Linear layers for decoding a few rows at a time on a CPU.

Decoding a handful of sequences (a lone policy trace, the last forced answers still open) is
bounded by how fast the weights stream from memory: every step reads all of them (~540 MB for
SmolLM2-135M in float32) to produce a few tokens. torch's `F.linear(x, W)` with 1-8 rows, in float32
on a CPU, is computed by MKL as `x @ W^T`, and on some CPUs (seen: AMD EPYC with the CPU wheel of
torch 2.13) that kernel streams the weights at a third of the memory bandwidth; the same product
computed as `(W @ x^T)^T`, with a single row repeated once (two-column products get the fast kernel,
matrix-vector products do not), streams them 2-3x faster. Measured on 2 cores (one SmolLM2-135M
decoding step, median of 15): 1 row 57 -> 36 ms, 2 rows 97 -> 51 ms, 3 rows 121 -> 50 ms,
8 rows 83 -> 73 ms; from about 12 rows on the two forms are equally fast.

`SmallRowLinear` is a `TorchFunctionMode` that reroutes `F.linear` calls with at most `max_rows`
rows to that form while it is active. It changes no module and no weight (it is entered around one
forward, on the calling thread only); the result is the same product up to float rounding.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

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


class SmallRowLinear(TorchFunctionMode):
    """While active, `F.linear` on float32 CPU tensors with at most `max_rows` rows uses `small_row_linear`."""

    def __init__(self, max_rows: int = MAX_ROWS):
        super().__init__()
        self.max_rows = max_rows

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
                    and x.dim() >= 1 and x.numel() // max(x.shape[-1], 1) <= self.max_rows):
                return small_row_linear(x, weight, bias)
        return func(*args, **kwargs)


def applies(model: torch.nn.Module) -> bool:
    """True when `model` runs in float32 on a CPU (where the reroute was measured to help)."""
    param = next(model.parameters(), None)
    return param is not None and param.device.type == "cpu" and param.dtype == torch.float32
