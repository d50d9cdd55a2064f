"""Runs the leader-only loops (scheduler, controllers, node lifecycle) while this master leads.

```
 store leadership callback ──> queue ──> runner thread ──start──> loop threads (one per loop)
 (Raft thread, must not block)             │  on loss: stop event set, threads joined
```

Contract:
- Loops start after this master becomes Raft leader and are stopped (their stop event set,
  then joined with a bound) as soon as it stops leading. Each leadership term gets fresh loop
  instances, so no state leaks from one term into the next.
- The store's callback is cheap: it only queues the change; the runner thread does the work.
- A loop that raises is logged and restarted after `restart_backoff` for as long as the term
  lasts; it never takes the runner down.
- Correctness never depends on this runner alone: every write a loop makes is a
  compare-and-swap on resourceVersion, so a deposed leader that is slow to stop cannot
  overwrite newer state.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from raftkube.logging_config import get_logger

log = get_logger(__name__)


class LeaderLoop(Protocol):
    """One control loop. `run` returns when `stop` is set (promptly: within a second)."""

    name: str

    def run(self, stop: threading.Event) -> None: ...


LoopFactory = Callable[[int], LeaderLoop]
"""Builds a fresh loop for a leadership term (the argument is the Raft term)."""


class LeadershipSource(Protocol):
    """What the runner needs from the store."""

    def add_leadership_listener(self, callback: Callable[[bool, int], None]) -> None: ...


@dataclass(frozen=True)
class LeaderRunnerConfig:
    """Timing of the leader-only runner.

    stop_timeout: seconds to wait for each loop thread to return after its stop event is set.
    restart_backoff: seconds before a loop that raised is started again within the same term.
    """

    stop_timeout: float = 5.0
    restart_backoff: float = 0.5


class LeaderRunner:
    """Starts the loops built by `factories` on gaining leadership; stops them on losing it."""

    def __init__(
        self,
        factories: Sequence[LoopFactory],
        config: LeaderRunnerConfig | None = None,
    ) -> None:
        self._factories = tuple(factories)
        self._config = config or LeaderRunnerConfig()
        self._changes: queue.Queue[tuple[bool, int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._term_stop: threading.Event | None = None
        self._loop_threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._leading_term: int | None = None

    # -- wiring -------------------------------------------------------------------------
    def attach(self, source: LeadershipSource) -> None:
        """Listen to `source`'s leadership changes. Call before or after `start`."""
        source.add_leadership_listener(self.on_leadership_change)

    def on_leadership_change(self, is_leader: bool, term: int) -> None:
        """Queue a leadership change; safe to call from any thread, never blocks."""
        self._changes.put((is_leader, term))

    def start(self) -> None:
        """Start the runner thread. Idempotent."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="leader-runner", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop every loop and the runner thread. Idempotent."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._changes.put(None)
        thread.join()

    # -- introspection ------------------------------------------------------------------
    @property
    def leading_term(self) -> int | None:
        """The term whose loops are running, or None when no loop runs."""
        return self._leading_term

    def running_loops(self) -> list[str]:
        """Names of the loop threads alive now."""
        return [t.name for t in self._loop_threads if t.is_alive()]

    # -- internals ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            change = self._changes.get()
            if change is None:
                self._stop_loops()
                return
            is_leader, term = change
            if is_leader and self._leading_term == term:
                continue
            self._stop_loops()
            if is_leader:
                self._start_loops(term)

    def _start_loops(self, term: int) -> None:
        stop = threading.Event()
        self._term_stop = stop
        self._leading_term = term
        self._loop_threads = []
        for factory in self._factories:
            thread = threading.Thread(
                target=self._supervise, args=(factory, term, stop), daemon=True
            )
            thread.start()
            self._loop_threads.append(thread)
        log.info("leader loops started", term=term, loops=len(self._loop_threads))

    def _supervise(self, factory: LoopFactory, term: int, stop: threading.Event) -> None:
        while not stop.is_set():
            loop = factory(term)
            threading.current_thread().name = f"leader-loop-{loop.name}"
            try:
                loop.run(stop)
                return
            except Exception:
                log.exception("leader loop failed; restarting", loop=loop.name, term=term)
                stop.wait(self._config.restart_backoff)

    def _stop_loops(self) -> None:
        if self._term_stop is None:
            return
        self._term_stop.set()
        for thread in self._loop_threads:
            thread.join(self._config.stop_timeout)
            if thread.is_alive():
                log.error("leader loop did not stop in time", thread=thread.name)
        log.info("leader loops stopped", term=self._leading_term)
        self._term_stop = None
        self._loop_threads = []
        self._leading_term = None
