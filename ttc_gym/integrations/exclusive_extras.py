"""The one pair of ttc-gym extras that cannot share an environment: `[openenv]` and `[verifiers-v1]`.

The clash is on `mcp` (PyPI metadata read on 2026-12-07):

- verifiers 0.4.0 (the `verifiers-v1` extra, `verifiers>=0.4,<0.5`) requires `mcp==2.0.0`;
- every openenv release from 0.4 to 0.10 (the `openenv` extra is `openenv>=0.10,<0.11`) requires
  `fastmcp>=3,<4`, and every fastmcp 3.x requires `mcp>=1.24,<2` (fastmcp 4.x takes mcp 2, but no
  openenv release allows it).

No version range of either side meets the other: verifiers 0.4's own `verifiers[openenv]` extra
cannot be installed either. ttc-gym cannot resolve it; it makes the refusal clear instead:

- One `pip install 'ttc-gym[openenv,verifiers-v1]'`: each extra names its side of `mcp` in
  pyproject.toml (`mcp<2` / `mcp>=2`), so pip refuses before installing anything and its "The
  conflict is caused by" lines name the two extras. pip has no hook for a package's own message on a
  resolution conflict: the words are pip's (`ERROR: Cannot install ttc-gym[openenv,verifiers-v1]==...
  because these package versions have conflicting dependencies.`).
- Two installs one after the other: pip resolves only what the second asks for and swaps `mcp` under
  the first. It warns when verifiers 0.4 loses its `mcp==2.0.0`, but not when openenv loses `mcp<2`
  (fastmcp asks for mcp only through its own `client`/`server` extras, which pip's check does not
  follow); openenv then fails on import with fastmcp's "FastMCP client support is not installed".
  So each adapter calls `check_mcp(extra)` before importing its library, which raises a one-line
  ImportError naming the two extras.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

EXCLUSIVE = ("openenv", "verifiers-v1")
# extra -> (the mcp major versions it can run with, why); pyproject.toml's extras carry the same bounds
# (tests/apps/test_exclusive_extras.py checks that they agree).
MCP_NEED = {
    "openenv": (range(0, 2), "openenv needs fastmcp>=3,<4, which needs mcp<2"),
    "verifiers-v1": (range(2, 3), "verifiers 0.4 requires mcp==2.0.0"),
}


def mcp_conflict(extra: str, installed: str | None) -> str | None:
    """The one-line refusal when mcp `installed` (its version; None: not installed) cannot run `extra`."""
    if extra not in MCP_NEED:
        raise ValueError(f"extra must be one of {sorted(MCP_NEED)}, got {extra!r}")
    if installed is None:
        return None  # the library's own import guard says what to install
    majors, why = MCP_NEED[extra]
    found = re.match(r"\d+", installed)
    if found is None or int(found.group()) in majors:
        return None
    (other,) = (name for name in EXCLUSIVE if name != extra)
    return (
        f"ttc-gym[{extra}] cannot run with the installed mcp {installed}: {why}, and {MCP_NEED[other][1]} "
        f"([{other}]); the [openenv] and [verifiers-v1] extras cannot share an environment: install each "
        f"in its own virtual environment"
    )


def installed_mcp() -> str | None:
    try:
        return version("mcp")
    except PackageNotFoundError:
        return None


def check_mcp(extra: str) -> None:
    """Raise ImportError (one line) when the installed mcp cannot run `extra`'s library."""
    message = mcp_conflict(extra, installed_mcp())
    if message is not None:
        raise ImportError(message)
