"""`loop.all_failed_groups`: the share of an iteration's groups without an outcome signal, logged by
the LLM trainer (column `all_failed_groups`)."""

import math
from types import SimpleNamespace as R

from ttc_gym.training.llm_train import LOG_FIELDS
from ttc_gym.training.loop import all_failed_groups


def test_share_of_groups_whose_every_rollout_failed():
    rollouts = [R(group=0, outcome=0.0), R(group=0, outcome=0.0),  # no signal
                R(group=1, outcome=1.0), R(group=1, outcome=0.0),
                R(group=2, outcome=0.0), R(group=2, outcome=1.0),
                R(group=3, outcome=0.0)]  # no signal
    assert all_failed_groups(rollouts) == 0.5
    assert all_failed_groups([R(group=0, outcome=1.0)]) == 0.0
    assert math.isnan(all_failed_groups([]))


def test_the_llm_trainer_logs_it():
    assert "all_failed_groups" in LOG_FIELDS
