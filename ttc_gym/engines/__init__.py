"""Model engines: one interface (`Engine`, `ttc_gym.engines.base`) over a local transformers model or
vLLM, built from specs by `make_engine` (`ttc_gym.engines.registry`, where new schemes are added).

    from ttc_gym.engines import make_engine, SamplingConfig
    engine = make_engine()                       # the default offline model (SmolLM2-135M)
    prompt = engine.format_chat("What is 2+3?")
    [[completion]] = engine.generate([prompt], SamplingConfig(max_new_tokens=32), seed=0)

Importing this package does not import torch or transformers; they load when an engine is built.
"""

from __future__ import annotations

from typing import Any

from ttc_gym.engines.base import Completion, Engine, SamplingConfig, TrainableEngine
from ttc_gym.engines.default_model import default_model_path, load_default_engine
from ttc_gym.engines.registry import engine_schemes, make_engine, register_engine_scheme, unregister_engine_scheme

__all__ = [
    "Completion",
    "Engine",
    "SamplingConfig",
    "TrainableEngine",
    "TransformersEngine",
    "default_model_path",
    "engine_schemes",
    "load_default_engine",
    "make_engine",
    "register_engine_scheme",
    "tiny_random_engine",
    "unregister_engine_scheme",
]

_LAZY = {
    "TransformersEngine": "ttc_gym.engines.transformers_engine",
    "tiny_random_engine": "ttc_gym.engines.testing",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ttc_gym.engines' has no attribute {name!r}")
