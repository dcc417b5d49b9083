"""Shared test fixtures: how to build every registered env cheaply."""

from __future__ import annotations

import gymnasium as gym
import pytest

import ttc_gym

from functools import lru_cache


@lru_cache(maxsize=None)
def tiny_engine():
    """A tiny random model with the default model's tokenizer: real mechanics, no real cost."""
    from ttc_gym.engines.testing import tiny_random_engine

    return tiny_random_engine(seed=0)


def fast_env_kwargs(env_id: str) -> dict:
    """Per-env kwargs that keep a test fast (a tiny model instead of the default one)."""
    if env_id in ("TTC-Math-v0", "TTC-MathMeta-v0"):
        kwargs = {"engine": tiny_engine(), "num_prover_samples": 4, "max_episodes": 4, "max_answer_tokens": 8,
                  "max_episode_chars": 64}
        if env_id == "TTC-MathMeta-v0":
            kwargs["episode_tokens"] = 16
        return kwargs
    return {}


def make_fast_env(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, **{**fast_env_kwargs(env_id), **kwargs})


@pytest.fixture(params=ttc_gym.env_ids())
def env_id(request) -> str:
    return request.param
