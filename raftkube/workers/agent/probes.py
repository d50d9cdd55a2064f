"""Container probes run by the agent: liveness, readiness and startup; exec, HTTP GET, TCP.

    ProbeWorker (one thread per probe of a running container instance)
        wait initialDelaySeconds; every periodSeconds: run the handler (timeoutSeconds)
        ProbeCounter.record(ok) -> result flips after successThreshold / failureThreshold
        on a flip: on_change(container_id, kind, result)

Startup gates the others: liveness and readiness workers start only once the startup
probe has succeeded (or when there is none). `ProbeCounter` is pure; handlers do I/O.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from raftkube.api.v1 import pod_pb2
from raftkube.workers.runtime.interface import ContainerRuntimeError, Runtime

LIVENESS, READINESS, STARTUP = "liveness", "readiness", "startup"


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def of(cls, probe: pod_pb2.Probe, kind: str) -> ProbeTiming:
        """Kubernetes defaults: period 10 s, timeout 1 s, success 1, failure 3 (liveness
        and startup need successThreshold 1)."""
        success = probe.success_threshold if probe.HasField("success_threshold") else 1
        return cls(
            initial_delay=float(probe.initial_delay_seconds),
            period=float(probe.period_seconds if probe.HasField("period_seconds") else 10),
            timeout=float(probe.timeout_seconds if probe.HasField("timeout_seconds") else 1),
            success_threshold=1 if kind != READINESS else max(1, success),
            failure_threshold=max(1, probe.failure_threshold
                                  if probe.HasField("failure_threshold") else 3))


@dataclass
class ProbeCounter:
    """Consecutive results -> the probe's verdict. Pure state machine.

    result: None until decided; readiness starts False, liveness True (a container is alive
    until proven otherwise), startup False.
    """

    timing: ProbeTiming
    result: bool | None = None
    successes: int = 0
    failures: int = 0

    def record(self, ok: bool) -> bool:
        """Count one outcome; return whether `result` changed."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.timing.success_threshold and self.result is not True:
                self.result = True
                return True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= self.timing.failure_threshold and self.result is not False:
                self.result = False
                return True
        return False


def _port(value: pod_pb2.IntOrString, container: pod_pb2.Container) -> int:
    if value.WhichOneof("value") == "int_val":
        return value.int_val
    for port in container.ports:
        if port.name == value.str_val:
            return port.container_port
    raise ValueError(f"port {value.str_val!r} is not a named port of the container")


def run_probe(probe: pod_pb2.Probe, container: pod_pb2.Container, runtime: Runtime,
              container_id: str, pod_ip: str, timeout: float) -> tuple[bool, str]:
    """Run the probe's handler once: (ok, message). Never raises."""
    try:
        if probe.HasField("exec"):
            result = runtime.exec(container_id, list(probe.exec.command),
                                  timeout_seconds=timeout)
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            return result.exit_code == 0, (f"exit code {result.exit_code}: {output[:200]}"
                                           if result.exit_code else "")
        if probe.HasField("http_get"):
            get = probe.http_get
            host = get.host or pod_ip
            port = _port(get.port, container)
            conn_cls = (http.client.HTTPSConnection if get.scheme.upper() == "HTTPS"
                        else http.client.HTTPConnection)
            conn = conn_cls(host, port, timeout=timeout)
            try:
                headers = {h.name: h.value for h in get.http_headers}
                conn.request("GET", get.path or "/", headers=headers)
                response = conn.getresponse()
                response.read(1024)
                ok = 200 <= response.status < 400
                return ok, "" if ok else f"HTTP probe failed with statuscode: {response.status}"
            finally:
                conn.close()
        if probe.HasField("tcp_socket"):
            host = probe.tcp_socket.host or pod_ip
            port = _port(probe.tcp_socket.port, container)
            with socket.create_connection((host, port), timeout=timeout):
                return True, ""
        return False, "probe has no handler"
    except TimeoutError:
        return False, f"probe timed out after {timeout:g}s"
    except (OSError, http.client.HTTPException, ContainerRuntimeError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}"


ChangeCallback = Callable[[str, str, bool, str], None]


class ProbeWorker:
    """Runs one probe of one container instance until stopped (see module docstring)."""

    def __init__(self, kind: str, probe: pod_pb2.Probe, container: pod_pb2.Container,
                 runtime: Runtime, container_id: str, pod_ip: str,
                 on_change: ChangeCallback, started_wall_delay: float = 0.0) -> None:
        self.kind = kind
        self.probe = probe
        self.container = container
        self.runtime = runtime
        self.container_id = container_id
        self.pod_ip = pod_ip
        self.counter = ProbeCounter(ProbeTiming.of(probe, kind))
        self.on_change = on_change
        self._delay = max(0.0, self.counter.timing.initial_delay - started_wall_delay)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"probe-{kind}-{container_id[:8]}")

    def start(self) -> ProbeWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        if self._stop.wait(self._delay):
            return
        timing = self.counter.timing
        while not self._stop.is_set():
            ok, message = run_probe(self.probe, self.container, self.runtime,
                                    self.container_id, self.pod_ip, timing.timeout)
            if self._stop.is_set():
                return
            if self.counter.record(ok):
                self.on_change(self.container_id, self.kind, bool(self.counter.result),
                               message)
            elif not ok and self.kind != STARTUP:
                self.on_change(self.container_id, self.kind + "-failure", False, message)
            if self.kind == STARTUP and self.counter.result:
                return  # startup probes stop once they succeed
            if self._stop.wait(timing.period):
                return
