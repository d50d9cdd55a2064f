"""Re-check a saved history: `python -m raftkube.testing.chaos.check_cli FILE [--time-limit S]`.

FILE is a history written by `History.save` or a report.json written by `write_report`.
Prints the linearizability summary (register model); exit status 0 linearizable, 1 not
linearizable, 2 unknown (time limit), 3 unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from raftkube.testing.chaos.history import History
from raftkube.testing.chaos.linearizability import LINEARIZABLE, NOT_LINEARIZABLE, check

EXIT_CODES = {LINEARIZABLE: 0, NOT_LINEARIZABLE: 1}


def load_any(path: Path) -> History:
    """A History from a history file or a report.json; ValueError names what is wrong."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read JSON: {exc}") from exc
    if isinstance(data, dict) and "history" in data:
        data = data["history"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: neither a history nor a report")
    try:
        return History.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="check a recorded history")
    parser.add_argument("file", type=Path)
    parser.add_argument("--time-limit", type=float, default=300.0)
    args = parser.parse_args(argv)
    try:
        history = load_any(args.file)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    result = check(history, time_limit=args.time_limit)
    print(result.summary())
    return EXIT_CODES.get(result.outcome, 2)


if __name__ == "__main__":
    sys.exit(main())
