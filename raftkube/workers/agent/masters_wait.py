"""Startup steps that need the masters: retried while no master answers.

An agent started while the masters elect a leader, restart, or cannot be reached must wait
for them, as a kubelet does, not exit: a worker host whose agent exited stays NotReady
until someone restarts it (the chaos suite's agent respawned during a leader kill did).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from raftkube import apierrors
from raftkube.logging_config import get_logger

log = get_logger(__name__)
T = TypeVar("T")

RETRYABLE = (apierrors.Unavailable, apierrors.UnknownOutcome)


def until_masters_answer(action: Callable[[], T], stop: threading.Event, what: str,
                         first_wait: float = 0.5, max_wait: float = 5.0) -> T:
    """`action()`, retried with backoff (`first_wait` doubling up to `max_wait`) while it
    fails because no master answered (Unavailable) or the outcome is unknown. Other API
    errors propagate at once. Raises apierrors.Unavailable once `stop` is set."""
    wait = first_wait
    attempt = 0
    while True:
        attempt += 1
        try:
            return action()
        except RETRYABLE as e:
            log.warning("masters not answering; retrying", step=what, attempt=attempt,
                        retry_in=round(wait, 1), error=str(e)[:200])
            if stop.wait(wait):
                raise apierrors.Unavailable(f"{what}: stopped while waiting for the "
                                            "masters") from e
            wait = min(max_wait, wait * 2)
