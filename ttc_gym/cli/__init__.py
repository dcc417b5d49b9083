"""The `ttc-gym` command line: `envs`, `bench` (`cli/bench.py`), `train` (`cli/train.py`), `traces`
(`cli/traces.py`), `serve` (`cli/serve.py`)."""

from __future__ import annotations

import argparse
import sys

from ttc_gym.cli.bench import add_bench_parser
from ttc_gym.cli.serve import add_serve_parser
from ttc_gym.cli.train import add_train_parser
from ttc_gym.errors import TTCGymError
from ttc_gym.registration import ENVS


def cmd_envs(args: argparse.Namespace) -> int:
    width = max(len(e.id) for e in ENVS)
    for entry in ENVS:
        print(f"{entry.id:<{width}}  {entry.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttc-gym", description="Test-time compute of reasoning LLMs as an RL problem."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_envs = sub.add_parser("envs", help="list the registered environments, one line each")
    p_envs.set_defaults(func=cmd_envs)
    add_bench_parser(sub)
    from ttc_gym.cli.traces import add_traces_parser

    add_traces_parser(sub)
    add_serve_parser(sub)
    add_train_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "command", None) == "train":  # the trainers parse their own options
        args.trainer_argv = unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except TTCGymError as err:  # the package's own errors (a factory that built no agent, a busy folder, ...)
        print(f"ttc-gym {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
