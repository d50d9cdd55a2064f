"""Resource usage of this node and of its containers, sampled every few seconds: the
source of `raftkubectl top` (NodeAgent.Stats) and of the worker's Prometheus metrics.

    every interval:  runtime.container_usage()   CPU time + memory per running container
                     runtime.list_containers()   which pod and container each one is
                     /proc/stat, /proc/meminfo   the machine as a whole
    rates:           cores = (CPU time now - CPU time one sample ago) / seconds between them

Contract: `latest()` is None until two samples exist (a rate needs two); after that it is
the newest `NodeUsage`, replaced whole (readers never see a half-built one). A container
appears once it was seen in two consecutive samples. A failed sample (runtime down) keeps
the previous figures and is retried at the next tick.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from raftkube.logging_config import get_logger
from raftkube.workers.runtime.interface import (
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    ContainerRuntimeError,
    ContainerUsage,
    Runtime,
)

log = get_logger(__name__)

_NANOS = 1_000_000_000


@dataclass(frozen=True)
class ContainerRate:
    """One running container's usage over the window."""

    namespace: str
    pod: str
    pod_uid: str
    container: str
    cpu_nanocores: int
    memory_bytes: int


@dataclass(frozen=True)
class NodeUsage:
    """The node's usage over the window that ended at `timestamp` (epoch seconds)."""

    timestamp: float
    window_seconds: float
    cpu_nanocores: int
    memory_bytes: int
    containers: tuple[ContainerRate, ...]


class MachineReader:
    """The machine's CPU time in use and memory in use, from procfs.

    cpu_nanoseconds(): time all CPUs spent not idle since boot (user, nice, system, irq,
      softirq, steal).
    memory_bytes(): MemTotal - MemAvailable.
    """

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._proc = proc
        self._ticks_per_second = os.sysconf("SC_CLK_TCK")

    def cpu_nanoseconds(self) -> int:
        for line in (self._proc / "stat").read_text().splitlines():
            if line.startswith("cpu "):
                ticks = [int(v) for v in line.split()[1:]]
                user, nice, system, _idle, _iowait, irq, softirq, steal = (ticks + [0] * 8)[:8]
                busy = user + nice + system + irq + softirq + steal
                return busy * _NANOS // self._ticks_per_second
        raise ValueError(f"{self._proc / 'stat'}: no aggregate cpu line")

    def memory_bytes(self) -> int:
        fields: dict[str, int] = {}
        for line in (self._proc / "meminfo").read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                fields[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
        return fields["MemTotal"] - fields.get("MemAvailable", fields.get("MemFree", 0))


@dataclass(frozen=True)
class _Sample:
    at: float  # monotonic seconds
    wall: float
    machine_cpu_ns: int
    machine_memory: int
    containers: dict[str, ContainerUsage]
    identities: dict[str, tuple[str, str, str, str]]  # id -> (namespace, pod, uid, name)


class UsageSampler:
    """Samples usage every `interval_seconds` on its own thread (see module docstring)."""

    def __init__(self, runtime: Runtime, interval_seconds: float = 10.0,
                 machine: MachineReader | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.runtime = runtime
        self.interval_seconds = interval_seconds
        self._machine = machine or MachineReader()
        self._clock = clock
        self._wall_clock = wall_clock
        self._previous: _Sample | None = None
        self._latest: NodeUsage | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def latest(self) -> NodeUsage | None:
        with self._lock:
            return self._latest

    def sample_once(self) -> NodeUsage | None:
        """Take one sample; return the usage since the previous one (None the first time
        or when sampling failed)."""
        try:
            sample = self._take()
        except (ContainerRuntimeError, OSError, ValueError) as exc:
            log.warning("usage sample failed", error=str(exc))
            return None
        with self._lock:
            previous, self._previous = self._previous, sample
            if previous is None or sample.at <= previous.at:
                return None
            self._latest = _rates(previous, sample)
            return self._latest

    def _take(self) -> _Sample:
        containers = self.runtime.container_usage()
        identities = {}
        for status in self.runtime.list_containers():
            if status.container_id in containers:
                identities[status.container_id] = (
                    status.labels.get(LABEL_POD_NAMESPACE, ""),
                    status.labels.get(LABEL_POD_NAME, ""), status.pod_uid, status.name)
        return _Sample(self._clock(), self._wall_clock(), self._machine.cpu_nanoseconds(),
                       self._machine.memory_bytes(), containers, identities)

    def start(self) -> UsageSampler:
        self._thread = threading.Thread(target=self._run, name="usage-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        self.sample_once()
        while not self._stop.wait(self.interval_seconds):
            self.sample_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def _rates(before: _Sample, after: _Sample) -> NodeUsage:
    seconds = after.at - before.at

    def per_second(delta_ns: int) -> int:
        return max(0, int(delta_ns / seconds))

    rates = []
    for container_id, now in after.containers.items():
        then = before.containers.get(container_id)
        identity = after.identities.get(container_id)
        if then is None or identity is None:
            continue
        namespace, pod, uid, name = identity
        rates.append(ContainerRate(namespace, pod, uid, name,
                                   per_second(now.cpu_nanoseconds - then.cpu_nanoseconds),
                                   now.memory_bytes))
    rates.sort(key=lambda r: (r.namespace, r.pod, r.container))
    return NodeUsage(after.wall, seconds,
                     per_second(after.machine_cpu_ns - before.machine_cpu_ns),
                     after.machine_memory, tuple(rates))
