"""Shared test fixtures: how to build every registered env cheaply."""

from __future__ import annotations

import gymnasium as gym
import pytest

import ttc_gym

# Per-env kwargs that keep a test fast (e.g. a tiny model instead of the default one).
FAST_ENV_KWARGS: dict[str, dict] = {}


def make_fast_env(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, **{**FAST_ENV_KWARGS.get(env_id, {}), **kwargs})


@pytest.fixture(params=ttc_gym.env_ids())
def env_id(request) -> str:
    return request.param
