"""Shared test fixtures: how to build every registered env cheaply; and a check, before any test, that
the strict editable install is not stale (a module added since `pip install -e .`)."""

from __future__ import annotations

import sys
import sysconfig
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import pytest

import ttc_gym

REPO = Path(__file__).resolve().parents[1]


def stale_install_modules() -> list[str]:
    """The checkout's modules missing from the strict editable install's link tree (build/__editable__.*,
    named by a .pth file of this interpreter), which subprocesses and scripts import: [] when the
    install is current or not a strict editable one of this checkout."""
    site = Path(sysconfig.get_paths()["purelib"])
    trees = [Path(line.strip()) for pth in site.glob("__editable__.ttc_gym*.pth")
             for line in pth.read_text().splitlines() if line.strip() and not line.startswith("import")]
    tree = next((t for t in trees if (t / "ttc_gym").is_dir() and REPO in t.resolve().parents), None)
    if tree is None:
        return []
    return sorted(str(f.relative_to(REPO)) for f in (REPO / "ttc_gym").rglob("*.py") if "__pycache__" not in f.parts
                  and not (tree / f.relative_to(REPO)).exists()) + sorted(
        str(f.relative_to(REPO)) for folder in ("envs", "agents") for f in (REPO / folder).rglob("*.py")
        if "__pycache__" not in f.parts and not (tree / "ttc_gym" / f.relative_to(REPO)).exists())


def pytest_sessionstart(session):
    missing = stale_install_modules()
    if missing:
        raise pytest.UsageError(f"the editable install is older than the checkout ({', '.join(missing[:5])} "
                                f"missing): run `{sys.executable} -m pip install -e .` again (a strict editable "
                                f"install links each module; a new one needs a reinstall).")


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
    if env_id == "TTC-Micro-v0":  # the registered micro-reasoner itself, its length guard included; K = 4 for speed
        return {"num_prover_samples": 4}
    return {}


def make_fast_env(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, **{**fast_env_kwargs(env_id), **kwargs})


@pytest.fixture(params=ttc_gym.env_ids())
def env_id(request) -> str:
    return request.param
