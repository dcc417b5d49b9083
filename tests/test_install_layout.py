"""The installed package under its own namespace: a user project with its own `envs/` and `agents/`
packages (most RL repos have an `envs/`; PyPI's `openai-agents` installs a top-level `agents`) must not
shadow ttc-gym's. Built with a regular, non-editable install into a temporary folder.

And the editable install of this checkout is one that static analysers follow: jedi, asked from
outside the checkout as an IDE would be, resolves `ttc_gym.envs.sim` to envs/sim.py (through the
links `ttc_gym/envs` -> `envs/` and pyproject.toml's strict editable mode)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Source folder -> installed package (ttc_gym/envs and ttc_gym/agents are links to the two folders).
# ttc_gym_verifiers is the one top-level name besides ttc_gym (verifiers 0.4 imports tasksets by it).
LAYOUT = {"ttc_gym": "ttc_gym", "envs": "ttc_gym/envs", "agents": "ttc_gym/agents",
          "ttc_gym_verifiers": "ttc_gym_verifiers"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    # Built from a copy, so that setuptools' build/ folder lands outside the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "ttc_gym", source / "ttc_gym", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("envs", "agents", "ttc_gym_verifiers"):  # the last: verifiers 0.4's taskset module
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return target


def test_every_source_module_is_installed_under_the_namespace(installed):
    missing = []
    for folder, package in LAYOUT.items():
        for source in (REPO / folder).rglob("*.py"):
            relative = source.relative_to(REPO / folder)
            if "__pycache__" not in relative.parts and not (installed / package / relative).is_file():
                missing.append(f"{folder}/{relative}")
    assert not missing, f"not installed (add their packages to pyproject.toml): {missing}"
    assert not (installed / "envs").exists() and not (installed / "agents").exists()


def test_every_shipped_micro_checkpoint_is_installed_as_package_data(installed):
    """pyproject.toml's package-data glob carries each checkpoint of the table, byte for byte."""
    from ttc_gym.micro.checkpoint import MICRO_CHECKPOINTS

    assert {"micro", "micro-long"} <= set(MICRO_CHECKPOINTS)
    for row in MICRO_CHECKPOINTS.values():
        files = sorted(p.name for p in row.path.iterdir() if p.is_file())
        assert "model.safetensors" in files and "pretrain_config.json" in files, row.name
        for name in files:
            copy = installed / "ttc_gym" / "data" / row.folder / name
            assert copy.is_file() and copy.read_bytes() == (row.path / name).read_bytes(), f"{row.name}: {name}"


def test_a_user_project_with_its_own_envs_and_agents_does_not_shadow_ours(installed, tmp_path):
    project = tmp_path / "user_project"
    for name in ("envs", "agents"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(f"USER_{name.upper()} = True\n")
    code = (
        "import gymnasium as gym, ttc_gym, envs, agents\n"
        "assert ttc_gym.__file__.startswith(r'%s'), ttc_gym.__file__\n"
        "assert envs.USER_ENVS and agents.USER_AGENTS\n"  # the user's own packages still import
        "env = gym.make('TTC-Sim-v0'); env.reset(seed=0); env.step(0)\n"
        "from ttc_gym.agents.oracle import OracleAgent\n"
        "print(type(env.unwrapped).__module__, OracleAgent.__module__)\n"
    ) % installed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed)  # ahead of the editable install in site-packages
    done = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ttc_gym.envs.sim", "ttc_gym.agents.oracle"]


def test_the_two_folders_are_linked_into_the_package():
    for folder in ("envs", "agents"):
        link = REPO / "ttc_gym" / folder
        assert link.is_symlink() and link.resolve() == (REPO / folder).resolve(), link


@pytest.mark.parametrize("module, expected", [
    ("ttc_gym.envs.sim", "envs/sim.py"),
    ("ttc_gym.agents.oracle", "agents/oracle.py"),
    ("ttc_gym.training", "ttc_gym/training/__init__.py"),
    ("ttc_gym.rewards", "ttc_gym/rewards.py"),
])
def test_a_static_analyser_resolves_the_import_names_to_their_files(module, expected, tmp_path):
    """What IDE go-to-definition and import-graph tools do: jedi reads this interpreter's sys.path
    (site-packages and .pth files, no import hooks run) from a project outside the checkout."""
    jedi = pytest.importorskip("jedi")
    source = f"import {module}"
    project = jedi.Project(tmp_path, environment_path=sys.prefix)
    names = jedi.Script(source, project=project).goto(1, len(source) - 1, follow_imports=True)
    assert names and names[0].module_path is not None, f"jedi cannot resolve {module}"
    assert Path(names[0].module_path).resolve() == (REPO / expected).resolve(), names[0].module_path
