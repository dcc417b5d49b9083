"""`ttc-gym bench`: evaluate agents x budgets x problems on one env (`ttc_gym.bench`)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from ttc_gym.cli.args import key_value

BENCH_EPILOG = """\
agents: a registered name with optional arguments (NAME[:ARGS], ARGS = comma-separated values then
key=value pairs), or a factory by import path (package.module:factory[:ARGS]) called as
factory(env, *args, **kwargs). `ttc-gym bench --list-agents` lists the names. Examples:
  oracle  q-learning:steps=1000000  ppo  ppo:/path/model.zip  answer-after:3
  answer-when-confident:0.8,patience=3  never-verify  random                   (meta-action envs)
  llm  think-until-budget  budget-forcing:4  stop-when-confident:0.5  majority-vote:3  (TTC-Math-v0)

budgets: H (episodes), H:C0 (episodes and tokens) or :C0 (tokens), e.g. --budgets 2 4 8 or 4:2048.

examples:
  ttc-gym bench                                   # TTC-Math-v0, default model, 4 strategies (<5 min on CPU)
  ttc-gym bench --env TTC-Sim-v0                  # oracle, Q-learning, PPO, heuristics (<1 min)
  ttc-gym bench --env TTC-Sim-v0 --budgets 4 10 --problems 200 --agents oracle answer-after:2
  ttc-gym bench --resume                          # continue a killed run where it stopped
  ttc-gym bench --ray --ray-workers 8             # shard the problems over 8 local Ray workers
  ttc-gym bench --ray --ray-address auto          # ... over the Ray cluster set up with `ray start`

output folder (--out, default bench_out/ENV_ID): results.jsonl (one line per agent, budget and problem,
written as each finishes), bench_config.json, summary.json, summary.csv, table.txt,
accuracy_vs_tokens.png, j_curves.png, regret.png (and maj_at_k.png when the env grades forced answers).
One run at a time per folder (a second one stops at once); --overwrite keeps the old results.jsonl as
results.jsonl.bak-DATE.
"""


def cmd_bench(args: argparse.Namespace) -> int:
    from ttc_gym.bench import AGENTS, BenchConfig, agent_arguments, prepare, run_bench
    from ttc_gym.bench import OutputFolderBusy, OutputNotWritten

    if args.list_agents:  # the arguments and their defaults come from each factory's signature
        width = max(len(name) for name in AGENTS)
        for entry in AGENTS.values():
            try:
                arguments = agent_arguments(entry.entry_point)
            except (ImportError, AttributeError, TypeError, ValueError) as err:
                arguments = f"arguments unavailable: {err}"
            where = f"  [{', '.join(entry.envs)}]" if entry.envs else ""
            print(f"{entry.name:<{width}}  {entry.summary}" + (f" ({arguments})" if arguments else "") + where)
        return 0
    config = config_from_args(args)
    executor_kwargs = {}
    if args.ray or args.ray_workers is not None or args.ray_address is not None:
        try:
            from ttc_gym.bench.ray_executor import ray_executor

            executor_kwargs["executor"] = ray_executor(num_workers=args.ray_workers, address=args.ray_address)
        except (ValueError, TypeError, ImportError) as err:
            print(f"ttc-gym bench: error: {err}", file=sys.stderr)
            return 2
    try:  # every check before any compute
        plan = prepare(config, resume=args.resume, overwrite=args.overwrite)
    except (ValueError, TypeError, OSError, ImportError, AttributeError, OutputFolderBusy) as err:
        print(f"ttc-gym bench: error: {err}", file=sys.stderr)
        return 2
    total = len(plan.agents) * len(plan.budgets) * plan.num_problems
    left = total - len(plan.done & {item.key for item in plan.work_items()})
    print(
        f"ttc-gym bench: {plan.env_id}, {len(plan.agents)} agents x {len(plan.budgets)} budgets "
        f"({', '.join(plan.budget_labels)}) x {plan.num_problems} problems = {total} runs"
        + (f", {total - left} already done" if left < total else "")
        + f" -> {plan.out_dir}/",
        file=sys.stderr,
    )
    try:
        result = run_bench(
            config, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
            plots=not args.no_plots, **executor_kwargs,
        )
    except KeyboardInterrupt:
        print(
            f"\nttc-gym bench: interrupted; finished problems are in {plan.out_dir}/results.jsonl. "
            f"Rerun with --resume to continue.",
            file=sys.stderr,
        )
        return 130
    except OutputNotWritten as err:  # a full disk, a file made read-only: what is saved, how to go on
        print(f"\nttc-gym bench: error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        from ttc_gym.bench.ray_executor import WorkersLost

        if not isinstance(err, WorkersLost):
            raise  # OutputFolderBusy (another run took the folder): main() reports it
        print(f"ttc-gym bench: error: {err}", file=sys.stderr)
        return 1
    names = ", ".join(sorted(p.name for p in result.files.values() if p is not None))
    print(f"wrote {result.plan.out_dir}/: {names}  ({result.elapsed_s:.1f}s)", file=sys.stderr)
    return 0


# The options that set BenchConfig's fields: (field, option, argparse arguments). Their help text and
# defaults are the config's own, so the command line and the Python API cannot disagree.
CONFIG_OPTIONS = (
    ("env_id", "--env", {"metavar": "ID"}),
    ("agents", "--agents", {"nargs": "+", "metavar": "SPEC"}),
    ("budgets", "--budgets", {"nargs": "+", "metavar": "B"}),
    ("num_problems", "--problems", {"type": int, "metavar": "N"}),
    ("base_seed", "--seed", {"type": int}),
    ("env_kwargs", "--env-kwarg", {"action": "append", "type": key_value, "metavar": "KEY=VALUE"}),
    ("j_star", "--j-star", {"type": float, "metavar": "X"}),
    ("j_star_from", "--j-star-from", {"metavar": "SOURCE"}),
    ("rank_by", "--rank-by", {"metavar": "METRIC"}),
    ("out_dir", "--out", {"metavar": "DIR"}),
)


def add_config_options(p: argparse.ArgumentParser) -> None:
    """One option per BenchConfig field (`CONFIG_OPTIONS`), help and default from the field."""
    from ttc_gym.bench.config import BenchConfig

    fields = BenchConfig.__dataclass_fields__
    for name, option, extra in CONFIG_OPTIONS:
        f = fields[name]
        default = None if f.default is dataclasses.MISSING or f.default == () else f.default
        shown = f" (default: {default})" if default is not None else ""
        repeat = " (repeatable)" if extra.get("action") == "append" else ""
        p.add_argument(option, dest=name, default=default, help=f.metadata["help"] + shown + repeat, **extra)


def config_from_args(args: argparse.Namespace):
    """The BenchConfig of the parsed options."""
    from ttc_gym.bench.config import BenchConfig

    values = {name: getattr(args, name) for name, _, _ in CONFIG_OPTIONS}
    values["agents"], values["budgets"] = tuple(values["agents"] or ()), tuple(values["budgets"] or ())
    values["env_kwargs"] = dict(values["env_kwargs"] or ())
    return BenchConfig(**values)


def add_bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="benchmark agents x budgets x problems: table, results.jsonl, summary, plots",
        description="Evaluate agents on an env over budgets and problems (same seeds for every agent), "
        "print a ranked table with 95% intervals, and write results, a summary and plots.",
        epilog=BENCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_options(p)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished problems")
    group.add_argument("--overwrite", action="store_true", help="start over in --out, keeping the old results as results.jsonl.bak-DATE")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list-agents", action="store_true", help="list the registered agent names and exit")
    p.add_argument("--ray", action="store_true",
                   help="shard the problems over Ray workers, each with its own env, agents and engine "
                   "(needs pip install 'ttc-gym[ray]'; one GPU per worker on a GPU cluster when the engine "
                   "is vllm:MODEL)")
    p.add_argument("--ray-workers", type=int, metavar="N",
                   help="Ray workers to start (implies --ray; default: one per CPU of the cluster, or per GPU)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="Ray cluster to join: 'auto' (started with `ray start`), HOST:6379 or ray://HOST:10001 "
                   "(implies --ray; default: a local Ray)")
    p.set_defaults(func=cmd_bench)
