"""Import guards for heavy or GPU-only extras: the error names the extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


def is_available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import `module` or raise ImportError naming `pip install 'ttc-gym[extra]'`."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        why = f" for {purpose}" if purpose else ""
        raise ImportError(
            f"{module!r} is needed{why} but is not installed. "
            f"Install it with: pip install 'ttc-gym[{extra}]'"
        ) from err
