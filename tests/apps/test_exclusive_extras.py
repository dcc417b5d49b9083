"""[openenv] and [verifiers-v1] cannot share an environment (mcp<2 vs mcp==2.0.0): the refusal is one line
naming both extras, and pyproject's extras carry the same mcp bounds so that pip's own refusal names them.
The real libraries meeting the wrong mcp are checked in tests/apps/test_verifiers_v1_adapter.py (slow)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from ttc_gym.integrations import exclusive_extras
from ttc_gym.integrations.exclusive_extras import MCP_NEED, check_mcp, mcp_conflict

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("extra, installed", [("openenv", "2.0.0"), ("openenv", "2.3.0"), ("verifiers-v1", "1.30.0")])
def test_the_wrong_mcp_is_refused_in_one_line_naming_both_extras(extra, installed):
    message = mcp_conflict(extra, installed)
    assert message is not None and "\n" not in message
    assert f"mcp {installed}" in message and "[openenv]" in message and "[verifiers-v1]" in message
    assert "own virtual environment" in message


@pytest.mark.parametrize("extra, installed", [("openenv", "1.30.0"), ("openenv", "1.24.0"), ("verifiers-v1", "2.0.0"),
                                              ("openenv", None), ("verifiers-v1", None)])
def test_a_fitting_or_absent_mcp_passes(extra, installed):
    assert mcp_conflict(extra, installed) is None


def test_check_mcp_raises_import_error(monkeypatch):
    monkeypatch.setattr(exclusive_extras, "installed_mcp", lambda: "2.0.0")
    with pytest.raises(ImportError, match=r"ttc-gym\[openenv\] cannot run with the installed mcp 2.0.0"):
        check_mcp("openenv")
    check_mcp("verifiers-v1")
    with pytest.raises(ValueError, match="extra must be one of"):
        check_mcp("verifiers")


def test_openenv_adapter_import_refuses_mcp_2(monkeypatch):
    """The guard runs before openenv.core (whose fastmcp import fails under mcp 2 with a misleading message)."""
    pytest.importorskip("openenv")
    monkeypatch.setattr(exclusive_extras, "installed_mcp", lambda: "2.0.0")
    monkeypatch.delitem(sys.modules, "ttc_gym.integrations.openenv", raising=False)
    with pytest.raises(ImportError, match=r"extras cannot share an environment"):
        __import__("ttc_gym.integrations.openenv")


def _mcp_requirement(extra: str) -> str:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (requirement,) = [r for r in extras[extra] if re.match(r"mcp\b", r)]
    return requirement[len("mcp"):]


@pytest.mark.parametrize("extra", sorted(MCP_NEED))
def test_pyproject_extras_carry_the_same_mcp_bounds(extra):
    """pip's refusal of `ttc-gym[openenv,verifiers-v1]` names both extras only if each states its mcp side."""
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(_mcp_requirement(extra))
    majors, _ = MCP_NEED[extra]
    for major in range(4):
        assert (f"{major}.0.0" in spec) == (major in majors), (extra, str(spec), major)
