"""Benchmark agents x budgets x problems on a ttc-gym env (`ttc-gym bench`).

    from ttc_gym.bench import BenchConfig, run_bench
    result = run_bench(BenchConfig(env_id="TTC-Sim-v0", budgets=(2, 4, 10), num_problems=500))
    result.summary["rows"][0]        # top-ranked agent at the first budget

Nothing heavy is imported here: agents are named by strings resolved when a run starts.
"""

from ttc_gym.bench.agent_registry import (
    AGENTS,
    AgentEntry,
    AgentSpec,
    NotAnAgent,
    agent_arguments,
    build_agent,
    check_agent_spec,
    parse_agent_spec,
    register_agent,
)
from ttc_gym.bench.profiles import PROFILES, EnvProfile, profile_for
from ttc_gym.bench.config import BenchConfig, parse_budget
from ttc_gym.bench.evaluator import Executor, ItemEvaluator, serial_executor
from ttc_gym.bench.folder_lock import OutputFolderBusy
from ttc_gym.bench.plan import BenchPlan, WorkItem, prepare
from ttc_gym.bench.runner import BenchResult, OutputNotWritten, run_bench

__all__ = [
    "AGENTS", "AgentEntry", "AgentSpec", "BenchConfig", "BenchPlan", "BenchResult", "EnvProfile", "Executor",
    "ItemEvaluator", "NotAnAgent", "OutputFolderBusy", "OutputNotWritten", "PROFILES", "WorkItem", "agent_arguments", "build_agent", "check_agent_spec", "parse_agent_spec",
    "parse_budget", "prepare", "profile_for", "register_agent", "run_bench", "serial_executor",
]
