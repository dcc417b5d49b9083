"""A probe for issue 28: how fast is one micro-reasoner token when nothing but the arithmetic runs?

    python examples/benchmarks/micro_c_step.py [--checkpoint micro] [--threads 1]

Compiles `micro_c_step.c` (one decoding step of a small Llama for one row, plain C, no BLAS) with the
machine's C compiler, checks its logits against the model's own forward (transformers), then times
1-row decoding with it next to the engine's static and transformers loops (`micro_speed.py`'s
`generation_throughput`, sampling included) and the float32 matmul roofline, in one run.

It is a measurement, not a decode path: no sampling, stop rules, prefix store or batching; the
engine does not use it. What it answers is whether the issue's 1-row targets (>= 10x the
transformers loop, >= 15 % of the matmul roofline) are reachable once per-op framework overhead is
gone (the static loop spends most of a 1-row token in ~150 torch ops of a few microseconds each).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "micro_c_step.c"


class Dims(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in
                ("hidden", "heads", "kv_heads", "head_dim", "inter", "layers", "vocab", "capacity")] + [("eps", ctypes.c_float)]


def compiler() -> str | None:
    """The C compiler to use (CC, Python's own, or cc / gcc / clang on PATH), or None."""
    for name in (os.environ.get("CC"), (sysconfig.get_config_var("CC") or "").split(" ")[0], "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build(folder: Path) -> ctypes.CDLL:
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set CC, or install gcc/clang): this probe compiles micro_c_step.c")
    lib = folder / "micro_c_step.so"
    subprocess.run([cc, "-O3", "-march=native", "-shared", "-fPIC", "-o", str(lib), str(SOURCE), "-lm"], check=True)
    return ctypes.CDLL(str(lib))


class CStep:
    """The compiled step bound to one model's weights (laid out by `LlamaWeights`, fused: small models)."""

    def __init__(self, lib: ctypes.CDLL, model, capacity: int = 1024):
        from ttc_gym.engines.llama_forward import LlamaWeights

        w = LlamaWeights(model, small_rows=False)
        if not w.fused:
            raise ValueError("the probe takes small models only (LlamaWeights.fused: fused [in, out] projections)")
        self._keep = []
        P = ctypes.c_void_p
        self.dims = Dims(w.hidden, w.heads, w.kv_heads, w.head_dim, w.intermediate, w.layers_count,
                         w.embed.shape[0], capacity, w.eps)
        self.args = [ctypes.byref(self.dims), self._ptr(w.embed)] + [
            self._ptrs([entry[key] for entry in w.layers]) for key in ("norm1", "qkv", "o", "norm2", "gate_up", "down")
        ] + [self._ptr(w.norm), self._ptr(w.lm_head_t), self._ptr(w.cos), self._ptr(w.sin)]
        self.keys = np.zeros((w.layers_count, w.kv_heads, capacity, w.head_dim), np.float32)
        self.values = np.zeros_like(self.keys)
        self.logits = np.zeros(w.embed.shape[0], np.float32)
        self.capacity = capacity
        self.fn = lib.llama_step
        self.fn.argtypes = [P] * 12 + [ctypes.c_int, ctypes.c_int, P, P, P]
        self.tail = [self.keys.ctypes.data_as(P), self.values.ctypes.data_as(P), self.logits.ctypes.data_as(P)]

    def _ptr(self, tensor) -> ctypes.c_void_p:
        array = np.ascontiguousarray(tensor.detach().float().cpu().numpy())
        self._keep.append(array)
        return array.ctypes.data_as(ctypes.c_void_p)

    def _ptrs(self, tensors) -> ctypes.Array:
        table = (ctypes.c_void_p * len(tensors))(*[self._ptr(t) for t in tensors])
        self._keep.append(table)
        return table

    def step(self, token: int, pos: int) -> np.ndarray:
        """Logits after feeding `token` at position `pos` (positions 0..pos-1 already fed)."""
        if not 0 <= pos < self.capacity:
            raise ValueError(f"pos must be in [0, {self.capacity}), got {pos}")
        self.fn(*self.args, int(token), int(pos), *self.tail)
        return self.logits


def logits_of(step: CStep, ids: list[int]) -> np.ndarray:
    """[len(ids), vocab] logits of every position, fed one token at a time."""
    return np.stack([step.step(tok, pos).copy() for pos, tok in enumerate(ids)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="micro", help="a shipped micro checkpoint (micro, micro-long)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the loops compared (the C step runs on one)")
    args = p.parse_args(argv)
    import torch

    sys.path.insert(0, str(HERE))
    from micro_speed import generation_throughput, peak_matmul_flops

    from bench_engine import cpu_model
    from ttc_gym.engines import make_engine

    torch.set_num_threads(args.threads)
    engine = make_engine(args.checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        step = CStep(build(Path(tmp)), engine.model)
        ids = [int(i) for i in np.random.default_rng(0).integers(3, step.dims.vocab, size=80)]
        with torch.inference_mode():
            reference = engine.model(torch.tensor([ids])).logits[0].float().numpy()
        error = float(np.abs(logits_of(step, ids) - reference).max())
        best = float("inf")
        for _ in range(3):  # 64 tokens after a 60-token prompt, one row
            begin = time.perf_counter()
            for pos in range(60, 124):
                step.step(5, pos)
            best = min(best, (time.perf_counter() - begin) / 64)
    params = sum(p.numel() for p in engine.model.parameters())
    peak = peak_matmul_flops(1)
    loops = {loop: generation_throughput(make_engine(args.checkpoint, decode_loop=loop), 1) for loop in ("static", "hf")}
    print(f"CPU {cpu_model()}; load average {os.getloadavg()[0]:.2f}; checkpoint {args.checkpoint} ({params:,} parameters); "
          f"peak float32 matmul, 1 thread: {peak / 1e9:.1f} GFLOP/s")
    print(f"C step logits vs the model's forward (80 positions): max |difference| {error:.2e}")
    print("| 1 row | tokens/s | roofline (2 x params FLOPs per token) | vs transformers loop |")
    print("|---|---|---|---|")
    for name, rate in (("C step (forward only)", 1 / best), ("static loop (sampling included)", loops["static"]),
                       ("transformers loop (sampling included)", loops["hf"])):
        print(f"| {name} | {rate:,.0f} | {rate * 2 * params / peak:.1%} | {rate / loops['hf']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
