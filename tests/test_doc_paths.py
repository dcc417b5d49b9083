"""Every repository path that the docs, the README, the study reports and the code's docstrings cite
exists on disk: a reader (or an IDE) following `envs/sim.py` or `ttc_gym/training/algorithms.py` finds
it. Paths are cited by their folder on disk (`envs/`, `agents/`), not by their import name
(`ttc_gym.envs`), since the two differ (pyproject.toml's package-dir mapping; README's layout table)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP = ("ttc_gym", "envs", "agents", "examples", "tests", "docs", ".ci")
# A path under one of the repository's top folders, e.g. envs/sim.py or ttc_gym/data/micro/; not
# part of a longer path (bench_out/envs/...) or of a URL.
PATH = re.compile(r"(?<![\w./:-])((?:%s)/[\w./-]*[\w/])" % "|".join(re.escape(t) for t in TOP))
# Files whose text cites paths: the documentation and every source file.
CITING = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted((REPO / "examples").rglob("*.md")),
          *(p for top in ("ttc_gym", "envs", "agents", "examples", "tests") for p in sorted((REPO / top).rglob("*.py")))]


# Paths cited on purpose although they are not in the repository: (citing file, path) -> why.
NOT_IN_REPO = {
    ("docs/architecture.md", "envs/my_env.py"): "the file a reader writes to add an env",
}


def cited_paths(text: str) -> set[str]:
    return {m.group(1).rstrip(".") for m in PATH.finditer(text) if text[m.end():m.end() + 1] != "*"}  # not globs


def test_the_pattern_finds_paths_and_skips_import_names():
    text = "see `envs/sim.py`, ttc_gym/data/micro/ and docs/architecture.md. Not ttc_gym.envs.sim, bench_out/envs/x.py, examples/a_*.png"
    assert cited_paths(text) == {"envs/sim.py", "ttc_gym/data/micro/", "docs/architecture.md"}


def test_every_cited_path_exists():
    missing = []
    for source in CITING:
        if "__pycache__" in source.parts or source == Path(__file__).resolve():
            continue
        for path in sorted(cited_paths(source.read_text(encoding="utf-8"))):
            cited_by = source.relative_to(REPO).as_posix()
            if (cited_by, path) in NOT_IN_REPO:
                continue
            if not (REPO / path).exists():
                missing.append(f"{cited_by}: {path}")
            elif (REPO / path).parent.resolve() != (REPO / path).parent.absolute():
                missing.append(f"{cited_by}: {path} (through the link ttc_gym/envs or ttc_gym/agents: cite the folder on "
                               f"disk, {(REPO / path).resolve().relative_to(REPO)})")
    assert not missing, "paths cited but not in the repository:\n" + "\n".join(missing)
