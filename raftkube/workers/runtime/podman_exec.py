"""Exec through Podman's REST API with stdin, tty and streamed output.

podman-py's exec_run cannot feed stdin, so this speaks the API's hijacked exec directly:

    POST /containers/{id}/exec         -> exec id
    POST /exec/{id}/start (Upgrade: tcp) -> 101, then the raw stream on the same socket:
        without tty: frames [stream(1) 0 0 0 size(4, big endian)] + data
        with tty:    plain bytes (stdout and stderr merged)
    stdin is written to the socket, then EOF (half-close; with a tty, Ctrl-D)
    POST /exec/{id}/resize?h=ROWS&w=COLS -> the tty's size (once started)
    GET /exec/{id}/json                -> ExitCode once Running is false
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence

from raftkube.workers.runtime.interface import (
    ContainerNotFoundError,
    ContainerRuntimeError,
    RuntimeUnavailableError,
    TerminalSize,
)

API_PREFIX = "/v4.0.0/libpod"
_STREAM_NAMES = {0: "stdout", 1: "stdout", 2: "stderr"}
_EOT = b"\x04"


def connect_unix(socket_path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
    except OSError as exc:
        sock.close()
        raise RuntimeUnavailableError(f"podman service at {socket_path}: {exc}") from exc
    return sock


def _request_json(socket_path: str, method: str, path: str,
                  body: object | None = None) -> tuple[int, object]:
    conn = http.client.HTTPConnection("localhost", timeout=30)
    conn.sock = connect_unix(socket_path, 30)
    try:
        payload = json.dumps(body) if body is not None else None
        conn.request(method, API_PREFIX + path, body=payload,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")
    finally:
        conn.close()


class PodmanExecSession:
    """One running exec (see `ExecSession` in interface.py)."""

    def __init__(self, socket_path: str, container_id: str, command: Sequence[str],
                 stdin: Iterator[bytes] | None, tty: bool,
                 size: TerminalSize | None = None) -> None:
        self._socket_path = socket_path
        self._tty = tty
        status, body = _request_json(socket_path, "POST", f"/containers/{container_id}/exec", {
            "AttachStdin": stdin is not None, "AttachStdout": True, "AttachStderr": True,
            "Cmd": list(command), "Tty": tty})
        if status == 404:
            raise ContainerNotFoundError(container_id)
        if status != 201 or not isinstance(body, dict):
            raise ContainerRuntimeError(f"exec in {container_id}: {_message(body)}")
        self.exec_id: str = body["Id"]
        self._sock = connect_unix(socket_path, None)
        start_body: dict[str, object] = {"Detach": False, "Tty": tty}
        if tty and size is not None:
            _check_size(size)
            start_body.update(h=size.rows, w=size.cols)  # the size before the command runs
        start = json.dumps(start_body).encode()
        self._sock.sendall(
            f"POST {API_PREFIX}/exec/{self.exec_id}/start HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Length: {len(start)}\r\n\r\n".encode() + start)
        self._buffer = self._read_head(container_id)
        self._closed = False
        if stdin is None:
            self._sock.shutdown(socket.SHUT_WR)
        else:
            threading.Thread(target=self._feed, args=(stdin,), daemon=True,
                             name=f"exec-stdin-{self.exec_id[:12]}").start()

    def _read_head(self, container_id: str) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise ContainerRuntimeError(f"exec in {container_id}: connection closed")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        code = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
        if code not in (101, 200):
            self._sock.close()
            if code == 404:
                raise ContainerNotFoundError(container_id)
            raise ContainerRuntimeError(f"exec in {container_id}: {status_line}: "
                                        f"{rest.decode(errors='replace')[:300]}")
        return rest

    def _feed(self, stdin: Iterator[bytes]) -> None:
        last = b"\n"
        try:
            for chunk in stdin:
                if chunk:
                    self._sock.sendall(chunk)
                    last = chunk
            if self._tty:
                # A terminal sees EOF as Ctrl-D at the start of a line.
                self._sock.sendall(_EOT if last.endswith(b"\n") else _EOT + _EOT)
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            return  # the process ended or the session was closed: no one reads stdin

    def output(self) -> Iterator[tuple[str, bytes]]:
        if self._tty:
            if self._buffer:
                yield "stdout", self._buffer
                self._buffer = b""
            while chunk := self._recv():
                yield "stdout", chunk
            return
        while True:
            header = self._read_exact(8)
            if header is None:
                return
            stream, size = struct.unpack(">BxxxL", header)
            data = self._read_exact(size) if size else b""
            if data is None:
                return
            if data:
                yield _STREAM_NAMES.get(stream, "stdout"), data

    def resize(self, size: TerminalSize) -> None:
        if not self._tty:
            return
        _check_size(size)
        status, body = _request_json(self._socket_path, "POST", f"/exec/{self.exec_id}/resize"
                                     f"?h={size.rows}&w={size.cols}")
        if status not in (200, 201, 204):
            raise ContainerRuntimeError(f"exec {self.exec_id}: resize: {_message(body)}")

    def set_timeout(self, seconds: float | None) -> None:
        """Bound each wait for output; a wait that exceeds it raises TimeoutError."""
        self._sock.settimeout(seconds)

    def _recv(self) -> bytes:
        try:
            return self._sock.recv(65536)
        except TimeoutError:
            raise
        except OSError:
            return b""

    def _read_exact(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            chunk = self._recv()
            if not chunk:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def exit_code(self, timeout_seconds: float = 10.0) -> int:
        deadline = time.monotonic() + timeout_seconds
        while True:
            status, body = _request_json(self._socket_path, "GET",
                                         f"/exec/{self.exec_id}/json")
            if status == 200 and isinstance(body, dict) and not body.get("Running"):
                return int(body.get("ExitCode", -1))
            if status != 200:
                raise ContainerRuntimeError(f"exec {self.exec_id}: {_message(body)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"exec {self.exec_id}: still running")
            time.sleep(0.02)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self._sock.close()


def _check_size(size: TerminalSize) -> None:
    if not (0 < size.rows < 65536 and 0 < size.cols < 65536):
        raise ContainerRuntimeError(f"terminal size {size.rows}x{size.cols} is out of range")


def _message(body: object) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("cause") or body)
    return str(body)
