"""ttc-gym: test-time compute of reasoning LLMs as a standard reinforcement-learning problem.

Importing this package registers its environments with Gymnasium (nothing heavy is imported):

    import gymnasium as gym
    env = gym.make("ttc_gym:TTC-Sim-v0")
"""

from ttc_gym.budget import Budget
from ttc_gym.prover import Prover, ProverEstimate
from ttc_gym.registration import ENVS, env_ids, register_envs
from ttc_gym.rewards import ProgressTracker, compose_reward

__version__ = "0.1.0"
__all__ = [
    "Budget",
    "ENVS",
    "ProgressTracker",
    "Prover",
    "ProverEstimate",
    "compose_reward",
    "env_ids",
    "register_envs",
]

register_envs()
