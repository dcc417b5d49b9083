"""Bad input gets a clear one-line error, never garbage, a hang or a deep traceback (issue 33 items 6,
8, 9, 10, 13)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import ttc_gym  # noqa: F401
from ttc_gym.engines.base import SamplingConfig

# -- item 6: temperatures that underflow -------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-6])
def test_temperatures_that_overflow_the_logits_are_refused(temperature):
    with pytest.raises(ValueError, match=r"temperature must be 0 \(greedy\) or at least 1e-05.*Did you mean 0"):
        SamplingConfig(temperature=temperature)
    with pytest.raises(ValueError, match="prover_temperature must be 0"):
        gym.make("TTC-Math-v0", engine="micro", prover_temperature=temperature)
    with pytest.raises(ValueError, match="temperature must be 0"):
        gym.make("TTC-MathMeta-v0", engine="micro", temperature=temperature)


def test_greedy_and_small_temperatures_are_accepted():
    assert SamplingConfig(temperature=0.0).greedy
    assert SamplingConfig(temperature=1e-5).temperature == 1e-5
