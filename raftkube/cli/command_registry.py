"""Builds an argparse program from command modules.

Each command module exposes `register(subparsers) -> None`, which adds its sub-commands and
sets `func` on each parser to a callable `(args) -> int` returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence


def build_parser(prog: str, description: str, modules: Sequence[str]) -> argparse.ArgumentParser:
    """A parser with one sub-command tree contributed by each module in `modules`."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def run(prog: str, description: str, modules: Sequence[str], argv: Sequence[str] | None) -> int:
    """Parse `argv` and run the chosen command; print help and return 2 when none is given."""
    parser = build_parser(prog, description, modules)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
