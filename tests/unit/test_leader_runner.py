"""The leader-only runner starts loops on gaining leadership and stops them on losing it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from raftkube.masters.leader_runner import LeaderRunner, LeaderRunnerConfig


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class CountingLoop:
    """A loop that records the terms it ran in and counts its iterations."""

    def __init__(self, name: str, term: int, log: list[tuple[str, int, str]]) -> None:
        self.name = name
        self._term = term
        self._log = log

    def run(self, stop: threading.Event) -> None:
        self._log.append((self.name, self._term, "start"))
        while not stop.wait(0.01):
            pass
        self._log.append((self.name, self._term, "stop"))


class FakeLeadership:
    """Stands in for the store's leadership notifications in this unit test."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[bool, int], None]] = []

    def add_leadership_listener(self, callback: Callable[[bool, int], None]) -> None:
        self.listeners.append(callback)

    def set(self, is_leader: bool, term: int) -> None:
        for callback in self.listeners:
            callback(is_leader, term)


def test_loops_follow_leadership() -> None:
    log: list[tuple[str, int, str]] = []
    runner = LeaderRunner(
        [lambda term: CountingLoop("a", term, log), lambda term: CountingLoop("b", term, log)]
    )
    source = FakeLeadership()
    runner.attach(source)
    runner.start()
    try:
        assert runner.running_loops() == []
        source.set(True, 3)
        assert wait_until(lambda: len(runner.running_loops()) == 2)
        assert runner.leading_term == 3
        source.set(True, 3)  # a repeated notification for the same term changes nothing
        source.set(False, 4)
        assert wait_until(lambda: runner.running_loops() == [])
        assert runner.leading_term is None
        assert sorted(e for e in log if e[2] == "stop") == [("a", 3, "stop"), ("b", 3, "stop")]
        source.set(True, 5)
        assert wait_until(lambda: len(runner.running_loops()) == 2)
        assert runner.leading_term == 5
    finally:
        runner.stop()
    assert runner.running_loops() == []
    assert sorted(e for e in log if e[1] == 5) == [("a", 5, "start"), ("a", 5, "stop"),
                                                   ("b", 5, "start"), ("b", 5, "stop")]


def test_new_term_replaces_loops_of_old_term() -> None:
    log: list[tuple[str, int, str]] = []
    runner = LeaderRunner([lambda term: CountingLoop("a", term, log)])
    runner.start()
    try:
        runner.on_leadership_change(True, 1)
        assert wait_until(lambda: runner.leading_term == 1)
        runner.on_leadership_change(True, 2)
        assert wait_until(lambda: runner.leading_term == 2)
        assert ("a", 1, "stop") in log
    finally:
        runner.stop()


def test_failing_loop_is_restarted_within_the_term() -> None:
    attempts: list[int] = []

    class Flaky:
        name = "flaky"

        def run(self, stop: threading.Event) -> None:
            attempts.append(1)
            if len(attempts) < 3:
                raise RuntimeError("boom")
            stop.wait()

    runner = LeaderRunner([lambda term: Flaky()], LeaderRunnerConfig(restart_backoff=0.01))
    runner.start()
    try:
        runner.on_leadership_change(True, 1)
        assert wait_until(lambda: len(attempts) == 3)
        assert runner.running_loops() != []
    finally:
        runner.stop()
