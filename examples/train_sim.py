"""Train tabular Q-learning and stable-baselines3 PPO on TTC-Sim-v0 and compare them with the exact
DP oracle and fixed test-time heuristics.

    python examples/train_sim.py                 # ~1-2 minutes on 2 CPU cores
    python examples/train_sim.py --ppo-steps 0   # skip PPO

Read top to bottom: make the env, solve it exactly, train the learners, evaluate everyone on the
same problems (same seeds), print one table. Every agent but the one labelled ORACLE decides from its
observation only (docs/formulation.md §3); that one reads J, computed from the hidden state.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import gymnasium as gym

import ttc_gym  # noqa: F401  (registers the envs)
from ttc_gym.agents.heuristics import (
    AnswerAfterK,
    AnswerWhenConfident,
    NeverVerify,
    OracleAnswerWhenConfident,
    RandomAgent,
)
from ttc_gym.agents.oracle import OracleAgent
from ttc_gym.agents.sb3 import SB3Agent
from ttc_gym.agents.tabular import QLearningAgent, QLearningConfig
from ttc_gym.evaluation import run_rollout, summarize


@dataclass
class Config:
    q_steps: int = 1_000_000  # Q-learning transitions (vectorized, 256 sub-envs)
    ppo_steps: int = 200_000  # PPO timesteps (0 to skip)
    eval_problems: int = 2000  # problems each agent is evaluated on (same seeds for all)
    seed: int = 0


def train_ppo(steps: int, seed: int):
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger

    torch.set_num_threads(1)  # small networks: threads cost more than they bring
    envs = make_vec_env("TTC-Sim-v0", n_envs=16, seed=seed)
    model = PPO(
        "MlpPolicy", envs, learning_rate=1e-3, n_steps=128, batch_size=512, n_epochs=4,
        ent_coef=0.01, gamma=1.0, seed=seed, verbose=0,
    )
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes a /tmp/SB3-<time> folder per run
    return model.learn(steps)


def main(cfg: Config) -> None:
    env = gym.make("TTC-Sim-v0")
    params = env.unwrapped.model.params  # the documented transition model's parameters
    oracle = OracleAgent.from_env(env)
    agents = {"oracle (DP)": oracle}

    start = time.perf_counter()
    vec = gym.make_vec("TTC-Sim-v0", num_envs=256, vectorization_mode="vector_entry_point")
    q_agent = QLearningAgent(vec.single_observation_space, vec.single_action_space)
    q_agent.train(vec, QLearningConfig(total_steps=cfg.q_steps, seed=cfg.seed))
    agents["Q-learning"] = q_agent
    print(f"Q-learning: {cfg.q_steps:,} transitions in {time.perf_counter() - start:.1f}s")

    if cfg.ppo_steps > 0:
        start = time.perf_counter()
        agents["PPO (SB3)"] = SB3Agent(train_ppo(cfg.ppo_steps, cfg.seed))
        print(f"PPO: {cfg.ppo_steps:,} timesteps in {time.perf_counter() - start:.1f}s")

    agents.update({
        "answer when sure": AnswerWhenConfident(0.9, model=env.unwrapped.model),  # E[J | obs] >= 0.9
        "ORACLE: J>=0.9": OracleAnswerWhenConfident(0.9),  # reads the hidden J: not deployable
        "never verify": NeverVerify(2),
        "answer after 3": AnswerAfterK(3),
        "random": RandomAgent(env.action_space, seed=cfg.seed),
    })

    j_star = oracle.expected_accuracy()
    budget_tokens = params.max_episodes * params.tokens_per_episode
    print(f"\nTTC-Sim-v0, H={params.max_episodes}, alpha={params.alpha}; "
          f"oracle expected return {oracle.expected_return:.3f}, J* = {j_star:.3f}; "
          f"{cfg.eval_problems} problems each (mean ± s.e.)\n")
    header = f"{'agent':20} {'return':>14} {'% oracle':>9} {'accuracy':>14} {'episodes':>12} {'token regret':>14}"
    print(header)
    print("-" * len(header))
    for name, agent in agents.items():
        records = [run_rollout(env, agent, seed=10**6 + i) for i in range(cfg.eval_problems)]
        s = summarize(records, budget_episodes=params.max_episodes, budget_tokens=budget_tokens)
        pct = 100 * s["return"][0] / oracle.expected_return
        print(f"{name:20} {s['return'][0]:7.3f} ± {s['return'][1]:.3f} {pct:8.1f}% "
              f"{s['accuracy'][0]:7.3f} ± {s['accuracy'][1]:.3f} {s['episodes'][0]:6.2f} ± {s['episodes'][1]:.2f} "
              f"{s['token_regret'][0]:7.3f} ± {s['token_regret'][1]:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in vars(Config()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    main(Config(**vars(parser.parse_args())))
