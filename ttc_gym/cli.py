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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttc-gym", description="Test-time compute of reasoning LLMs as an RL problem."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_envs = sub.add_parser("envs", help="list the registered environments, one line each")
    p_envs.set_defaults(func=cmd_envs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
