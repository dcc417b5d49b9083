"""Trainers that teach a policy to spend test-time compute: outcome-only RL (GRPO), MRT (progress
reward), STaR / MRT-STaR (rejection-sampling SFT) and plain SFT.

* `algorithms` — the policy-agnostic core (advantages, losses, trace selection), shared by every
  trainer (TTC-Sim-v0 now, LLM policies later).
* `sim_policy`, `sim_rollout`, `sim_config`, `sim_train` — the TTC-Sim-v0 trainers
  (`python -m ttc_gym.agents.training.sim_train --help`).
* `experts` — a heterogeneous expert whose traces the verifier-free baselines clone.
* `config_cli` — a dataclass config that doubles as a command line.
"""
