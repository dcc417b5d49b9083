"""The layers point one way, checked on the source (ast), not by convention.

    core    ttc_gym.*: the formulation, engines, grading, problems, prompts, metrics, registration
    envs    ttc_gym.envs.*        the environments
    agents  ttc_gym.agents.*      policies, strategies, tabular and SB3 agents, the DP oracle
    apps    ttc_gym.bench.*, ttc_gym.training.*, ttc_gym.cli.*, ttc_gym.integrations.*
            benchmark, trainers, CLI, adapters to outside RL libraries

A module may import (at module level or inside a function) or name by string (`"module:attr"` entry
points, `importlib.import_module("...")`) only modules of its own layer or a lower one. The one
exception is the env registration table that Gymnasium needs (`ttc_gym.registration` names the env
modules by string). The import graph between ttc_gym modules has no cycle. See docs/architecture.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCE_ROOTS = {"ttc_gym": REPO / "ttc_gym", "ttc_gym.envs": REPO / "envs", "ttc_gym.agents": REPO / "agents"}
LAYERS = ("core", "envs", "agents", "apps")
# Longest prefix wins.
LAYER_OF_PREFIX = {
    "ttc_gym": "core",
    "ttc_gym.envs": "envs",
    "ttc_gym.agents": "agents",
    "ttc_gym.training": "apps",
    "ttc_gym.bench": "apps",
    "ttc_gym.cli": "apps",
    "ttc_gym.integrations": "apps",
}
# (module, named module) pairs allowed to point upward: Gymnasium's registration table only.
ALLOWED_UPWARD = {("ttc_gym.registration", "ttc_gym.envs")}
MODULE_STRING = re.compile(r"^(ttc_gym(?:\.[A-Za-z_]\w*)+)(?::[\w.]+)?$")


def modules() -> dict[str, Path]:
    found = {}
    for package, root in SOURCE_ROOTS.items():
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = modules()


def layer(module: str) -> str:
    best = max((p for p in LAYER_OF_PREFIX if module == p or module.startswith(p + ".")), key=len)
    return LAYER_OF_PREFIX[best]


def resolve(name: str) -> str | None:
    """The ttc_gym module a dotted name refers to (a module, or an attribute of one)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def references(module: str, source: str | None = None) -> list[tuple[str, int, str]]:
    """(referenced ttc_gym module, line, "import" or "string") for every import and module string of
    `module` (its file, or `source` in its place)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    docstrings = _docstring_nodes(tree)
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            match = MODULE_STRING.match(node.value.strip())
            if match and resolve(match.group(1)):
                found.append((resolve(match.group(1)), node.lineno, "string"))
            continue
        for name in names:
            target = resolve(name)
            if target and target != module:
                found.append((target, node.lineno, "import"))
    return found


def test_the_layer_table_covers_every_module():
    assert "ttc_gym.envs.sim" in MODULES and "ttc_gym.training.llm_train" in MODULES
    assert "ttc_gym.cli.traces" in MODULES and "ttc_gym.integrations.trl_grpo" in MODULES
    assert {layer(m) for m in MODULES} == set(LAYERS)


def upward(module: str, source: str | None = None) -> list[str]:
    violations = []
    for target, line, kind in references(module, source):
        if LAYERS.index(layer(target)) <= LAYERS.index(layer(module)):
            continue
        if any(module == m and (target == t or target.startswith(t + ".")) for m, t in ALLOWED_UPWARD):
            continue
        violations.append(f"{MODULES[module].relative_to(REPO)}:{line} ({layer(module)}) {kind} "
                          f"{target} ({layer(target)})")
    return violations


def test_no_lower_layer_imports_or_names_a_higher_one():
    violations = [v for module in MODULES for v in upward(module)]
    assert not violations, "a lower layer points up:\n" + "\n".join(violations)


def test_the_import_graph_has_no_cycle():
    graph = {m: sorted({t for t, _, kind in references(m) if kind == "import"}) for m in MODULES}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_the_checker_sees_upward_references():
    """The checker is not vacuous: imports (also lazy and relative ones) and entry-point strings that
    point up are caught; docstrings and the registration table are not."""
    assert layer("ttc_gym.rewards") == "core" and layer("ttc_gym.agents.llm") == "agents"
    assert layer("ttc_gym.training.algorithms") == "apps" and layer("ttc_gym.bench.runner") == "apps"
    caught = {
        "from ttc_gym.agents.llm import LLMAgent": "ttc_gym.agents.llm",
        "def f():\n    import ttc_gym.envs.sim\n": "ttc_gym.envs.sim",
        "from .bench import runner": "ttc_gym.bench.runner",
        "TABLE = {'x': 'ttc_gym.agents.factories:ppo'}": "ttc_gym.agents.factories",
    }
    for source, target in caught.items():
        found = upward("ttc_gym.rewards", source)
        assert len(found) == 1 and target in found[0], (source, found)
    assert upward("ttc_gym.rewards", '"""See ttc_gym.agents.llm:LLMAgent."""\nimport ttc_gym.budget') == []
    assert upward("ttc_gym.registration") == []
    assert any(t.startswith("ttc_gym.envs") and kind == "string" for t, _, kind in references("ttc_gym.registration"))
