"""`ttc-gym serve`: an env over OpenEnv's protocol (`ttc_gym.integrations.openenv`)."""

from __future__ import annotations

import argparse
import sys

from ttc_gym.cli.args import key_value


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
    p.add_argument("--env-kwarg", action="append", type=key_value, metavar="KEY=VALUE",
                   help="extra gym.make argument (repeatable), e.g. --env-kwarg max_episodes=4")
    p.add_argument("--idle-timeout", type=float, default=600.0, metavar="S",
                   help="close a session silent for S seconds, freeing its env (default: %(default)s; 0: never)")
    p.set_defaults(func=cmd_serve)
