"""A dataclass config that doubles as a command line: one `--field-name` option per field, its help
text from `field(metadata={"help": ..., "choices": ...})`, parsed and validated by the dataclass.

A command line that does not parse raises `ConfigError` (a ValueError) with a one-line message,
instead of argparse's usage block and SystemExit, so that a trainer's `main` reports every bad
input the same way: `error: ...` on stderr, exit code 2. `--help` still prints and exits."""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

from ttc_gym.errors import TTCGymError

T = TypeVar("T")


class ConfigError(TTCGymError, ValueError):
    """A command line or config that cannot run, with a one-line message saying what was expected."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise ConfigError instead of printing usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message} (see {self.prog} --help)")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) of an annotation such as `int | None`."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _converter(tp: Any, optional: bool):
    origin = typing.get_origin(tp) or tp

    def convert(text: str):
        if optional and text.lower() in ("none", "null", ""):
            return None
        if origin is dict:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise argparse.ArgumentTypeError(
                    f"expected a JSON object such as '{{\"name\": 4}}', got {text!r} ({err})") from None
            if not isinstance(value, dict):
                raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"name\": 4}}', got {text!r}")
            return value
        if origin in (tuple, list):
            try:
                return tuple(json.loads(f"[{text}]"))
            except json.JSONDecodeError as err:
                raise argparse.ArgumentTypeError(f"expected comma-separated JSON values, got {text!r} ({err})") from None
        try:
            return origin(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {getattr(origin, '__name__', 'a value')}, got {text!r}") from None

    convert.__name__ = getattr(origin, "__name__", "value")
    return convert


def build_parser(cls: type, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog, description=description or (cls.__doc__ or "").strip().split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_"):
            continue
        tp, optional = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if tp is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            parser.add_argument(
                flag, dest=f.name, type=_converter(tp, optional), default=default, help=help_text,
                choices=f.metadata.get("choices"),
                metavar=None if f.metadata.get("choices") else f.name.upper(),
            )
    return parser


def parse_config(cls: type[T], argv: Sequence[str] | None = None, prog: str | None = None) -> T:
    """Parse `argv` into an instance of the dataclass `cls` (its __post_init__ validates it); a
    command line that does not parse raises ConfigError."""
    args = build_parser(cls, prog=prog).parse_args(argv)
    return cls(**vars(args))
