"""Bench tables mark the agents that read gold-derived information (`AgentEntry.oracle`,
docs/formulation.md §3), and the default agent lists are gold-free apart from such marked ones."""

from __future__ import annotations

import io
import re

from rich.console import Console

from ttc_gym.bench import AGENTS, PROFILES, BenchConfig, parse_agent_spec, run_bench
from ttc_gym.bench.report import ORACLE_MARK


def test_oracle_agents_are_marked_in_the_table_and_the_summary(tmp_path):
    config = BenchConfig(env_id="TTC-Sim-v0", agents=("answer-when-confident", "oracle-answer-when-confident"), budgets=(3,),
                         num_problems=4, out_dir=str(tmp_path / "out"))
    result = run_bench(config, progress=False, plots=False, console=Console(file=io.StringIO(), width=200))
    flags = {r["agent"]: r["oracle"] for r in result.summary["rows"]}
    assert flags == {"answer-when-confident": False, "oracle-answer-when-confident": True}
    table = (tmp_path / "out" / "table.txt").read_text()
    rows = [line for line in table.splitlines() if re.search(r"\d.*answer-when-confident", line)]
    assert len(rows) == 2 and all((ORACLE_MARK in line) == ("oracle-answer" in line) for line in rows), rows
    assert f"{ORACLE_MARK} = oracle: decides from gold-derived information" in table


def test_default_agents_are_gold_free_or_marked_oracles():
    for profile in PROFILES.values():
        names = [parse_agent_spec(a).name for a in profile.default_agents]
        oracles = [n for n in names if AGENTS[n].oracle]
        assert oracles and len(oracles) < len(names), (profile.env_id, names)
