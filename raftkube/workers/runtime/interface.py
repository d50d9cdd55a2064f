"""The container runtime contract the agent drives: plain data in, plain data out.

Nothing here knows about protobuf or the API: the agent translates a Pod into a
`PodSandboxSpec` and `ContainerSpec`s, and reads `PodSandboxStatus`/`ContainerStatus` back.
Every container and sandbox a runtime creates carries the raftkube labels (`LABEL_*`), so a
restarted agent finds what it already runs by listing, never by remembering.

Two implementations honour this contract and are checked by one shared test suite:
`PodmanRuntime` (real containers) and `FakeRuntime` (in memory, with fault knobs).
"""

from __future__ import annotations

import enum
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

# Labels on every sandbox and container a raftkube runtime creates.
LABEL_MANAGED = "io.raftkube.managed"
LABEL_POD_UID = "io.raftkube.pod.uid"
LABEL_POD_NAMESPACE = "io.raftkube.pod.namespace"
LABEL_POD_NAME = "io.raftkube.pod.name"
LABEL_NODE = "io.raftkube.node"
LABEL_CONTAINER_NAME = "io.raftkube.container.name"
LABEL_ATTEMPT = "io.raftkube.container.attempt"
LABEL_INIT = "io.raftkube.container.init"
LABEL_MEMORY_LIMITED = "io.raftkube.container.memory-limited"
LABEL_FENCE = "io.raftkube.fence-on-lease-loss"
"""On a sandbox: "true" for a pod that must be stopped when the node loses its Lease (a
StatefulSet pod); the fencing watchdog finds them by it."""

# Exit code of a process killed by SIGKILL (128 + 9): what an OOM kill looks like.
EXIT_CODE_SIGKILL = 128 + signal.SIGKILL


class ContainerState(enum.Enum):
    """Where a container is in its life. A container never goes back to CREATED."""

    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"


class MountKind(enum.Enum):
    BIND = "bind"
    TMPFS = "tmpfs"


@dataclass(frozen=True)
class Mount:
    """A filesystem mounted into a container.

    kind: BIND mounts `source` (an existing host path) at `target`; TMPFS mounts a fresh
        memory-backed filesystem at `target` (`source` is ignored).
    target: absolute path inside the container.
    source: absolute host path for BIND.
    read_only: mount read-only.
    tmpfs_size_bytes: size cap for TMPFS (0 = runtime default).
    """

    kind: MountKind
    target: str
    source: str = ""
    read_only: bool = False
    tmpfs_size_bytes: int = 0


@dataclass(frozen=True)
class PortMapping:
    """A port of the sandbox published on the node.

    container_port: the port inside the pod (1-65535).
    host_port: the port on the node (1-65535).
    protocol: "tcp" or "udp".
    host_ip: node address to bind ("" = all addresses).
    """

    container_port: int
    host_port: int
    protocol: str = "tcp"
    host_ip: str = ""


@dataclass(frozen=True)
class ContainerPort:
    """A port a container listens on (informational: publishing is the sandbox's job)."""

    container_port: int
    protocol: str = "tcp"
    name: str = ""


@dataclass(frozen=True)
class PodSandboxSpec:
    """What a pod needs before any of its containers runs: identity and a network namespace.

    uid: the pod's uid (the sandbox's identity: one sandbox per uid).
    namespace, name: the pod's namespace and name.
    node: the node name this runtime serves (labelled on everything).
    hostname: hostname seen by the pod's containers ("" = the pod name).
    network: runtime network to join by name ("" = the runtime's default network).
    static_ip: fixed address on `network` ("" = let the network assign one).
    dns_servers, dns_search, dns_options: written to the pod's /etc/resolv.conf
        (empty = the runtime's default resolv.conf).
    port_mappings: ports published on the node (hostPort in Kubernetes terms).
    labels: extra labels (the raftkube labels are added and win on conflict).
    """

    uid: str
    namespace: str
    name: str
    node: str
    hostname: str = ""
    network: str = ""
    static_ip: str = ""
    dns_servers: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    port_mappings: tuple[PortMapping, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerSpec:
    """One container of a pod.

    name: the container's name within its pod (DNS label).
    image: local image reference, e.g. "localhost/busybox:latest"; never pulled.
    command: replaces the image's entrypoint (Kubernetes `command`); empty = image default.
    args: replaces the image's cmd (Kubernetes `args`); with `command` set and `args` empty,
        the image's cmd is not used.
    env: environment variables added to the image's.
    working_dir: working directory ("" = image default).
    ports: ports the container listens on (informational).
    cpu_limit_millicores: hard CPU cap (1000 = one core) through CFS quota; 0 = none.
    cpu_request_millicores: relative CPU weight (cgroup shares); 0 = runtime default.
    memory_limit_bytes: hard memory cap; 0 = none. Exceeding it gets the process OOM-killed.
    mounts: bind and tmpfs mounts.
    stop_signal: signal sent first on stop (then SIGKILL after the grace period).
    init_container: marks a Kubernetes init container (labelled, for the agent's ordering).
    use_init_process: run a tiny init as PID 1 that forwards signals and reaps zombies.
    labels: extra labels (the raftkube labels are added and win on conflict).
    """

    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""
    ports: tuple[ContainerPort, ...] = ()
    cpu_limit_millicores: int = 0
    cpu_request_millicores: int = 0
    memory_limit_bytes: int = 0
    mounts: tuple[Mount, ...] = ()
    stop_signal: int = int(signal.SIGTERM)
    init_container: bool = False
    use_init_process: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PodSandboxStatus:
    """What the runtime observes of a sandbox.

    sandbox_id: the runtime's id for it.
    ready: its network namespace exists and is up (containers can be started in it).
    ip: the pod's address on its network ("" when it has none yet).
    """

    sandbox_id: str
    uid: str
    namespace: str
    name: str
    node: str
    ready: bool
    ip: str
    network: str
    created_at: datetime | None
    labels: Mapping[str, str]


@dataclass(frozen=True)
class ContainerStatus:
    """What the runtime observes of one container instance.

    container_id: the runtime's id; a restart of the same pod container is a new instance
        with a new id and `attempt` + 1 (restart identity).
    name: the container's name within its pod; pod_uid/namespace/pod_name/node: its pod.
    attempt: which instance of that pod container this is (0 for the first).
    exit_code: set once EXITED.
    oom_suspected: EXITED with 137 on a memory-limited container that this runtime did not
        stop: the kernel OOM killer is the likely cause (Podman's own OOMKilled flag is
        never set on these machines).
    stopped_by_runtime: this runtime instance sent the stop (so 137/143 is not a crash).
    """

    container_id: str
    name: str
    pod_uid: str
    namespace: str
    pod_name: str
    node: str
    attempt: int
    image: str
    state: ContainerState
    exit_code: int | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    oom_suspected: bool
    stopped_by_runtime: bool
    init_container: bool
    labels: Mapping[str, str]

    @property
    def reason(self) -> str:
        """Kubernetes-style reason: "" while not exited, else OOMKilled, Completed or Error."""
        if self.state is not ContainerState.EXITED:
            return ""
        if self.oom_suspected:
            return "OOMKilled"
        return "Completed" if self.exit_code == 0 else "Error"


@dataclass(frozen=True)
class ImageInfo:
    """An image present in the node's store."""

    image_id: str
    names: tuple[str, ...]
    size_bytes: int


@dataclass(frozen=True)
class ContainerUsage:
    """What a running container has consumed, read from its cgroup.

    cpu_nanoseconds: CPU time used since it started (only ever grows while it runs).
    memory_bytes: memory charged to it now.
    """

    container_id: str
    cpu_nanoseconds: int
    memory_bytes: int


@dataclass(frozen=True)
class ExecResult:
    """A finished exec: exit code and everything it wrote."""

    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class TerminalSize:
    """A terminal's size in character cells."""

    rows: int
    cols: int


class ExecSession(Protocol):
    """A running exec whose output is streamed.

    Iterate `output()` for (stream, data) chunks, stream being "stdout" or "stderr" (with a
    tty everything is "stdout"); after it ends, `exit_code()` gives the code. `close()`
    releases the connection (idempotent); the process may keep running in the container.
    `resize()` changes the size of its terminal (ignored without a tty).
    """

    def output(self) -> Iterator[tuple[str, bytes]]: ...

    def resize(self, size: TerminalSize) -> None: ...

    def exit_code(self) -> int: ...

    def close(self) -> None: ...


class EventAction(enum.Enum):
    CREATED = "created"
    STARTED = "started"
    DIED = "died"
    REMOVED = "removed"


@dataclass(frozen=True)
class ContainerEvent:
    """A change to one container of this node: a hint to re-read its status.

    name: the container's name in its pod ("" for a sandbox's own infra container).
    exit_code: set on DIED.
    """

    container_id: str
    pod_uid: str
    name: str
    action: EventAction
    exit_code: int | None
    at: datetime


class ContainerRuntimeError(Exception):
    """Base of every error a runtime raises on purpose."""


class RuntimeUnavailableError(ContainerRuntimeError):
    """The runtime service cannot be reached (retry later; nothing was changed)."""


class ImageNotPresentError(ContainerRuntimeError):
    """The image is not in the node's store; no registry is ever tried (ImagePullBackOff)."""

    def __init__(self, image: str) -> None:
        super().__init__(f"image {image!r} is not present on this node (no pull is attempted)")
        self.image = image


class PodSandboxNotFoundError(ContainerRuntimeError):
    """No sandbox exists for this pod uid."""

    def __init__(self, pod_uid: str) -> None:
        super().__init__(f"no pod sandbox for pod uid {pod_uid!r}")
        self.pod_uid = pod_uid


class ContainerNotFoundError(ContainerRuntimeError):
    """No container with this id exists (never created, or removed)."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"no container with id {container_id!r}")
        self.container_id = container_id


class ContainerCreateError(ContainerRuntimeError):
    """The runtime refused to create the container (bad spec, name taken, ...)."""


class ContainerStartError(ContainerRuntimeError):
    """The container could not be started (e.g. its command does not exist), or it has
    exited already. A container whose start failed stays CREATED until removed."""


class InvalidSpecError(ContainerRuntimeError):
    """A spec field is invalid; the message names the field and the reason."""


@runtime_checkable
class Runtime(Protocol):
    """A node's container runtime.

    Threading: every method may be called from several threads at once.
    Errors: only `ContainerRuntimeError` subclasses escape on purpose.
    """

    @property
    def node(self) -> str:
        """The node name this runtime labels everything with and lists by."""
        ...

    # --- pod sandboxes -------------------------------------------------------------------

    def prepare_pod_sandbox(self, spec: PodSandboxSpec) -> PodSandboxStatus:
        """Create and start the sandbox of pod `spec.uid` and return its status.

        Idempotent: a sandbox for this uid that exists already is started if needed and
        returned unchanged (the spec is not re-applied). Raises InvalidSpecError on a bad
        spec and ContainerRuntimeError when the runtime refuses (e.g. a host port taken);
        nothing is left behind on failure.
        """
        ...

    def pod_sandbox_status(self, pod_uid: str) -> PodSandboxStatus | None:
        """The sandbox of `pod_uid`, or None when there is none."""
        ...

    def list_pod_sandboxes(self) -> list[PodSandboxStatus]:
        """Every sandbox of this node (labelled with this node's name)."""
        ...

    def remove_pod_sandbox(self, pod_uid: str, grace_seconds: float) -> None:
        """Stop every container of the pod (as `stop_container`), then remove them and the
        sandbox. Idempotent: a missing sandbox is not an error."""
        ...

    # --- containers ----------------------------------------------------------------------

    def create_container(self, pod_uid: str, spec: ContainerSpec, attempt: int) -> str:
        """Create (not start) instance `attempt` of container `spec.name` in the pod's
        sandbox and return its id.

        Not idempotent: each call makes a new instance; creating an (name, attempt) pair
        that exists raises ContainerCreateError. Raises ImageNotPresentError when the image
        is absent (nothing is pulled), PodSandboxNotFoundError without a sandbox,
        InvalidSpecError on a bad spec.
        """
        ...

    def start_container(self, container_id: str) -> None:
        """Start a CREATED container. Idempotent on a RUNNING one. Raises
        ContainerNotFoundError when missing, ContainerStartError when the process cannot be
        started (the message says why, e.g. command not found; the container stays CREATED,
        its process never ran: remove it and create a new attempt) or when it has already
        EXITED (containers are not restarted: create a new attempt)."""
        ...

    def stop_container(self, container_id: str, grace_seconds: float) -> ContainerStatus:
        """Send the container's stop signal, wait up to `grace_seconds` for it to exit, then
        SIGKILL; return the EXITED status. Blocks until the container has exited.
        Idempotent: an EXITED or CREATED container is returned unchanged (a CREATED one
        never runs its process). Raises ContainerNotFoundError when missing."""
        ...

    def remove_container(self, container_id: str) -> None:
        """Remove the container (killing it at once if running) with its logs.
        Idempotent: a missing container is not an error."""
        ...

    def container_status(self, container_id: str) -> ContainerStatus:
        """The current status. Raises ContainerNotFoundError when missing."""
        ...

    def list_containers(self, pod_uid: str | None = None) -> list[ContainerStatus]:
        """Every container of this node (all states, all attempts), or only pod `pod_uid`'s.
        Sorted by (pod_uid, name, attempt). Containers without raftkube labels are ignored."""
        ...

    def logs(
        self,
        container_id: str,
        *,
        follow: bool = False,
        since: datetime | None = None,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> Iterator[bytes]:
        """The container's output (stdout and stderr merged) as chunks of whole lines.

        follow: keep yielding until the container exits (or the caller stops iterating).
        since: only lines written at or after this time. tail: only the last N lines.
        timestamps: prefix each line with its RFC 3339 time and a space.
        Works on EXITED containers until they are removed (previous instances keep their
        logs as long as the agent keeps them). Raises ContainerNotFoundError when missing.
        """
        ...

    def exec(
        self,
        container_id: str,
        command: Sequence[str],
        *,
        stdin: bytes | None = None,
        tty: bool = False,
        timeout_seconds: float | None = None,
    ) -> ExecResult:
        """Run `command` in the RUNNING container, feed it `stdin` (then EOF), wait for it and
        return its exit code and output (with a tty, stderr is merged into stdout).
        A command that cannot be run (not found) gives exit code 126 or 127, not an error.
        `timeout_seconds` bounds the wait (TimeoutError; the process is left running).
        Raises ContainerNotFoundError when missing, ContainerRuntimeError when not running.
        """
        ...

    def exec_stream(
        self,
        container_id: str,
        command: Sequence[str],
        *,
        stdin: Iterator[bytes] | None = None,
        tty: bool = False,
        size: TerminalSize | None = None,
    ) -> ExecSession:
        """Start `command` in the RUNNING container and stream its output as it comes.
        `stdin` chunks are fed from a background thread, then EOF. With `tty`, the terminal
        has `size` before any stdin reaches the command. Errors as `exec`."""
        ...

    def container_usage(self) -> dict[str, ContainerUsage]:
        """CPU time and memory of every RUNNING container of this node, by container id
        (sandbox infra containers excluded). Raises RuntimeUnavailableError when the
        runtime cannot be reached."""
        ...

    def events(self, stop: threading.Event) -> Iterator[ContainerEvent]:
        """Changes to this node's containers from now on, in order, until `stop` is set
        (checked at least every second) or the caller stops iterating.

        Events are hints, not state: some can be lost (e.g. while the runtime restarts), so
        a consumer re-reads statuses on each event and still relists now and then.
        Raises RuntimeUnavailableError when the runtime cannot be reached.
        """
        ...

    # --- images --------------------------------------------------------------------------

    def image_present(self, image: str) -> bool:
        """Whether `image` is in the node's store (never pulls)."""
        ...

    def list_images(self) -> list[ImageInfo]:
        """Every image in the node's store."""
        ...

    def close(self) -> None:
        """Release connections (idempotent). Containers keep running."""
        ...


def container_labels(pod: PodSandboxSpec | Mapping[str, str], spec: ContainerSpec,
                     attempt: int) -> dict[str, str]:
    """The labels of instance `attempt` of `spec` in pod `pod` (a spec, or its sandbox
    labels): the user's, then raftkube's (which win)."""
    pod_labels = sandbox_labels(pod) if isinstance(pod, PodSandboxSpec) else dict(pod)
    labels = dict(spec.labels)
    for key in (LABEL_MANAGED, LABEL_POD_UID, LABEL_POD_NAMESPACE, LABEL_POD_NAME, LABEL_NODE):
        labels[key] = pod_labels[key]
    labels[LABEL_CONTAINER_NAME] = spec.name
    labels[LABEL_ATTEMPT] = str(attempt)
    labels[LABEL_INIT] = "true" if spec.init_container else "false"
    labels[LABEL_MEMORY_LIMITED] = "true" if spec.memory_limit_bytes > 0 else "false"
    return labels


def sandbox_labels(spec: PodSandboxSpec) -> dict[str, str]:
    """The labels of the sandbox of `spec`: the user's, then raftkube's (which win)."""
    labels = dict(spec.labels)
    labels.update({
        LABEL_MANAGED: "true",
        LABEL_POD_UID: spec.uid,
        LABEL_POD_NAMESPACE: spec.namespace,
        LABEL_POD_NAME: spec.name,
        LABEL_NODE: spec.node,
    })
    return labels


def is_oom_suspected(exit_code: int | None, memory_limited: bool,
                     stopped_by_runtime: bool) -> bool:
    """Whether an exit looks like the kernel OOM killer: SIGKILL (137) on a memory-limited
    container that the runtime did not stop itself."""
    return exit_code == EXIT_CODE_SIGKILL and memory_limited and not stopped_by_runtime


def latest_instances(statuses: Sequence[ContainerStatus]) -> dict[tuple[str, str],
                                                                    ContainerStatus]:
    """The newest instance (highest attempt) of each (pod_uid, container name)."""
    latest: dict[tuple[str, str], ContainerStatus] = {}
    for status in statuses:
        key = (status.pod_uid, status.name)
        if key not in latest or status.attempt > latest[key].attempt:
            latest[key] = status
    return latest


def previous_instance(statuses: Sequence[ContainerStatus], pod_uid: str,
                      name: str) -> ContainerStatus | None:
    """The instance before the newest one of container `name` in pod `pod_uid` (what
    `logs --previous` reads), or None when there is no earlier instance kept."""
    instances = sorted((s for s in statuses if s.pod_uid == pod_uid and s.name == name),
                       key=lambda s: s.attempt)
    return instances[-2] if len(instances) >= 2 else None
