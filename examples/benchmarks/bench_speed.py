"""Speed of TTC-Sim-v0 and TTC-Replay-v0 next to Gymnasium's CartPole-v1, measured the same way in the
same run.

    python examples/benchmarks/bench_speed.py [--steps 100000] [--num-envs 1024] [--replay-data FILE.jsonl]

Single env: `gym.make` (with its default wrappers) stepped with random actions, resetting when a
rollout ends (one problem of TTC-Sim-v0, one pole balanced in CartPole). Vectorized: `gym.make_vec(..., vectorization_mode="vector_entry_point")` with
`--num-envs` sub-envs (autoreset inside). TTC-Replay-v0 (over the shipped analysed trace set, or
`--replay-data`) has no vectorized twin: single env only. Prints steps per second and the ratios to
CartPole.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import ttc_gym  # noqa: F401  (registers TTC-Sim-v0)


def single_env_steps_per_second(env_id: str, steps: int, seed: int = 0, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(env.action_space.n, size=steps).tolist()
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def vector_env_steps_per_second(env_id: str, num_envs: int, calls: int, seed: int = 0) -> float:
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    envs.reset(seed=seed)
    n_actions = envs.single_action_space.n
    batches = np.random.default_rng(seed).integers(n_actions, size=(64, num_envs))
    start = time.perf_counter()
    for i in range(calls):
        envs.step(batches[i % 64])
    return calls * num_envs / (time.perf_counter() - start)


def best_of(repeats: int, fn, *args) -> float:
    return max(fn(*args) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000, help="single-env steps per measurement")
    parser.add_argument("--num-envs", type=int, default=1024, help="sub-envs of the vectorized run")
    parser.add_argument("--calls", type=int, default=1000, help="vectorized step calls per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per figure (best is kept)")
    parser.add_argument("--replay-data", default=None, help="analysed trace set of TTC-Replay-v0 (default: shipped)")
    args = parser.parse_args()

    rows = []
    for label, fn, extra in [
        ("TTC-Sim-v0, single env", single_env_steps_per_second, (args.steps,)),
        (f"TTC-Sim-v0, vectorized ({args.num_envs})", vector_env_steps_per_second, (args.num_envs, args.calls)),
    ]:
        ours = best_of(args.repeats, fn, "TTC-Sim-v0", *extra)
        cartpole = best_of(args.repeats, fn, "CartPole-v1", *extra)
        rows.append((label, ours, cartpole, ours / cartpole))
    replay_kwargs = {} if args.replay_data is None else {"data": args.replay_data}
    replay = best_of(args.repeats, lambda: single_env_steps_per_second("TTC-Replay-v0", args.steps, **replay_kwargs))
    rows.append(("TTC-Replay-v0, single env", replay, rows[0][2], replay / rows[0][2]))

    print(f"{'':32} {'env steps/s':>20} {'CartPole-v1 steps/s':>20} {'ratio':>7}")
    for label, ours, cartpole, ratio in rows:
        print(f"{label:32} {ours:20,.0f} {cartpole:20,.0f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
