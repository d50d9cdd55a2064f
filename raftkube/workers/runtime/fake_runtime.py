"""An in-memory Runtime with fault knobs, for hollow nodes and tests.

It keeps the whole `Runtime` contract (the shared contract suite runs against it and
against Podman), but no process runs: what a container "does" is a `FakeBehavior`, chosen
per container name (`set_behavior`), else read from the container's environment
(`RAFTKUBE_FAKE_*`, so a pod spec can ask a hollow node for a fault), else "runs until
stopped". Time is read from an injectable clock and state advances lazily when observed:

    create --> CREATED --start--> RUNNING --(exit_after | oom_after)--> EXITED(code)
                          \\--fail_start--> stays CREATED, ContainerStartError
    stop: stop signal --> exits after stop_delay (code 128+signal), or, with
          ignore_stop_signal, SIGKILL after the grace period (137)

Exec understands a few commands as busybox would (true, false, echo, cat, sh -c 'exit N',
env, hostname); anything else is "not found" (127) unless an exec handler is set.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from raftkube.workers.runtime.interface import (
    EXIT_CODE_SIGKILL,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerCreateError,
    ContainerEvent,
    ContainerNotFoundError,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerStartError,
    ContainerState,
    ContainerStatus,
    ContainerUsage,
    EventAction,
    ExecResult,
    ImageInfo,
    ImageNotPresentError,
    InvalidSpecError,
    PodSandboxNotFoundError,
    PodSandboxSpec,
    PodSandboxStatus,
    TerminalSize,
    container_labels,
    is_oom_suspected,
    sandbox_labels,
)
from raftkube.workers.runtime.validation import validate_container_spec, validate_sandbox_spec

ENV_PREFIX = "RAFTKUBE_FAKE_"


@dataclass(frozen=True)
class FakeBehavior:
    """What a fake container does (each field maps to env RAFTKUBE_FAKE_<FIELD>).

    fail_start: when non-empty, start fails with this message (ContainerStartError).
    start_delay_seconds: start_container blocks this long (a slow start).
    exit_after_seconds: exit by itself this long after starting (None = run until stopped).
    exit_code: the code of that exit.
    oom_after_seconds: be SIGKILLed (137) this long after starting, as by the OOM killer;
        reported as OOM when the container has a memory limit.
    ignore_stop_signal: ignore the stop signal (a hang): only SIGKILL after grace ends it.
    stop_delay_seconds: time to exit after the stop signal when not ignoring it.
    log_lines: lines written to stdout when it starts.
    cpu_millicores: CPU it burns while running (its usage grows at this rate).
    memory_bytes: memory it holds while running.
    """

    fail_start: str = ""
    start_delay_seconds: float = 0.0
    exit_after_seconds: float | None = None
    exit_code: int = 0
    oom_after_seconds: float | None = None
    ignore_stop_signal: bool = False
    stop_delay_seconds: float = 0.0
    log_lines: tuple[str, ...] = ()
    cpu_millicores: int = 0
    memory_bytes: int = 0


def behavior_from_env(env: Mapping[str, str], base: FakeBehavior | None = None) -> FakeBehavior:
    """`base` (default: run until stopped) overridden by RAFTKUBE_FAKE_* variables.
    Raises InvalidSpecError naming the variable when a value does not parse."""
    behavior = base or FakeBehavior()
    parsers: dict[str, Callable[[str], object]] = {
        "fail_start": str, "start_delay_seconds": float, "exit_after_seconds": float,
        "exit_code": int, "oom_after_seconds": float,
        "ignore_stop_signal": lambda v: v.lower() in ("1", "true", "yes"),
        "stop_delay_seconds": float, "log_lines": lambda v: tuple(v.split("\\n")),
        "cpu_millicores": int, "memory_bytes": int,
    }
    changes: dict[str, object] = {}
    for name, parse in parsers.items():
        key = ENV_PREFIX + name.upper()
        if key in env:
            try:
                changes[name] = parse(env[key])
            except ValueError as exc:
                raise InvalidSpecError(f"env.{key}: {env[key]!r}: {exc}") from exc
    return replace(behavior, **changes) if changes else behavior


ExecHandler = Callable[[Sequence[str], bytes, Mapping[str, str]], ExecResult | None]


@dataclass(frozen=True)
class FakeRuntimeConfig:
    """A fake node.

    node: node name labelled on everything.
    pod_cidr: addresses handed to sandboxes without a static IP.
    images: images present in the fake store.
    clock: wall-clock seconds (time.time); sleep: how stop/start delays wait.
    """

    node: str
    pod_cidr: str = "10.250.0.0/16"
    images: frozenset[str] = frozenset({"localhost/busybox:latest"})
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


@dataclass
class _Pod:
    sandbox_id: str
    spec: PodSandboxSpec
    ip: str
    created_at: float
    labels: dict[str, str]


@dataclass
class _Container:
    container_id: str
    pod_uid: str
    spec: ContainerSpec
    attempt: int
    labels: dict[str, str]
    behavior: FakeBehavior
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    stopped_by_runtime: bool = False
    stopping: bool = False
    logs: list[tuple[float, bytes]] = field(default_factory=list)

    @property
    def state(self) -> ContainerState:
        if self.finished_at is not None:
            return ContainerState.EXITED
        return ContainerState.RUNNING if self.started_at is not None else ContainerState.CREATED


class FakeRuntime:
    """`Runtime` (interface.py) in memory. Thread-safe; one lock guards all state."""

    def __init__(self, config: FakeRuntimeConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._events_changed = threading.Condition(self._lock)
        self._events: list[ContainerEvent] = []
        self._pods: dict[str, _Pod] = {}
        self._containers: dict[str, _Container] = {}
        self._images: set[str] = set(config.images)
        self._behaviors: dict[str, FakeBehavior] = {}
        self._exec_handler: ExecHandler | None = None
        network = ipaddress.ip_network(config.pod_cidr)
        self._free_ips = (str(ip) for ip in network.hosts() if int(ip) - int(network[0]) > 1)

    @property
    def node(self) -> str:
        return self.config.node

    # --- fault knobs ------------------------------------------------------------------------

    def set_behavior(self, container_name: str, behavior: FakeBehavior) -> None:
        """Containers named `container_name` created from now on behave as `behavior`
        (their RAFTKUBE_FAKE_* env still overrides single fields)."""
        with self._lock:
            self._behaviors[container_name] = behavior

    def set_exec_handler(self, handler: ExecHandler | None) -> None:
        """Answer execs with `handler(argv, stdin, env)`; returning None falls back to the
        built-in commands."""
        self._exec_handler = handler

    def add_image(self, image: str) -> None:
        with self._lock:
            self._images.add(image)

    def remove_image(self, image: str) -> None:
        with self._lock:
            self._images.discard(image)

    def kill(self, container_id: str, exit_code: int = EXIT_CODE_SIGKILL) -> None:
        """Make a running container exit now with `exit_code`, as if its process died by
        itself (not a stop by the runtime). No-op when not running."""
        with self._lock:
            container = self._get(container_id)
            if container.state is ContainerState.RUNNING:
                self._finish(container, self.config.clock(), exit_code)

    # --- sandboxes --------------------------------------------------------------------------

    def prepare_pod_sandbox(self, spec: PodSandboxSpec) -> PodSandboxStatus:
        validate_sandbox_spec(spec)
        with self._lock:
            pod = self._pods.get(spec.uid)
            if pod is None:
                self._check_ports(spec)
                ip = spec.static_ip or next(self._free_ips, "")
                if not ip:
                    raise ContainerRuntimeError(f"pod {spec.uid}: no address left in "
                                                f"{self.config.pod_cidr}")
                pod = _Pod(secrets.token_hex(32), spec, ip, self.config.clock(),
                           sandbox_labels(spec))
                self._pods[spec.uid] = pod
            return self._sandbox_status(pod)

    def _check_ports(self, spec: PodSandboxSpec) -> None:
        taken = {(p.host_ip, p.host_port, p.protocol)
                 for other in self._pods.values() for p in other.spec.port_mappings}
        for port in spec.port_mappings:
            for host_ip, host_port, protocol in taken:
                if (host_port, protocol) == (port.host_port, port.protocol) and (
                        not host_ip or not port.host_ip or host_ip == port.host_ip):
                    raise ContainerRuntimeError(
                        f"pod {spec.uid}: host port {port.host_port}/{port.protocol} is "
                        "already allocated")

    def _sandbox_status(self, pod: _Pod) -> PodSandboxStatus:
        return PodSandboxStatus(
            sandbox_id=pod.sandbox_id, uid=pod.spec.uid, namespace=pod.spec.namespace,
            name=pod.spec.name, node=pod.spec.node, ready=True, ip=pod.ip,
            network=pod.spec.network, created_at=_time(pod.created_at),
            labels=dict(pod.labels))

    def pod_sandbox_status(self, pod_uid: str) -> PodSandboxStatus | None:
        with self._lock:
            pod = self._pods.get(pod_uid)
            return self._sandbox_status(pod) if pod else None

    def list_pod_sandboxes(self) -> list[PodSandboxStatus]:
        with self._lock:
            return [self._sandbox_status(p) for _, p in sorted(self._pods.items())
                    if p.spec.node == self.node]

    def remove_pod_sandbox(self, pod_uid: str, grace_seconds: float) -> None:
        with self._lock:
            ids = [c.container_id for c in self._containers.values() if c.pod_uid == pod_uid]
        threads = [threading.Thread(target=self._stop_quietly, args=(cid, grace_seconds))
                   for cid in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with self._lock:
            for cid in ids:
                self.remove_container(cid)
            self._pods.pop(pod_uid, None)

    def _stop_quietly(self, container_id: str, grace_seconds: float) -> None:
        try:
            self.stop_container(container_id, grace_seconds)
        except ContainerNotFoundError:
            return

    # --- containers -------------------------------------------------------------------------

    def create_container(self, pod_uid: str, spec: ContainerSpec, attempt: int) -> str:
        validate_container_spec(spec)
        with self._lock:
            pod = self._pods.get(pod_uid)
            if pod is None:
                raise PodSandboxNotFoundError(pod_uid)
            if spec.image not in self._images:
                raise ImageNotPresentError(spec.image)
            for other in self._containers.values():
                if (other.pod_uid, other.spec.name, other.attempt) == (pod_uid, spec.name,
                                                                       attempt):
                    raise ContainerCreateError(
                        f"create container {spec.name!r} (attempt {attempt}) of pod "
                        f"{pod_uid}: that instance exists already ({other.container_id})")
            behavior = behavior_from_env(spec.env, self._behaviors.get(spec.name))
            container = _Container(secrets.token_hex(32), pod_uid, spec, attempt,
                                   container_labels(pod.labels, spec, attempt), behavior,
                                   self.config.clock())
            self._containers[container.container_id] = container
            self._record(container, EventAction.CREATED)
            return container.container_id

    def _get(self, container_id: str) -> _Container:
        container = self._containers.get(container_id)
        if container is None:
            raise ContainerNotFoundError(container_id)
        self._advance(container)
        return container

    def _advance(self, container: _Container) -> None:
        """Apply the behaviour's own exits that are due by now."""
        if container.state is not ContainerState.RUNNING or container.stopping:
            return
        assert container.started_at is not None
        due: list[tuple[float, int]] = []
        behavior = container.behavior
        if behavior.exit_after_seconds is not None:
            due.append((container.started_at + behavior.exit_after_seconds,
                        behavior.exit_code))
        if behavior.oom_after_seconds is not None:
            due.append((container.started_at + behavior.oom_after_seconds, EXIT_CODE_SIGKILL))
        if due:
            when, code = min(due)
            if when <= self.config.clock():
                self._finish(container, when, code)

    def _finish(self, container: _Container, when: float, code: int) -> None:
        container.finished_at = when
        container.exit_code = code
        self._record(container, EventAction.DIED, when)

    def start_container(self, container_id: str) -> None:
        with self._lock:
            container = self._get(container_id)
            if container.state is ContainerState.RUNNING:
                return
            if container.state is ContainerState.EXITED:
                raise ContainerStartError(f"container {container_id} has exited; create a "
                                          "new attempt instead of restarting it")
            behavior = container.behavior
        if behavior.start_delay_seconds > 0:
            self.config.sleep(behavior.start_delay_seconds)
        with self._lock:
            container = self._get(container_id)
            if container.state is not ContainerState.CREATED:
                return
            now = self.config.clock()
            if behavior.fail_start:
                raise ContainerStartError(f"start {container_id}: {behavior.fail_start}")
            container.started_at = now
            self._record(container, EventAction.STARTED, now)
            container.logs.extend((now, line.encode() + b"\n") for line in behavior.log_lines)

    def stop_container(self, container_id: str, grace_seconds: float) -> ContainerStatus:
        while True:
            with self._lock:
                container = self._get(container_id)
                if not container.stopping:
                    break
            self.config.sleep(0.01)  # another caller is stopping it: wait for its result
        with self._lock:
            if container.state is not ContainerState.RUNNING:
                return self._status(container)
            container.stopping = True
            container.stopped_by_runtime = True
            behavior = container.behavior
            started_stop = self.config.clock()
        grace = max(0.0, grace_seconds)
        if behavior.ignore_stop_signal or behavior.stop_delay_seconds > grace:
            wait, code = grace, EXIT_CODE_SIGKILL
        else:
            wait, code = behavior.stop_delay_seconds, 128 + int(container.spec.stop_signal)
        if wait > 0:
            self.config.sleep(wait)
        with self._lock:
            if container.finished_at is None:
                self._finish(container, max(started_stop + wait, self.config.clock()), code)
            container.stopping = False
            return self._status(container)

    def remove_container(self, container_id: str) -> None:
        with self._lock:
            container = self._containers.pop(container_id, None)
            if container is not None:
                self._record(container, EventAction.REMOVED)

    def container_status(self, container_id: str) -> ContainerStatus:
        with self._lock:
            return self._status(self._get(container_id))

    def _status(self, container: _Container) -> ContainerStatus:
        memory_limited = container.spec.memory_limit_bytes > 0
        exited = container.state is ContainerState.EXITED
        return ContainerStatus(
            container_id=container.container_id, name=container.spec.name,
            pod_uid=container.pod_uid,
            namespace=container.labels[LABEL_POD_NAMESPACE],
            pod_name=container.labels[LABEL_POD_NAME], node=self.node, attempt=container.attempt,
            image=container.spec.image,
            state=ContainerState.RUNNING if container.stopping else container.state,
            exit_code=container.exit_code if exited and not container.stopping else None,
            created_at=_time(container.created_at), started_at=_time(container.started_at),
            finished_at=_time(container.finished_at) if not container.stopping else None,
            oom_suspected=exited and not container.stopping and is_oom_suspected(
                container.exit_code, memory_limited, container.stopped_by_runtime),
            stopped_by_runtime=container.stopped_by_runtime,
            init_container=container.spec.init_container, labels=dict(container.labels))

    def list_containers(self, pod_uid: str | None = None) -> list[ContainerStatus]:
        with self._lock:
            statuses = []
            for container in self._containers.values():
                if pod_uid is not None and container.labels[LABEL_POD_UID] != pod_uid:
                    continue
                self._advance(container)
                statuses.append(self._status(container))
        return sorted(statuses, key=lambda s: (s.pod_uid, s.name, s.attempt))

    def container_usage(self) -> dict[str, ContainerUsage]:
        with self._lock:
            now = self.config.clock()
            usage = {}
            for container in self._containers.values():
                self._advance(container)
                if container.state is not ContainerState.RUNNING:
                    continue
                assert container.started_at is not None
                behavior = container.behavior
                cpu = int((now - container.started_at) * behavior.cpu_millicores * 1_000_000)
                usage[container.container_id] = ContainerUsage(
                    container.container_id, cpu, behavior.memory_bytes)
        return usage

    def logs(self, container_id: str, *, follow: bool = False, since: datetime | None = None,
             tail: int | None = None, timestamps: bool = False) -> Iterator[bytes]:
        with self._lock:
            container = self._get(container_id)
            lines = list(container.logs)
        return self._log_stream(container, lines, follow, since, tail, timestamps)

    def _log_stream(self, container: _Container, lines: list[tuple[float, bytes]],
                    follow: bool, since: datetime | None, tail: int | None,
                    timestamps: bool) -> Iterator[bytes]:
        def render(entry: tuple[float, bytes]) -> bytes:
            when, line = entry
            if not timestamps:
                return line
            stamp = datetime.fromtimestamp(when, tz=UTC).isoformat().replace("+00:00", "Z")
            return stamp.encode() + b" " + line

        if since is not None:
            lines = [e for e in lines if e[0] >= since.timestamp()]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        yield from (render(e) for e in lines)
        if not follow:
            return
        seen = len(container.logs)
        while True:
            with self._lock:
                self._advance(container)
                fresh = container.logs[seen:]
                seen = len(container.logs)
                done = container.state is ContainerState.EXITED or \
                    container.container_id not in self._containers
            yield from (render(e) for e in fresh)
            if done:
                return
            time.sleep(0.05)

    def exec(self, container_id: str, command: Sequence[str], *, stdin: bytes | None = None,
             tty: bool = False, timeout_seconds: float | None = None) -> ExecResult:
        with self._lock:
            container = self._get(container_id)
            if container.state is not ContainerState.RUNNING:
                raise ContainerRuntimeError(f"exec in {container_id}: container is "
                                            f"{container.state.value}, not running")
            env = {"PATH": "/bin", "HOSTNAME": self._hostname(container),
                   **container.spec.env}
        if not command:
            raise ContainerRuntimeError(f"exec in {container_id}: empty command")
        handler = self._exec_handler
        result = handler(command, stdin or b"", env) if handler else None
        if result is None:
            result = _builtin_exec(list(command), stdin or b"", env)
        if tty:
            merged = (result.stdout + result.stderr).replace(b"\n", b"\r\n")
            result = ExecResult(result.exit_code, merged, b"")
        return result

    def _hostname(self, container: _Container) -> str:
        pod = self._pods.get(container.pod_uid)
        if pod is None:
            return ""
        return pod.spec.hostname or pod.spec.name

    def exec_stream(self, container_id: str, command: Sequence[str], *,
                    stdin: Iterator[bytes] | None = None, tty: bool = False,
                    size: TerminalSize | None = None) -> _FakeExecSession:
        """Runs the command at once on all of stdin (a fake has no interactive session);
        `stty size` prints `size`."""
        data = b"".join(stdin) if stdin is not None else None
        if tty and size is not None and list(command) == ["stty", "size"]:
            return _FakeExecSession(ExecResult(0, f"{size.rows} {size.cols}\r\n".encode(),
                                               b""))
        return _FakeExecSession(self.exec(container_id, command, stdin=data, tty=tty))

    def events(self, stop: threading.Event) -> Iterator[ContainerEvent]:
        with self._lock:
            seen = len(self._events)
        while not stop.is_set():
            self.list_containers()  # applies exits that are due, which records events
            with self._events_changed:
                fresh = self._events[seen:]
                seen = len(self._events)
                if not fresh:
                    self._events_changed.wait(timeout=0.05)
            yield from fresh

    def _record(self, container: _Container, action: EventAction,
                when: float | None = None) -> None:
        self._events.append(ContainerEvent(
            container_id=container.container_id, pod_uid=container.pod_uid,
            name=container.spec.name, action=action,
            exit_code=container.exit_code if action is EventAction.DIED else None,
            at=_time(when if when is not None else self.config.clock()) or datetime.now(UTC)))
        self._events_changed.notify_all()

    # --- images -----------------------------------------------------------------------------

    def image_present(self, image: str) -> bool:
        with self._lock:
            return image in self._images

    def list_images(self) -> list[ImageInfo]:
        with self._lock:
            return [ImageInfo(image_id=f"fake-{name}", names=(name,), size_bytes=0)
                    for name in sorted(self._images)]

    def close(self) -> None:
        return


class _FakeExecSession:
    def __init__(self, result: ExecResult) -> None:
        self._result = result

    def resize(self, size: TerminalSize) -> None:
        """Nothing to resize: the fake's command already ran to completion."""

    def output(self) -> Iterator[tuple[str, bytes]]:
        if self._result.stdout:
            yield "stdout", self._result.stdout
        if self._result.stderr:
            yield "stderr", self._result.stderr

    def exit_code(self) -> int:
        return self._result.exit_code

    def close(self) -> None:
        return


def _builtin_exec(argv: list[str], stdin: bytes, env: Mapping[str, str]) -> ExecResult:
    """The few commands a fake container can run, with busybox's outputs and codes."""
    name, args = argv[0].rsplit("/", 1)[-1], argv[1:]
    if name == "true":
        return ExecResult(0, b"", b"")
    if name == "false":
        return ExecResult(1, b"", b"")
    if name == "echo":
        return ExecResult(0, " ".join(args).encode() + b"\n", b"")
    if name == "cat" and not args:
        return ExecResult(0, stdin, b"")
    if name == "hostname" and not args:
        return ExecResult(0, env.get("HOSTNAME", "").encode() + b"\n", b"")
    if name == "env" and not args:
        return ExecResult(0, "".join(f"{k}={v}\n" for k, v in env.items()).encode(), b"")
    if name == "sh" and len(args) == 2 and args[0] == "-c":
        words = args[1].split()
        if len(words) == 2 and words[0] == "exit" and words[1].isdigit():
            return ExecResult(int(words[1]) % 256, b"", b"")
        if words:
            return _builtin_exec(words, stdin, env)
    return ExecResult(127, b"", f"{argv[0]}: not found (fake runtime)\n".encode())


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)
