"""until_masters_answer: an agent's startup waits out masters that do not answer."""

from __future__ import annotations

import threading

import pytest

from raftkube import apierrors
from raftkube.workers.agent.masters_wait import until_masters_answer


def test_retries_while_no_master_answers_then_returns() -> None:
    answers = iter([apierrors.Unavailable("no master answered"),
                    apierrors.UnknownOutcome("timeout"), "node"])

    def action() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert until_masters_answer(action, threading.Event(), "test", first_wait=0.01) == "node"


def test_other_api_errors_are_not_retried() -> None:
    calls = []

    def action() -> None:
        calls.append(1)
        raise apierrors.Forbidden("nodes is forbidden")

    with pytest.raises(apierrors.Forbidden):
        until_masters_answer(action, threading.Event(), "test", first_wait=0.01)
    assert calls == [1]


def test_stop_ends_the_wait() -> None:
    stop = threading.Event()

    def action() -> None:
        stop.set()
        raise apierrors.Unavailable("no master answered")

    with pytest.raises(apierrors.Unavailable, match="stopped while waiting"):
        until_masters_answer(action, stop, "test", first_wait=5.0)
