"""The `ttc-gym` command line."""

from __future__ import annotations

import argparse
import sys

from ttc_gym.registration import ENVS


def cmd_envs(args: argparse.Namespace) -> int:
    width = max(len(e.id) for e in ENVS)
    for entry in ENVS:
        print(f"{entry.id:<{width}}  {entry.summary}")
    return 0


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


def _key_value(text: str) -> tuple[str, object]:
    import ast

    key, eq, value = text.partition("=")
    if not eq or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def cmd_bench(args: argparse.Namespace) -> int:
    from ttc_gym.bench import AGENTS, BenchConfig, agent_arguments, prepare, run_bench
    from ttc_gym.bench.agent_registry import AgentBuildError, NotAnAgent
    from ttc_gym.bench.runner import OutputFolderBusy, OutputNotWritten

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
    config = BenchConfig(
        env_id=args.env, agents=tuple(args.agents or ()), budgets=tuple(args.budgets or ()),
        num_problems=args.problems, base_seed=args.seed, env_kwargs=dict(args.env_kwarg or ()),
        j_star=args.j_star, j_star_from=args.j_star_from, rank_by=args.rank_by, out_dir=args.out,
    )
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
    # A factory refused its arguments or returned no agent; another run took the folder.
    except (NotAnAgent, AgentBuildError, OutputFolderBusy) as err:
        print(f"ttc-gym bench: error: {err}", file=sys.stderr)
        return 2
    except OutputNotWritten as err:  # a full disk, a file made read-only: what is saved, how to go on
        print(f"\nttc-gym bench: error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        from ttc_gym.bench.ray_executor import WorkersLost

        if not isinstance(err, WorkersLost):
            raise
        print(f"ttc-gym bench: error: {err}", file=sys.stderr)
        return 1
    names = ", ".join(sorted(p.name for p in result.files.values() if p is not None))
    print(f"wrote {result.plan.out_dir}/: {names}  ({result.elapsed_s:.1f}s)", file=sys.stderr)
    return 0


def add_bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="benchmark agents x budgets x problems: table, results.jsonl, summary, plots",
        description="Evaluate agents on an env over budgets and problems (same seeds for every agent), "
        "print a ranked table with 95% intervals, and write results, a summary and plots.",
        epilog=BENCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--env", default="TTC-Math-v0", metavar="ID", help="env id (default: %(default)s)")
    p.add_argument("--agents", nargs="+", metavar="SPEC", help="agent specs (default: the env's default set)")
    p.add_argument("--budgets", nargs="+", metavar="B", help="budgets H, H:C0 or :C0 (default: the env's)")
    p.add_argument("--problems", type=int, metavar="N", help="problems per agent and budget (default: the env's)")
    p.add_argument("--seed", type=int, default=0, help="problem i uses seed SEED + i (default: %(default)s)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: bench_out/ENV_ID)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out, skipping finished problems")
    group.add_argument("--overwrite", action="store_true", help="start over in --out, keeping the old results as results.jsonl.bak-DATE")
    p.add_argument("--env-kwarg", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="extra gym.make argument (repeatable), e.g. --env-kwarg heterogeneity=0.5")
    p.add_argument("--j-star", type=float, metavar="X",
                   help="comparator accuracy J* of the regrets (default: the oracle's on TTC-Sim-v0, else 1)")
    p.add_argument("--j-star-from", metavar="SOURCE",
                   help="comparator curve J*_j per problem from this run: 'best-prefix' (the best J any agent "
                   "reached within j episodes; an oracle comparator) or one of the --agents (its J curve)")
    p.add_argument("--rank-by", metavar="METRIC",
                   help="return, accuracy, maj_accuracy, maj_one_prefix, token_regret, mrt_token_regret, "
                   "episode_regret, episodes or tokens")
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


def cmd_serve(args: argparse.Namespace) -> int:
    """`ttc-gym serve ENV_ID`: serve the env over OpenEnv's protocol (ttc_gym.integrations.openenv)."""
    try:
        from ttc_gym.integrations.openenv import serve

        serve(args.env_id, dict(args.env_kwarg or ()), host=args.host, port=args.port,
              max_sessions=args.max_sessions, idle_timeout=args.idle_timeout or None)
    except (ValueError, TypeError, ImportError) as err:
        print(f"ttc-gym serve: error: {err}", file=sys.stderr)
        return 2
    return 0


def add_serve_parser(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve an env over OpenEnv's HTTP/WebSocket protocol (needs ttc-gym[openenv])",
        description="Serve ENV_ID over OpenEnv's protocol: each WebSocket session (an OpenEnv EnvClient, "
        "e.g. ttc_gym.integrations.openenv.TTCEnvClient) gets its own env; observations carry the env's info.",
    )
    p.add_argument("env_id", metavar="ENV_ID", help="a registered env id, e.g. TTC-Math-v0")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--max-sessions", type=int, default=4, metavar="N",
                   help="concurrent sessions, one env each (default: %(default)s)")
    p.add_argument("--env-kwarg", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="extra gym.make argument (repeatable), e.g. --env-kwarg max_episodes=4")
    p.add_argument("--idle-timeout", type=float, default=600.0, metavar="S",
                   help="close a session silent for S seconds, freeing its env (default: %(default)s; 0: never)")
    p.set_defaults(func=cmd_serve)


TRAIN_HELP = """\
usage: ttc-gym train [--env ENV_ID] [TRAINER OPTIONS]

Train a policy with GRPO, MRT, STaR or MRT-STaR. --env picks the trainer (default TTC-Sim-v0):
  TTC-Sim-v0   a small softmax policy on the simulator (ttc_gym.agents.training.sim_train), minutes on a CPU
  TTC-Math-v0  an LLM over TTC-Math-v0 (ttc_gym.agents.training.llm_train): checkpoints load as
               `ttc-gym bench --agents llm-checkpoint:PATH`
`ttc-gym train --env ENV_ID --help` lists that trainer's options. Example:
  ttc-gym train --env TTC-Math-v0 --algo mrt --iterations 2 --problems-per-iter 2 --group-size 2 \\
      --max-episodes 2 --out runs/mrt_cpu
"""


def cmd_train(argv: list[str]) -> int:
    """`ttc-gym train [--env ENV_ID] ...`: hand the other arguments to that env's trainer."""
    import importlib

    from ttc_gym.agents.training import TRAINERS

    env, rest, i = "TTC-Sim-v0", [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--env" and i + 1 < len(argv):
            env, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--env="):
            env = arg.partition("=")[2]
        else:
            rest.append(arg)
        i += 1
    if env not in TRAINERS:
        from ttc_gym.validation import unknown_name_error

        print(f"ttc-gym train: error: {unknown_name_error('env for training', env, TRAINERS)}", file=sys.stderr)
        return 2
    if rest in ([], ["-h"], ["--help"]) and not any(a.startswith("--env") for a in argv):
        print(TRAIN_HELP, end="")
        return 0 if rest else 2
    module, _, attr = TRAINERS[env].partition(":")
    try:
        return int(getattr(importlib.import_module(module), attr)(rest, prog=f"ttc-gym train --env {env}") or 0)
    except KeyboardInterrupt:  # Ctrl+C: one line, not a traceback (checkpoints already written stay)
        print("\nttc-gym train: interrupted.", file=sys.stderr)
        return 130


def _llm_agent(engine, **kwargs):
    """The agent that writes traces for `ttc-gym traces collect`: the LLM agent of TTC-Math-v0."""
    from ttc_gym.agents.llm import LLMAgent

    return LLMAgent(engine, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttc-gym", description="Test-time compute of reasoning LLMs as an RL problem."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_envs = sub.add_parser("envs", help="list the registered environments, one line each")
    p_envs.set_defaults(func=cmd_envs)
    add_bench_parser(sub)
    from ttc_gym.traces.commands import add_traces_parser

    add_traces_parser(sub, agent_factory=_llm_agent)
    add_serve_parser(sub)
    sub.add_parser("train", help="train a policy (GRPO, MRT, STaR, MRT-STaR) on TTC-Sim-v0 or TTC-Math-v0",
                   add_help=False)  # dispatched in main(): `ttc-gym train --help` for its options
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # the trainers parse their own options
        return cmd_train(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
