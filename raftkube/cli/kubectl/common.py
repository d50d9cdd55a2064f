"""What every raftkubectl command shares: the --config / -n flags, building the Client,
turning errors into one readable line and an exit code, colours only on a terminal."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from raftkube import apierrors
from raftkube.client import Client, ClientOptions, RetryConfig
from raftkube.objects.errors import ManifestError
from raftkube.objects.registry import UnknownKind
from raftkube.objects.selectors import SelectorError
from raftkube.security.client_config import ClientConfigError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A user-facing failure; the message is printed as `error: <message>`."""


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="client config file (default: $RAFTKUBECONFIG, else "
                             "~/.raftkube/config)")


def add_namespace_flags(parser: argparse.ArgumentParser, all_namespaces: bool = True) -> None:
    parser.add_argument("-n", "--namespace", default=None,
                        help="namespace (default: the client's, 'default')")
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true",
                            help="across all namespaces")


def make_client(args: argparse.Namespace) -> Client:
    """The SDK client for the --config file and -n namespace of `args`."""
    # Read-your-writes across invocations, whichever master each one reaches.
    options = ClientOptions(namespace=getattr(args, "namespace", None) or "default",
                            linearizable_reads=True,
                            retry=RetryConfig(max_attempts=6, deadline=30.0))
    return Client.from_config(getattr(args, "config", None), options=options)


def colour(text: str, code: str, stream: TextIO) -> str:
    """`text` in an ANSI colour when `stream` is a terminal and NO_COLOR is unset."""
    if not stream.isatty() or os.environ.get("NO_COLOR"):
        return text
    return f"\033[{code}m{text}\033[0m"


def error_lines(error: BaseException) -> list[str]:
    """The `error: ...` lines for a failure (one per problem, each on one line)."""
    if isinstance(error, ManifestError):
        return [f"error: {p}" for p in error.problems]
    if isinstance(error, apierrors.ApiError):
        kind = type(error).__name__
        message = " ".join(error.message.split())
        if isinstance(error, apierrors.Invalid | apierrors.NotFound | apierrors.AlreadyExists
                      | apierrors.Conflict | apierrors.Forbidden):
            return [f"Error from server ({kind}): {message}"]
        return [f"error: {kind}: {message}"]
    return [f"error: {' '.join(str(error).split())}"]


HANDLED = (CommandError, apierrors.ApiError, ManifestError, ClientConfigError, UnknownKind,
           SelectorError, FileNotFoundError)


def command(func: Callable[[argparse.Namespace], int | None]) -> Callable[..., int]:
    """Wrap a command: expected failures print readable lines on stderr and exit 1."""

    @functools.wraps(func)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(func(args) or EXIT_OK)
        except HANDLED as e:
            for line in error_lines(e):
                print(colour(line, "31", sys.stderr), file=sys.stderr)
            return EXIT_ERROR

    return wrapped


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `15m`, `2h`, `1d`, `1h30m`; CommandError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    total, number = 0.0, ""
    for ch in text.strip():
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in units and number:
            total += float(number) * units[ch]
            number = ""
        else:
            raise CommandError(f"invalid duration {text!r} (use e.g. 90s, 15m, 2h, 1d)")
    if number:
        total += float(number)
    if total <= 0:
        raise CommandError(f"invalid duration {text!r}: must be positive")
    return total


def print_out(text: str, stream: Any = None) -> None:
    """Write `text` to stdout (as is: tables end with their own newline)."""
    (stream or sys.stdout).write(text)
    (stream or sys.stdout).flush()
