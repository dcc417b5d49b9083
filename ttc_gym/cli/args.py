"""Argument types shared by the `ttc-gym` subcommands."""

from __future__ import annotations

import argparse


def key_value(text: str) -> tuple[str, object]:
    import ast

    key, eq, value = text.partition("=")
    if not eq or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value
