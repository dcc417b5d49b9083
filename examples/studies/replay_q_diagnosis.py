"""Why tabular Q-learning on TTC-Replay-v0's full observation loses to always-continue on held-out
problems: its stopping decisions carry over to new problems, its switching decisions do not.

    python examples/studies/replay_q_diagnosis.py            # micro_arith, episode cost 0.05, split 0, seed 0 (~10 s)

Trains the bench's `q_learning` on the train problems of one split, then evaluates on the train and on
the test problems (20 seeded rollouts each): its greedy policy; the same table with every switch
replaced by continue; always continue. This is the diagnosis behind the aggregated-state learners of
examples/studies/replay_study.py (see that study's header).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import ttc_gym  # noqa: F401  (registers the envs)
from ttc_gym.actions import MetaAction
from ttc_gym.agents.factories import q_learning
from ttc_gym.traces import TRACE_DATA


def mean_return(env, policy, rollouts: int) -> float:
    totals = []
    for problem in env.unwrapped.dataset.problems:
        for seed in range(rollouts):
            obs, _ = env.reset(seed=seed, options={"problem_id": problem.problem_id})
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy(obs))
                total += reward
                done = terminated or truncated
            totals.append(total)
    return float(np.mean(totals))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(TRACE_DATA / "micro_arith.jsonl"))
    parser.add_argument("--episode-cost", type=float, default=0.05)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--rollouts", type=int, default=20)
    args = parser.parse_args()
    kwargs = {"data": args.data, "split_seed": args.split_seed, "episode_cost": args.episode_cost}
    agent = q_learning(gym.make("TTC-Replay-v0", split="train", **kwargs), steps=args.steps, seed=args.seed)

    def greedy(obs) -> int:
        return agent.act(obs)

    def greedy_without_switch(obs) -> int:
        action = agent.act(obs)
        return int(MetaAction.CONTINUE) if action == MetaAction.SWITCH else action

    policies = {"Q-learning (greedy)": greedy, "the same table, switch -> continue": greedy_without_switch,
                "always continue": lambda obs: int(MetaAction.CONTINUE)}
    print(f"{'policy':<38} {'train problems':>15} {'test problems':>14}")
    for name, policy in policies.items():
        train, test = (mean_return(gym.make("TTC-Replay-v0", split=split, **kwargs), policy, args.rollouts)
                       for split in ("train", "test"))
        print(f"{name:<38} {train:>15.3f} {test:>14.3f}")


if __name__ == "__main__":
    main()
