"""The local terminal of an interactive `exec -it`: raw mode while the session runs (keys,
Ctrl-C included, go to the remote command as typed) and its size, sent on every change.

Contract: `interactive_terminal` restores the terminal's settings and the SIGWINCH handler
when the block ends, however it ends. Call it from the main thread (signal handlers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import termios
import tty
from collections.abc import Callable, Iterator


def terminal_size(fd: int) -> tuple[int, int] | None:
    """(rows, cols) of the terminal on `fd`; None when it does not say (0x0)."""
    size = os.get_terminal_size(fd)
    return (size.lines, size.columns) if size.lines and size.columns else None


@contextlib.contextmanager
def interactive_terminal(fd: int, on_resize: Callable[[int, int], None]) -> Iterator[None]:
    """Raw mode on `fd`; `on_resize(rows, cols)` after each SIGWINCH."""
    saved = termios.tcgetattr(fd)

    def resized(_signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            size = terminal_size(fd)
            if size is not None:
                on_resize(*size)

    previous = signal.signal(signal.SIGWINCH, resized)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)
