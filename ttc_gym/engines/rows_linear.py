"""Few-row linear products compiled from C, for the static loop's decoding of big float32 models on a
CPU (issue 28).

`rows_linear.c` computes `F.linear(x, W)` for 1-8 rows of x and a model's own [out, in] weight (read
in place, no copy), split by output over a small persistent thread pool. `LlamaWeights` uses it in
place of `small_rows.small_row_linear` for `MIN_ROWS`-`MAX_ROWS` rows when the library is available
(`library()`), and the static loop then keeps torch itself on one thread while such rows decode, so
torch's own OpenMP workers, which spin after each parallel op, do not compete with the pool's
(measured: with them, ~7 ms more per step at 1 and 8 rows). `torch.set_num_threads` is process-wide:
torch work another Python thread does meanwhile runs on one thread too.

Why: on the default model (SmolLM2-135M, 211 linear layers, 538 MB) MKL computes an 8-row product
at a third of the memory bandwidth; measured on a 2-core AMD EPYC (2026-12-08; a step's 211
products with a small torch op between them, `examples/benchmarks/bench_linear_forms.py`), 8 rows
took ~26 ms here against ~43 ms through `small_row_linear`, 1 and 2 rows ~8 % longer (so `LlamaWeights`
uses it from `MIN_ROWS` rows on).

Where: CPUs with AVX-512 (the tiles fill its 32 vector registers; elsewhere they would spill, and
the kernel has not been measured there), `library()` says why not elsewhere.

Building: as `compiled_step` (the same compiler, flags plus -pthread, cache folder and
`TTC_GYM_COMPILED_STEP=0` switch, which turns off both). On first use the product is checked
against `F.linear` on random inputs; a mismatch turns it off for the process. Results equal
`F.linear`'s up to float rounding (another summation order).
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ttc_gym.engines import compiled_step

SOURCE = Path(__file__).with_name("rows_linear.c")
FLAGS = compiled_step.FLAGS + ("-pthread",)
MAX_ROWS = 8  # the kernel's register tiles hold at most this many rows
# Fewer rows than this stay on `small_row_linear` (MKL, torch's threads): it streamed 1 and 2 rows as
# fast or faster (18.9 / 19.0 ms a step against the kernel's 20.7 / 20.4; 4 rows 26.1 against 23.0,
# 8 rows 43.3 against 26.2; `bench_linear_forms.py`, 2-core AMD EPYC, 2026-12-08).
MIN_ROWS = 3
CHECK_TOLERANCE = 1e-4  # relative, against F.linear

_state: dict[str, Any] = {}  # "lib", "reason": the process's one library


def library() -> tuple[ctypes.CDLL | None, str | None]:
    """(the loaded and checked library, None), or (None, why there is none). Once per process."""
    if "reason" in _state:
        return _state.get("lib"), _state["reason"]
    lib, reason = compiled_step.load(SOURCE, FLAGS, "the few-row kernel")
    if lib is not None and not lib.ttc_rows_linear_tuned():
        lib, reason = None, ("the few-row kernel is tuned for AVX-512 (32 vector registers of 16 floats), which "
                             "this CPU lacks; few-row products stay on small_rows.small_row_linear")
    if lib is not None:
        lib.ttc_rows_linear.restype = ctypes.c_int
        lib.ttc_rows_linear.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                        ctypes.c_void_p, ctypes.c_int]
        _state["lib"] = lib
        mismatch = _check(lib)
        if mismatch is not None:
            lib, reason = None, f"{mismatch}; turned off for this process"
    _state.update(lib=lib, reason=reason)
    return lib, reason


def _call(lib: ctypes.CDLL, x: torch.Tensor, weight: torch.Tensor, threads: int) -> torch.Tensor:
    out = torch.empty(x.shape[0], weight.shape[0], dtype=torch.float32)
    lib.ttc_rows_linear(x.data_ptr(), x.shape[0], weight.data_ptr(), weight.shape[1], weight.shape[0],
                        out.data_ptr(), threads)
    return out


def unchecked(x: torch.Tensor, weight: torch.Tensor, threads: int) -> torch.Tensor:
    """`rows_linear` without its checks, for a caller that guarantees `applies(x, weight)` with x
    contiguous and that `library()` returned a library (`LlamaWeights` checks its weights once)."""
    return _call(_state["lib"], x, weight, threads)


def _check(lib: ctypes.CDLL) -> str | None:
    """None when the kernel agrees with F.linear on random products (every row count, odd sizes, one
    and two threads), else the mismatch."""
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    with torch.no_grad():
        for rows, out_features, in_features in ((1, 37, 19), (3, 70, 33), (8, 101, 48), (5, 64, 64)):
            x = torch.randn(rows, in_features, generator=g)
            w = torch.randn(out_features, in_features, generator=g)
            expected = F.linear(x, w)
            for threads in (1, 2):
                got = _call(lib, x, w, threads)
                worst = max(worst, float((got - expected).abs().max()) / (float(expected.abs().max()) or 1.0))
    if not worst <= CHECK_TOLERANCE:
        return f"the few-row kernel differs from F.linear by {worst:.2e} (relative)"
    return None


def applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `rows_linear` takes this product: 1-8 float32 rows on a CPU, a contiguous 2-D weight."""
    return (x.dim() == 2 and 1 <= x.shape[0] <= MAX_ROWS and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dim() == 2 and weight.dtype == torch.float32 and weight.device.type == "cpu"
            and weight.is_contiguous() and x.shape[1] == weight.shape[1])


def rows_linear(x: torch.Tensor, weight: torch.Tensor, threads: int) -> torch.Tensor:
    """`F.linear(x, weight)` by the kernel on `threads` threads (x [rows <= 8, in], weight [out, in]).
    Raises ValueError for a product it does not take (`applies`), RuntimeError without a library."""
    if not applies(x, weight):
        raise ValueError(f"rows_linear takes 1-{MAX_ROWS} float32 CPU rows and a contiguous [out, in] float32 "
                         f"weight with the same in, got x {tuple(x.shape)} {x.dtype} on {x.device.type} and "
                         f"weight {tuple(weight.shape)} {weight.dtype} on {weight.device.type}.")
    lib, reason = library()
    if lib is None:
        raise RuntimeError(f"rows_linear is not available: {reason}.")
    return _call(lib, x.contiguous(), weight, max(1, int(threads)))
