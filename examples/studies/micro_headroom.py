"""Headroom of a micro-reasoner checkpoint (issue 30, point 2): its held-out accuracy at budget H per
difficulty level, with standard errors, and which levels fall inside a target band ([0.1, 0.6] by
default: hard enough that progress can be made, easy enough that the outcome gives a signal).

    python examples/studies/micro_headroom.py --out examples/studies/micro_headroom.md          # the shipped checkpoint
    python examples/studies/micro_headroom.py --checkpoint DIR --problems-per-level 300     # another one

The evaluation is the micro study's (`micro_eval.evaluate`: TTC-Math-v0's vector env, the policy as its
own prover, episodes sampled at `--temperature`, at most `--max-episode-tokens` tokens each, the forced
answer committed when the budget runs out). Per level, `--problems-per-level` problems are drawn with
their own seed (apart from the study's held-out and training draws), one rollout each by default, so the
accuracy's standard error is the binomial one over independent problems, sqrt(p (1 - p) / n).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from micro_eval import by_level, evaluate  # noqa: E402

from ttc_gym.micro.task import LEVELS, MicroSource  # noqa: E402


def per_problem_accuracy(records) -> tuple[float, float, int]:
    """(accuracy, its standard error over problems, number of problems): each problem's mean outcome over
    its rollouts, then the mean and standard error of those over problems."""
    by_problem: dict[str, list[float]] = {}
    for r in records:
        by_problem.setdefault(r.problem_id + f"#{r.group}", []).append(r.outcome)
    means = np.array([np.mean(v) for v in by_problem.values()])
    se = float(means.std(ddof=1) / np.sqrt(means.size)) if means.size > 1 else float("nan")
    return float(means.mean()), se, int(means.size)


def trace_ceiling(level: int, H: int, n: int = 3000, seed: int = 0) -> float:
    """The accuracy at budget H of the procedural traces the checkpoint imitates (`ttc_gym.micro.traces`,
    default style): a trace that commits within H episodes scores its answer, a longer one the answer its
    first H episodes imply carried exactly through the steps not written (what a forced answer is trained
    to give). A perfect imitator sampling at temperature 1 reaches about this."""
    from ttc_gym.micro.traces import generate_trace

    rng = np.random.default_rng([seed, level])
    right = 0
    for problem in MicroSource(level).problems(n, seed + level):
        trace = generate_trace(problem, rng)
        right += trace.correct if len(trace.episodes) <= H else str(trace.forced_answer(H)) == problem.answer
    return right / n


def headroom_table(records, H: int, band: tuple[float, float]) -> tuple[str, dict[int, tuple[float, float, int]]]:
    rows = {level: per_problem_accuracy(recs) for level, recs in by_level(records).items()}
    lines = [f"| level | problems | rollouts | acc@{H} ± SE | 95 % interval | J_0 | tokens | in [{band[0]}, {band[1]}] "
             f"| the traces' own acc@{H} |", "|---|---|---|---|---|---|---|---|---|"]
    for level, recs in by_level(records).items():
        acc, se, n = rows[level]
        inside = "yes" if band[0] <= acc <= band[1] else "no"
        lines.append(f"| {level} | {n} | {len(recs)} | {acc:.3f} ± {se:.3f} | [{acc - 1.96 * se:.3f}, "
                     f"{acc + 1.96 * se:.3f}] | {np.mean([r.j_curve[0] for r in recs]):.3f} | "
                     f"{np.mean([r.tokens[-1] for r in recs]):.0f} | {inside} | {trace_ceiling(level, H):.3f} |")
    return "\n".join(lines), rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="micro", help="engine spec: 'micro' or 'micro-long' (the shipped checkpoints) or a checkpoint folder")
    parser.add_argument("--levels", default="1,2,3,4,5", help="comma-separated levels to evaluate")
    parser.add_argument("--problems-per-level", type=int, default=300)
    parser.add_argument("--group-size", type=int, default=1, help="rollouts per problem")
    parser.add_argument("--H", type=int, default=4, help="episode budget")
    parser.add_argument("--K", type=int, default=4, help="forced answers per J estimate (the study's)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-episode-tokens", type=int, default=48)
    parser.add_argument("--band", default="0.1,0.6", help="target accuracy band, 'low,high'")
    parser.add_argument("--seed", type=int, default=0, help="problems of level L are drawn with seed (seed, 30, L)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="markdown file to write")
    args = parser.parse_args(argv)
    import torch

    from ttc_gym.engines import make_engine

    torch.set_num_threads(args.threads)
    levels = [int(t) for t in args.levels.split(",")]
    unknown = [level for level in levels if level not in LEVELS]
    if unknown:
        parser.error(f"--levels: {unknown} not among the micro levels {LEVELS}")
    band = tuple(float(t) for t in args.band.split(","))
    begin = time.perf_counter()
    engine = make_engine(args.checkpoint)
    problems = [MicroSource(level).sample(rng) for level in levels
                for rng in [np.random.default_rng([args.seed, 30, level])] for _ in range(args.problems_per_level)]
    records = evaluate(engine, problems, H=args.H, G=args.group_size, temperature=args.temperature, K=args.K,
                       max_episode_tokens=args.max_episode_tokens, seed=args.seed)
    table, _ = headroom_table(records, args.H, band)
    wall = time.perf_counter() - begin
    command = "python examples/studies/micro_headroom.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (f"# Micro-reasoner headroom\n\n`{command}` — {wall / 60:.1f} min wall, {args.threads} thread(s).\n\n"
            f"Checkpoint `{args.checkpoint}` on TTC-Math-v0 with source `micro:<level>`: {args.problems_per_level} "
            f"problems per level, {args.group_size} rollout(s) each, budget H = {args.H} episodes of at most "
            f"{args.max_episode_tokens} tokens sampled at temperature {args.temperature}, the policy as its own "
            f"prover (K = {args.K}); when the budget runs out the policy's forced answer is committed. "
            f"acc@H: the graded outcome, mean over problems ± its standard error; J_0: forced-answer accuracy "
            f"before any episode; the traces' own acc@H: the same for the procedural traces the checkpoint imitates "
            f"(3,000 per level, a trace longer than H scored by the answer its first H episodes imply, carried "
            f"exactly: `trace_ceiling`).\n\n{table}\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
