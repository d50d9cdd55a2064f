"""`version`: print the raftkube version."""

from __future__ import annotations

import argparse

import raftkube


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("version", help="print the raftkube version")
    parser.set_defaults(func=_version)


def _version(_args: argparse.Namespace) -> int:
    print(f"raftkube {raftkube.__version__}")
    return 0
