"""Which master to call next: sticky on the one that works, moves on failure, follows the
leader hint. Thread-safe; no I/O.

    masters [a, b, c]       current = a
    a fails          ->     current = b   (round robin from the failed one)
    hint "c" arrives ->     current = c   (an address outside the list is added to it)
"""

from __future__ import annotations

import threading
from collections.abc import Sequence


class Endpoints:
    """The masters a client knows, and the one it is using now."""

    def __init__(self, addresses: Sequence[str], start: int = 0) -> None:
        if not addresses:
            raise ValueError("a client needs at least one master address")
        self._addresses = list(dict.fromkeys(addresses))
        self._current = start % len(self._addresses)
        self._lock = threading.Lock()

    @property
    def addresses(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._addresses)

    def current(self) -> str:
        """The master to call now."""
        with self._lock:
            return self._addresses[self._current]

    def failed(self, address: str) -> str:
        """`address` did not work: move to the next master (unless another call already
        moved away from it) and return the master to call now."""
        with self._lock:
            if self._addresses[self._current] == address:
                self._current = (self._current + 1) % len(self._addresses)
            return self._addresses[self._current]

    def prefer(self, address: str) -> str:
        """Use `address` (a leader hint) from now on; unknown addresses are added."""
        if not address:
            return self.current()
        with self._lock:
            if address not in self._addresses:
                self._addresses.append(address)
            self._current = self._addresses.index(address)
            return address
