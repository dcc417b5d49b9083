"""Which form of a few-row linear layer is fastest here: `F.linear(x, W)` (MKL computes `x @ W^T`),
`small_rows.small_row_linear` (`(W @ x^T)^T`) or the compiled few-row kernel (`rows_linear`, up to
8 rows, where a C compiler is present), for every linear layer of the default model, at a sweep of
row counts. It is the evidence for `small_rows.MAX_ROWS` (the largest row count the engine reroutes).
The kernel is timed with torch on one thread, as the static loop runs it (`rows_linear`'s docstring).

    python examples/benchmarks/bench_linear_forms.py [--rows 1 2 4 8 16 32 64 96 128] [--repeats 9]

One "step" is one product per linear layer of the model (its 7 projections per layer and the head),
each on its own random input of `rows` rows: what a decoding step of `rows` rows spends in linear
layers. Prints the median step time of each form and its ratio to `F.linear`, in one run (compare forms, not
runs: the CPU may be shared; the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from ttc_gym.engines import make_engine
from ttc_gym.engines import rows_linear
from ttc_gym.engines.small_rows import MAX_ROWS, small_row_linear


def median_step(form, weights: list[torch.Tensor], rows: int, repeats: int) -> float:
    inputs = [torch.randn(rows, w.shape[1], dtype=w.dtype) for w in weights]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for w, x in zip(weights, inputs):
            form(x, w)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 96, 128])
    parser.add_argument("--repeats", type=int, default=9, help="steps timed per form and row count (median)")
    parser.add_argument("--engine", default=None, help="engine spec (default: the default model)")
    args = parser.parse_args()
    engine = make_engine(args.engine)
    weights = [m.weight for m in engine.model.modules() if type(m) is torch.nn.Linear]
    nbytes = sum(w.numel() * w.element_size() for w in weights)
    print(f"{engine.name}: {len(weights)} linear layers, {nbytes / 1e6:.0f} MB; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; small_rows.MAX_ROWS = {MAX_ROWS}")
    kernel, reason = rows_linear.library()
    threads = torch.get_num_threads()
    if kernel is None:
        print(f"no few-row kernel: {reason}")
    print(f"{'rows':>5} {'F.linear ms':>12} {'small_row ms':>13} {'ratio':>7} {'kernel ms':>10} {'ratio':>7}")
    with torch.inference_mode():
        for rows in args.rows:
            plain = median_step(lambda x, w: F.linear(x, w), weights, rows, args.repeats)
            rerouted = median_step(small_row_linear, weights, rows, args.repeats)
            line = f"{rows:>5} {1e3 * plain:>12.1f} {1e3 * rerouted:>13.1f} {plain / rerouted:>6.2f}x"
            if kernel is not None and rows <= rows_linear.MAX_ROWS:
                torch.set_num_threads(1)
                try:
                    compiled = median_step(lambda x, w: rows_linear.rows_linear(x, w, threads), weights, rows,
                                           args.repeats)
                finally:
                    torch.set_num_threads(threads)
                line += f" {1e3 * compiled:>10.1f} {plain / compiled:>6.2f}x"
            print(line)
    one, five, _ = os.getloadavg()
    print(f"load average {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
