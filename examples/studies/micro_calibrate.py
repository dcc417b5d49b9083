"""Calibrate the shipped micro-reasoner (issue 15, point 2): forced-answer accuracy J_0 and J after
1..H episodes per difficulty level, accuracy at the budget, per-problem heterogeneity, and the share
of rollouts whose J ever falls. Writes a markdown table (and prints it).

    python examples/studies/micro_calibrate.py --out examples/studies/micro_calibration.md        # ~10 min on 2 busy cores
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from micro_eval import by_level, evaluate, summary  # noqa: E402

from ttc_gym.engines import make_engine  # noqa: E402
from ttc_gym.micro.task import LEVELS, MicroSource  # noqa: E402


def calibration_table(records, H: int) -> str:
    head = ["level", "rollouts", *[f"J_{j}" for j in range(H + 1)], f"acc@{H}", "J ever falls",
            "per-problem acc std", "all right / all wrong", "episodes", "tokens"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups = list(by_level(records).items()) + [("all", records)]
    for level, recs in groups:
        s = summary(recs, H)
        lines.append("| " + " | ".join([str(level), str(s["n"]), *[f"{j:.2f}" for j in s["J"]], f"{s['accuracy']:.2f}",
                                        f"{s['ever_falls']:.2f}", f"{s['problem_acc_std']:.2f}",
                                        f"{s['problems_all_right']:.2f} / {s['problems_all_wrong']:.2f}",
                                        f"{s['episodes']:.1f}", f"{s['tokens']:.0f}"]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems-per-level", type=int, default=12)
    parser.add_argument("--group-size", type=int, default=4, help="rollouts per problem")
    parser.add_argument("--H", type=int, default=8, help="episode budget")
    parser.add_argument("--K", type=int, default=8, help="forced answers per J estimate")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="markdown file to write")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    engine = make_engine("micro")
    problems = [p for level in LEVELS for p in MicroSource(level).problems(args.problems_per_level, args.seed + 1000 + level)]
    records = evaluate(engine, problems, H=args.H, G=args.group_size, temperature=args.temperature, K=args.K,
                       seed=args.seed)
    table = calibration_table(records, args.H)
    wall = time.perf_counter() - begin
    command = "python examples/studies/micro_calibrate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (f"# Micro-reasoner calibration\n\n`{command}` — {wall:.0f} s wall on this machine.\n\n"
            f"The shipped base checkpoint (`make_engine(\"micro\")`) on TTC-Math-v0 with source `micro:<level>`: "
            f"{args.problems_per_level} problems per level, {args.group_size} rollouts each, budget H = {args.H} "
            f"episodes, episodes sampled at temperature {args.temperature}, the policy as its own prover "
            f"(K = {args.K} forced answers at temperature 0.7, docs/formulation.md §2). J_j: mean forced-answer "
            f"accuracy after j episodes (a rollout that committed earlier holds its last J); acc@H: the graded "
            f"outcome; J ever falls: share of rollouts with an episode of negative progress; per-problem acc "
            f"std: spread across problems of each problem's mean outcome (heterogeneity).\n\n{table}\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
