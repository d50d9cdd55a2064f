"""Container logs and exec through the masters (the NodeAgent service they proxy).

Streams are not retried once data has flowed (a log or an exec session cannot be resumed
transparently); opening one moves to another master when the first cannot be reached.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import grpc

from raftkube import apierrors
from raftkube.api.v1 import node_agent_pb2


def container_ref(namespace: str, pod: str, container: str = "") -> node_agent_pb2.ContainerRef:
    return node_agent_pb2.ContainerRef(namespace=namespace, pod=pod, container=container)


def logs_request(namespace: str, pod: str, *, container: str = "", follow: bool = False,
                 tail_lines: int = 0, previous: bool = False,
                 timestamps: bool = False) -> node_agent_pb2.LogsRequest:
    if tail_lines < 0:
        raise apierrors.Invalid("tail: must be zero or positive")
    return node_agent_pb2.LogsRequest(target=container_ref(namespace, pod, container),
                                      follow=follow, tail_lines=tail_lines,
                                      previous=previous, timestamps=timestamps)


@dataclass
class ExecSession:
    """A running command: iterate `output()` for (stream, bytes); then `exit_code`.
    `send(data)` / `close_stdin()` feed stdin when the session was opened with stdin."""

    _calls: Iterator[node_agent_pb2.ExecOutput]
    _stdin: queue.Queue[node_agent_pb2.ExecInput | None]
    exit_code: int | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    def send(self, data: bytes) -> None:
        self._stdin.put(node_agent_pb2.ExecInput(stdin=data))

    def close_stdin(self) -> None:
        self._stdin.put(node_agent_pb2.ExecInput(stdin_eof=True))

    def resize(self, rows: int, cols: int) -> None:
        """Tell the command's terminal its new size (sessions opened with tty and stdin)."""
        self._stdin.put(node_agent_pb2.ExecInput(
            resize=node_agent_pb2.TerminalSize(rows=rows, cols=cols)))

    def output(self) -> Iterator[tuple[str, bytes]]:
        try:
            for message in self._calls:
                if message.HasField("exit_code"):
                    self.exit_code = message.exit_code
                if message.data:
                    yield message.stream or "stdout", message.data
        except grpc.RpcError as e:
            raise apierrors.from_rpc_error(e) from None
        finally:
            self._stdin.put(None)
            self._done.set()


def exec_inputs(start: node_agent_pb2.ExecStart,
                stdin: queue.Queue[node_agent_pb2.ExecInput | None]
                ) -> Iterator[node_agent_pb2.ExecInput]:
    """The request stream of an exec: `start`, then whatever is queued, until None."""
    yield node_agent_pb2.ExecInput(start=start)
    while True:
        item = stdin.get()
        if item is None:
            return
        yield item


def exec_start(namespace: str, pod: str, command: Iterable[str], *, container: str = "",
               tty: bool = False, stdin: bool = False,
               terminal_size: tuple[int, int] | None = None) -> node_agent_pb2.ExecStart:
    command = list(command)
    if not command:
        raise apierrors.Invalid("command: required")
    start = node_agent_pb2.ExecStart(target=container_ref(namespace, pod, container),
                                     command=command, tty=tty, stdin=stdin)
    if terminal_size is not None:
        rows, cols = terminal_size
        if not (0 < rows < 65536 and 0 < cols < 65536):
            raise apierrors.Invalid(f"terminal_size: {rows}x{cols} is out of range")
        start.size.rows, start.size.cols = rows, cols
    return start


@dataclass
class PortForwardStream:
    """One TCP connection relayed to a pod's port: `send(data)`, `close_write()`, and
    iterate `received()` for the bytes the pod sends until it closes."""

    _calls: Iterator[node_agent_pb2.PortForwardFrame]
    _outgoing: queue.Queue[node_agent_pb2.PortForwardFrame | None]

    def send(self, data: bytes) -> None:
        self._outgoing.put(node_agent_pb2.PortForwardFrame(data=data))

    def close_write(self) -> None:
        self._outgoing.put(node_agent_pb2.PortForwardFrame(close=True))
        self._outgoing.put(None)

    def received(self) -> Iterator[bytes]:
        try:
            for frame in self._calls:
                if frame.data:
                    yield frame.data
                if frame.close:
                    return
        except grpc.RpcError as e:
            raise apierrors.from_rpc_error(e) from None
        finally:
            self._outgoing.put(None)


def port_forward_frames(first: node_agent_pb2.PortForwardFrame,
                        outgoing: queue.Queue[node_agent_pb2.PortForwardFrame | None]
                        ) -> Iterator[node_agent_pb2.PortForwardFrame]:
    """The request stream of a port forward: `first`, then what is queued, until None."""
    yield first
    while True:
        frame = outgoing.get()
        if frame is None:
            return
        yield frame
