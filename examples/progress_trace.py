"""A progress trace: one problem, the default model reasoning episode by episode, and after each
episode the prover's J, the progress J_j - J_{j-1}, the reward and finally the outcome.

    python examples/progress_trace.py [--seed 0] [--episodes 4] [--source procedural:1]

The last line checks the telescoping identity: the progress sums to J_final - J_0.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import ttc_gym  # noqa: F401
from ttc_gym.agents.llm import LLMAgent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=4, help="budget H")
    parser.add_argument("--source", default="procedural:1")
    parser.add_argument("--engine", default=None, help="model spec (default: SmolLM2-135M-Instruct)")
    args = parser.parse_args()

    env = gym.make("TTC-Math-v0", source=args.source, max_episodes=args.episodes, engine=args.engine)
    agent = LLMAgent(env.unwrapped.engine, template=env.unwrapped.template)  # the env's documented accessors
    obs, info = env.reset(seed=args.seed)
    print(f"Problem: {obs['problem']}\n")
    print(f"J_0 = {info['J']:.3f}   prover answers: {', '.join(info['prover_answers'])}")
    total_progress, done, j = 0.0, False, [info["J"]]
    while not done:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
        k = info["episodes_used"]
        total_progress += info["progress"]
        j.append(info["J"])
        print(f"\n[episode {k}] {obs['episodes'][-1].strip()}")
        print(f"J_{k} = {info['J']:.3f}   progress = {info['progress']:+.3f}   reward = {reward:+.3f}   "
              f"prover answers: {', '.join(info['prover_answers'])}")
        done = terminated or truncated
    how = "committed" if not truncated else "forced at the end of the budget"
    print(f"\nanswer {info['committed_answer']!r} ({how}), gold {info['gold_answer']!r}: outcome = {info['outcome']:.0f}")
    print(f"J curve: {' -> '.join(f'{x:.3f}' for x in j)}")
    print(f"sum of progress = {total_progress:+.3f} = J_final - J_0 = {j[-1] - j[0]:+.3f}")


if __name__ == "__main__":
    main()
