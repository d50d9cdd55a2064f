"""Runs (or finds) the Podman API service a worker's runtime talks to.

    PodmanService.start()
        socket answers /_ping?  --yes--> use it (not ours: stop() leaves it alone)
              | no
        spawn [nsenter --net=/run/netns/NS] podman system service --time=0 unix://SOCK
        with CONTAINERS_CONF / CONTAINERS_STORAGE_CONF for a per-host store
        wait until /_ping answers (or the child dies -> PodmanServiceError with its log)

`ip netns exec` breaks Podman (it remounts /sys and hides the cgroups), so a service for a
host inside a network namespace is started through `nsenter --net=` instead.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class PodmanServiceError(Exception):
    """The service could not be started or reached; the message says why."""


@dataclass(frozen=True)
class PodmanServiceConfig:
    """How to run one Podman API service.

    socket_path: the unix socket to serve on (its directory is created).
    containers_conf: CONTAINERS_CONF for the service (None = the machine's default).
    storage_conf: CONTAINERS_STORAGE_CONF for the service (None = the machine's default).
    netns: run the service inside /run/netns/<netns> (None = this process's namespace).
    podman_binary: the podman executable.
    start_timeout_seconds: how long to wait for the socket to answer.
    log_path: where the service's stdout/stderr go (None = <socket>.log).
    reuse_existing: use a service already answering on the socket instead of failing.
    extra_env: more environment for the service process.
    """

    socket_path: Path
    containers_conf: Path | None = None
    storage_conf: Path | None = None
    netns: str | None = None
    podman_binary: str = "podman"
    start_timeout_seconds: float = 15.0
    log_path: Path | None = None
    reuse_existing: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The podman-py base URL for this socket."""
        return f"unix://{self.socket_path}"


def ping(socket_path: Path, timeout_seconds: float = 2.0) -> bool:
    """Whether a Podman service answers GET /_ping on `socket_path`."""
    if not socket_path.exists():
        return False
    conn = _UnixHTTPConnection(str(socket_path), timeout_seconds)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class PodmanService:
    """One Podman API service process (or an existing one found on the socket).

    Contract: start() is idempotent and returns once the socket answers; stop() is
    idempotent, stops only a process this object started (SIGTERM, then SIGKILL after 10 s)
    and removes its socket file.
    """

    def __init__(self, config: PodmanServiceConfig) -> None:
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def pid(self) -> int | None:
        """PID of the service this object started (None when found or not started)."""
        return self._process.pid if self._process else None

    @property
    def owned(self) -> bool:
        return self._process is not None

    def command(self) -> list[str]:
        """The argv that runs the service."""
        argv = [self.config.podman_binary, "system", "service", "--time=0",
                f"unix://{self.config.socket_path}"]
        if self.config.netns:
            nsenter = shutil.which("nsenter") or "nsenter"
            argv = [nsenter, f"--net=/run/netns/{self.config.netns}", *argv]
        return argv

    def environment(self) -> dict[str, str]:
        """The service's environment: ours plus the per-host store configs."""
        env = dict(os.environ)
        if self.config.containers_conf:
            env["CONTAINERS_CONF"] = str(self.config.containers_conf)
        if self.config.storage_conf:
            env["CONTAINERS_STORAGE_CONF"] = str(self.config.storage_conf)
        env.update(self.config.extra_env)
        return env

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        sock = self.config.socket_path
        if ping(sock):
            if self.config.reuse_existing:
                return
            raise PodmanServiceError(f"{sock}: a Podman service already answers there")
        if self.config.netns and not Path(f"/run/netns/{self.config.netns}").exists():
            raise PodmanServiceError(f"netns {self.config.netns!r}: /run/netns/"
                                     f"{self.config.netns} does not exist")
        sock.parent.mkdir(parents=True, exist_ok=True)
        if sock.exists():
            sock.unlink()  # stale socket of a dead service
        log_path = self.config.log_path or sock.with_suffix(".log")
        self._log_file = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            self.command(), env=self.environment(), stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=sock.parent)  # conmon leaves files (e.g. "oom") in its working directory
        deadline = time.monotonic() + self.config.start_timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._cleanup()
                raise PodmanServiceError(
                    f"podman service exited with {code}: {_tail(log_path)}")
            if ping(sock, timeout_seconds=1.0):
                return
            time.sleep(0.05)
        self.stop()
        raise PodmanServiceError(f"podman service on {sock} did not answer within "
                                 f"{self.config.start_timeout_seconds} s: {_tail(log_path)}")

    def stop(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._cleanup()
        if self.config.socket_path.exists() and not ping(self.config.socket_path, 0.5):
            self.config.socket_path.unlink(missing_ok=True)

    def _cleanup(self) -> None:
        self._process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> PodmanService:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _tail(path: Path, limit: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip()
    except OSError:
        return "(no log)"
