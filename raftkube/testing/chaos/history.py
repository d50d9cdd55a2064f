"""A thread-safe recorder of client operations and nemesis faults on one timeline.

Every client operation is recorded twice: an `invoke` event when the client sends it and a
completion event when the outcome is known:

- `ok`: the operation happened and returned `output`;
- `fail`: the operation definitely did not happen (e.g. a rejected request);
- `info`: the outcome is unknown (timeout, connection lost): it may or may not have
  happened, now or at any later time.

Faults injected by the nemesis are recorded as `start`/`stop` events on the same clock, so
a report can show which operations ran during which fault.

Times are seconds from the recorder's creation, read from a monotonic clock. Values must be
JSON-serialisable (None, bool, int, float, str, lists) for `to_json`; tuples come back as
lists, so models compare values as lists or convert them.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

INVOKE = "invoke"
OK = "ok"
FAIL = "fail"
INFO = "info"
COMPLETIONS = (OK, FAIL, INFO)

FAULT_START = "start"
FAULT_STOP = "stop"


class DefiniteFailure(Exception):
    """Raised by a workload callable when its operation certainly did not take effect.

    `History.record` records it as `fail`; any other exception is recorded as `info`
    (unknown outcome).
    """


@dataclass(frozen=True)
class OpEvent:
    """One line of the operation history.

    index: position in the whole timeline (operations and faults share the counter).
    op_id: the operation this event belongs to (shared by its invoke and completion).
    type: "invoke", "ok", "fail" or "info".
    process: the client that issued it; one client runs one operation at a time.
    f: the operation's name, e.g. "get", "put", "cas", "add".
    key: the key it touches (None for key-less operations).
    value: on invoke the input; on ok the output; otherwise None.
    time: seconds since the recorder started (monotonic).
    error: the error text of a fail/info completion, else None.
    """

    index: int
    op_id: int
    type: str
    process: int | str
    f: str
    key: Any
    value: Any
    time: float
    error: str | None = None


@dataclass(frozen=True)
class FaultEvent:
    """The start or stop of one injected fault.

    fault_id: shared by the start and the stop of the same fault.
    type: "start" or "stop".
    name: the fault's name, e.g. "kill-leader", "partition-bridge".
    detail: what exactly was done (targets, groups), JSON-serialisable.
    """

    index: int
    fault_id: int
    type: str
    name: str
    time: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """A completed (or never completed) operation: its invoke paired with its outcome.

    status: "ok", "fail" or "info"; an operation with no completion event is "info".
    complete_time: math.inf for "info" (it may take effect at any later time).
    output: the value returned on "ok", else None.
    """

    op_id: int
    process: int | str
    f: str
    key: Any
    input: Any
    output: Any
    status: str
    invoke_time: float
    complete_time: float
    error: str | None = None

    @property
    def latency(self) -> float | None:
        """Seconds from invoke to completion, None when the outcome is unknown."""
        if self.status == INFO or math.isinf(self.complete_time):
            return None
        return self.complete_time - self.invoke_time


@dataclass(frozen=True)
class FaultInterval:
    """A fault's active interval; stop is None when it was never stopped."""

    fault_id: int
    name: str
    start: float
    stop: float | None
    detail: dict[str, Any]


class History:
    """Records operations and faults; safe to call from any number of threads.

    The recorder never loses an event; it rejects misuse (completing an unknown or already
    completed operation, starting two operations at once on one process) with ValueError.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._origin = clock()
        self._lock = threading.Lock()
        self._events: list[OpEvent | FaultEvent] = []
        self._open_ops: dict[int, OpEvent] = {}
        self._busy_processes: set[int | str] = set()
        self._open_faults: dict[int, FaultEvent] = {}
        self._next_op = 0
        self._next_fault = 0

    # -- operations -------------------------------------------------------------------

    def now(self) -> float:
        """Seconds since this history started, on the recorder's clock."""
        return self._clock() - self._origin

    def invoke(self, process: int | str, f: str, key: Any = None, value: Any = None) -> int:
        """Record that `process` sends operation `f(key, value)`; returns its op id."""
        with self._lock:
            if process in self._busy_processes:
                raise ValueError(f"process {process!r} already has an operation in flight")
            op_id = self._next_op
            self._next_op += 1
            event = OpEvent(len(self._events), op_id, INVOKE, process, f, key, value, self.now())
            self._events.append(event)
            self._open_ops[op_id] = event
            self._busy_processes.add(process)
            return op_id

    def _complete(self, op_id: int, kind: str, value: Any, error: str | None) -> None:
        with self._lock:
            call = self._open_ops.pop(op_id, None)
            if call is None:
                raise ValueError(f"operation {op_id} is not in flight (unknown or completed)")
            self._busy_processes.discard(call.process)
            self._events.append(
                OpEvent(len(self._events), op_id, kind, call.process, call.f, call.key,
                        value, self.now(), error)
            )

    def ok(self, op_id: int, output: Any = None) -> None:
        """Record that operation `op_id` happened and returned `output`."""
        self._complete(op_id, OK, output, None)

    def fail(self, op_id: int, error: str = "") -> None:
        """Record that operation `op_id` certainly did not happen."""
        self._complete(op_id, FAIL, None, error)

    def info(self, op_id: int, error: str = "") -> None:
        """Record that the outcome of operation `op_id` is unknown."""
        self._complete(op_id, INFO, None, error)

    def record(self, process: int | str, f: str, key: Any, value: Any,
               call: Callable[[], Any]) -> Operation:
        """Invoke, run `call()`, and record its outcome; returns the recorded operation.

        `call` returning normally is ok (its return value is the output); raising
        DefiniteFailure is fail; any other Exception is info. The exception is not
        re-raised: the history is the outcome.
        """
        op_id = self.invoke(process, f, key, value)
        try:
            output = call()
        except DefiniteFailure as exc:
            self.fail(op_id, _error_text(exc))
        except Exception as exc:
            self.info(op_id, _error_text(exc))
        else:
            self.ok(op_id, output)
        return self._operation(op_id)

    # -- faults -----------------------------------------------------------------------

    def fault_start(self, name: str, detail: dict[str, Any] | None = None) -> int:
        """Record that fault `name` starts now; returns its fault id."""
        with self._lock:
            fault_id = self._next_fault
            self._next_fault += 1
            event = FaultEvent(len(self._events), fault_id, FAULT_START, name, self.now(),
                               dict(detail or {}))
            self._events.append(event)
            self._open_faults[fault_id] = event
            return fault_id

    def fault_stop(self, fault_id: int, detail: dict[str, Any] | None = None) -> None:
        """Record that fault `fault_id` stopped (healed); ValueError if it is not active."""
        with self._lock:
            start = self._open_faults.pop(fault_id, None)
            if start is None:
                raise ValueError(f"fault {fault_id} is not active")
            self._events.append(
                FaultEvent(len(self._events), fault_id, FAULT_STOP, start.name, self.now(),
                           dict(detail or {}))
            )

    # -- views ------------------------------------------------------------------------

    def events(self) -> list[OpEvent | FaultEvent]:
        """A snapshot copy of every event, in timeline order."""
        with self._lock:
            return list(self._events)

    def operations(self) -> list[Operation]:
        """Every operation, paired, in invoke order; in-flight ones count as "info"."""
        return pair_operations(self.events())

    def faults(self) -> list[FaultInterval]:
        """Every fault interval in start order; never-stopped ones have stop=None."""
        return pair_faults(self.events())

    def _operation(self, op_id: int) -> Operation:
        for op in self.operations():
            if op.op_id == op_id:
                return op
        raise ValueError(f"operation {op_id} not in history")

    # -- (de)serialisation ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The whole timeline as plain data (see `from_dict`)."""
        out = []
        for event in self.events():
            row = asdict(event)
            row["kind"] = "op" if isinstance(event, OpEvent) else "fault"
            out.append(row)
        return {"format": "raftkube-chaos-history/1", "events": out}

    def to_json(self) -> str:
        """JSON text of `to_dict()`."""
        return json.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        """Write `to_json()` to `path` (overwrites)."""
        Path(path).write_text(self.to_json())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Rebuild a history from `to_dict()` output; ValueError names a malformed row."""
        if data.get("format") != "raftkube-chaos-history/1":
            raise ValueError(f"history: unknown format {data.get('format')!r}")
        history = cls()
        for position, row in enumerate(data.get("events", [])):
            try:
                history._append_loaded(row)
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"history: events[{position}]: {exc}") from exc
        return history

    @classmethod
    def from_json(cls, text: str) -> History:
        """Rebuild a history from `to_json()` text."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a history written by `save`."""
        return cls.from_json(Path(path).read_text())

    def _append_loaded(self, row: dict[str, Any]) -> None:
        kind = row.get("kind")
        index = len(self._events)
        if kind == "op":
            if row["type"] not in (INVOKE, *COMPLETIONS):
                raise ValueError(f"type: {row['type']!r} is not an operation event type")
            event: OpEvent | FaultEvent = OpEvent(
                index, int(row["op_id"]), row["type"], row["process"], row["f"], row["key"],
                row["value"], float(row["time"]), row.get("error"))
            self._next_op = max(self._next_op, event.op_id + 1)
        elif kind == "fault":
            if row["type"] not in (FAULT_START, FAULT_STOP):
                raise ValueError(f"type: {row['type']!r} is not a fault event type")
            event = FaultEvent(index, int(row["fault_id"]), row["type"], row["name"],
                               float(row["time"]), dict(row.get("detail") or {}))
            self._next_fault = max(self._next_fault, event.fault_id + 1)
        else:
            raise ValueError(f"kind: {kind!r} is neither 'op' nor 'fault'")
        self._events.append(event)


def pair_operations(events: list[OpEvent | FaultEvent]) -> list[Operation]:
    """Pair invoke and completion events into Operations, in invoke order."""
    invokes: dict[int, OpEvent] = {}
    done: dict[int, OpEvent] = {}
    for event in events:
        if not isinstance(event, OpEvent):
            continue
        if event.type == INVOKE:
            invokes[event.op_id] = event
        else:
            done[event.op_id] = event
    ops = []
    for op_id, call in invokes.items():
        end = done.get(op_id)
        status = end.type if end is not None else INFO
        complete = end.time if end is not None and status != INFO else math.inf
        ops.append(Operation(
            op_id=op_id, process=call.process, f=call.f, key=call.key, input=call.value,
            output=end.value if end is not None and status == OK else None, status=status,
            invoke_time=call.time, complete_time=complete,
            error=end.error if end is not None else "no completion recorded"))
    return ops


def pair_faults(events: list[OpEvent | FaultEvent]) -> list[FaultInterval]:
    """Pair fault start and stop events into intervals, in start order."""
    starts: dict[int, FaultEvent] = {}
    stops: dict[int, FaultEvent] = {}
    for event in events:
        if isinstance(event, FaultEvent):
            (starts if event.type == FAULT_START else stops)[event.fault_id] = event
    out = []
    for fault_id, start in starts.items():
        stop = stops.get(fault_id)
        out.append(FaultInterval(fault_id, start.name, start.time,
                                 stop.time if stop else None, start.detail))
    return out


def iter_ops(history: History | list[Operation]) -> Iterator[Operation]:
    """Operations of a History or of an already paired list."""
    yield from (history.operations() if isinstance(history, History) else history)


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
