"""Calibration of TTC-Math-v0's default difficulty against the default model.

    python examples/studies/calibrate_math.py --problems 50 --episodes 2

For each problem of the default source, the LLM agent (default settings) writes `--episodes`
episodes; the prover (K = 8 forced answers) measures J after 0, 1, ... episodes. Prints the mean J
curve with its standard error, per difficulty level and overall. The default source should leave the
default model neither hopeless nor perfect (J between 5 % and 80 %).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import gymnasium as gym
import numpy as np

import ttc_gym  # noqa: F401
from ttc_gym.agents.llm import LLMAgent
from ttc_gym.evaluation import run_rollout
from ttc_gym.metrics import mean_and_stderr, pad_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=2, help="budget H of each problem")
    parser.add_argument("--source", default="procedural")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env = gym.make("TTC-Math-v0", source=args.source, max_episodes=args.episodes)
    agent = LLMAgent(env.unwrapped.engine, template=env.unwrapped.template)  # the env's documented accessors
    curves, by_level = [], defaultdict(list)
    start = time.perf_counter()
    for i in range(args.problems):
        record = run_rollout(env, agent, seed=args.seed + i)
        curve = pad_curve(record.j_curve, args.episodes + 1)
        curves.append(curve)
        by_level[record.extra.get("difficulty")].append(curve)
        print(f"[{i + 1}/{args.problems}] level {record.extra.get('difficulty')}: J = "
              f"{' -> '.join(f'{j:.2f}' for j in curve)}  ({time.perf_counter() - start:.0f}s)", flush=True)

    def row(name, rows):
        cells = [mean_and_stderr([c[k] for c in rows]) for k in range(args.episodes + 1)]
        print(f"{name:>10} (n={len(rows):3d}): " + "  ".join(f"J_{k} = {m:.3f} ± {s:.3f}" for k, (m, s) in enumerate(cells)))

    print(f"\nsource {args.source!r}, {args.problems} problems, K = 8, {time.perf_counter() - start:.0f}s")
    for level in sorted(by_level, key=lambda x: (x is None, x)):
        row(f"level {level}", by_level[level])
    row("all", curves)


if __name__ == "__main__":
    main()
