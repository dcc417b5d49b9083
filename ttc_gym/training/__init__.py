"""Trainers that teach a policy to spend test-time compute: outcome-only RL (GRPO), MRT (progress
reward), STaR / MRT-STaR (rejection-sampling SFT) and plain SFT.

* `algorithms` — the policy-agnostic core (advantages, losses, trace selection), shared by every
  trainer (TTC-Sim-v0 and TTC-Math-v0).
* `sim_policy`, `sim_rollout`, `sim_config`, `sim_train` — the TTC-Sim-v0 trainers
  (`python -m ttc_gym.training.sim_train --help`).
* `llm_config`, `llm_train` — the LLM trainers on TTC-Math-v0
  (`python -m ttc_gym.training.llm_train --help`).
* `experts` — a heterogeneous expert whose traces the verifier-free baselines clone.
* `config_cli` — a dataclass config that doubles as a command line.

`TRAINERS` is the one table of which trainer trains on which env (`ttc-gym train --env ID`); a
trainer is `main(argv, prog) -> exit code`, imported only when it runs.
"""

TRAINERS: dict[str, str] = {
    "TTC-Sim-v0": "ttc_gym.training.sim_train:main",
    "TTC-Math-v0": "ttc_gym.training.llm_train:main",
}
