"""`ttc-gym train [--env ENV_ID] ...`: the trainer of that env (`ttc_gym.training.TRAINERS`)."""

from __future__ import annotations

import sys

TRAIN_HELP = """\
usage: ttc-gym train [--env ENV_ID] [TRAINER OPTIONS]

Train a policy with GRPO, MRT, STaR or MRT-STaR. --env picks the trainer (default TTC-Sim-v0):
  TTC-Sim-v0   a small softmax policy on the simulator (ttc_gym.training.sim_train), minutes on a CPU
  TTC-Math-v0  an LLM over TTC-Math-v0 (ttc_gym.training.llm_train): checkpoints load as
               `ttc-gym bench --agents llm-checkpoint:PATH`
`ttc-gym train --env ENV_ID --help` lists that trainer's options. Example:
  ttc-gym train --env TTC-Math-v0 --algo mrt --iterations 2 --problems-per-iter 2 --group-size 2 \\
      --max-episodes 2 --out runs/mrt_cpu
"""


def add_train_parser(sub) -> None:
    """`train` as a subcommand: `--env` picks the trainer; every other option is that trainer's own
    (`main` hands them over as `args.trainer_argv`), so `ttc-gym train --env ID --help` lists them."""
    p = sub.add_parser("train", help="train a policy (GRPO, MRT, STaR, MRT-STaR) on TTC-Sim-v0 or TTC-Math-v0",
                       add_help=False, allow_abbrev=False)
    p.add_argument("--env", default=None, metavar="ID")
    p.set_defaults(func=cmd_train, trainer_argv=())


def cmd_train(args) -> int:
    """Hand `args.trainer_argv` to the trainer of `args.env` (default TTC-Sim-v0)."""
    import importlib

    from ttc_gym.training import TRAINERS

    env, rest = args.env or "TTC-Sim-v0", list(args.trainer_argv)
    if env not in TRAINERS:
        from ttc_gym.validation import unknown_name_error

        print(f"ttc-gym train: error: {unknown_name_error('env for training', env, TRAINERS)}", file=sys.stderr)
        return 2
    if rest in ([], ["-h"], ["--help"]) and args.env is None:
        print(TRAIN_HELP, end="")
        return 0 if rest else 2
    module, _, attr = TRAINERS[env].partition(":")
    try:
        return int(getattr(importlib.import_module(module), attr)(rest, prog=f"ttc-gym train --env {env}") or 0)
    except KeyboardInterrupt:  # Ctrl+C: one line, not a traceback (checkpoints already written stay)
        print("\nttc-gym train: interrupted.", file=sys.stderr)
        return 130
