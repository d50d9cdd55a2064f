"""The Runtime contract on Podman, through its REST API (podman-py's HTTP client).

    PodSandboxSpec --prepare--> Podman pod "rk_<ns>_<name>_<uid>" (infra container holds the
                                network namespace: the pod's containers share localhost)
    ContainerSpec  --create---> Podman container "rk_<ns>_<pod>_<container>_<attempt>_<uid8>"
                                in that pod, labelled io.raftkube.* (interface.py)

Quirks of Podman 4.3 handled here (see ENVIRONMENT.md): stop signals are ints, CPU limits go
through cpu_period/cpu_quota, tmpfs goes through a mount, removal passes timeout=0 so it
never waits a stop timeout, and OOMKilled is never set: exit 137 on a memory-limited
container this runtime did not stop is reported as `oom_suspected`.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from podman import PodmanClient
from podman.api import stream_frames
from podman.errors import APIError

from raftkube.workers.runtime.interface import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_INIT,
    LABEL_MANAGED,
    LABEL_MEMORY_LIMITED,
    LABEL_NODE,
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
    ExecResult,
    ImageInfo,
    ImageNotPresentError,
    MountKind,
    PodSandboxNotFoundError,
    PodSandboxSpec,
    PodSandboxStatus,
    RuntimeUnavailableError,
    TerminalSize,
    container_labels,
    is_oom_suspected,
    sandbox_labels,
)
from raftkube.workers.runtime.podman_events import PODMAN_ACTIONS, stream_events
from raftkube.workers.runtime.podman_exec import PodmanExecSession
from raftkube.workers.runtime.validation import (
    CFS_PERIOD_US,
    container_argv,
    cpu_quota_us,
    cpu_shares,
    validate_container_spec,
    validate_sandbox_spec,
)

_STATES = {
    "configured": ContainerState.CREATED, "created": ContainerState.CREATED,
    "initialized": ContainerState.CREATED,
    "running": ContainerState.RUNNING, "paused": ContainerState.RUNNING,
    "stopping": ContainerState.RUNNING,
    "exited": ContainerState.EXITED, "stopped": ContainerState.EXITED,
    "removing": ContainerState.EXITED, "unknown": ContainerState.EXITED,
}

_FRACTION = re.compile(r"\.(\d+)")


@dataclass(frozen=True)
class PodmanRuntimeConfig:
    """How the runtime reaches Podman and names what it creates.

    node: node name labelled on everything; listing returns only this node's objects.
    socket_path: the Podman API service's unix socket (see PodmanService).
    name_prefix: prefix of pod and container names (distinct runtimes sharing one Podman
        need distinct prefixes only if they share pod uids).
    request_timeout_seconds: bound on each API call that is not a stop or a stream.
    """

    node: str
    socket_path: str
    name_prefix: str = "rk"
    request_timeout_seconds: float = 60.0


class PodmanRuntime:
    """`Runtime` (interface.py) on a Podman API service."""

    def __init__(self, config: PodmanRuntimeConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._stopped_lock = threading.Lock()
        self._stopped_by_us: set[str] = set()

    @property
    def node(self) -> str:
        return self.config.node

    # --- HTTP plumbing --------------------------------------------------------------------

    def _api(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = PodmanClient(base_url=f"unix://{self.config.socket_path}",
                                  timeout=self.config.request_timeout_seconds)
            self._local.client = client
        return client.api

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
              body: Any = None, timeout: float | None = None, stream: bool = False) -> Any:
        api = self._api()
        kwargs: dict[str, Any] = {"params": dict(params or {}), "stream": stream}
        if timeout is not None:
            kwargs["timeout"] = timeout
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["headers"] = {"Content-Type": "application/json"}
        try:
            return getattr(api, method)(path, **kwargs)
        except (requests.exceptions.ConnectionError, APIError) as exc:
            # podman-py turns every transport error (OSError) into APIError; HTTP error
            # statuses come back as responses and are handled by the callers.
            raise RuntimeUnavailableError(
                f"podman service at {self.config.socket_path}: {exc}") from exc

    @staticmethod
    def _message(response: Any) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text.strip()[:500]
        if isinstance(body, dict):
            return str(body.get("message") or body.get("cause") or body)
        return str(body)

    def _filters(self, pod_uid: str | None = None) -> dict[str, str]:
        labels = [f"{LABEL_MANAGED}=true", f"{LABEL_NODE}={self.node}"]
        if pod_uid is not None:
            labels.append(f"{LABEL_POD_UID}={pod_uid}")
        return {"filters": json.dumps({"label": labels})}

    # --- names ------------------------------------------------------------------------------

    def pod_name(self, spec: PodSandboxSpec) -> str:
        return f"{self.config.name_prefix}_{spec.namespace}_{spec.name}_{spec.uid}"

    def container_name(self, pod: Mapping[str, str], spec: ContainerSpec, attempt: int) -> str:
        return (f"{self.config.name_prefix}_{pod[LABEL_POD_NAMESPACE]}_{pod[LABEL_POD_NAME]}_"
                f"{spec.name}_{attempt}_{pod[LABEL_POD_UID][:8]}")

    # --- sandboxes --------------------------------------------------------------------------

    def _find_pod(self, pod_uid: str) -> dict[str, Any] | None:
        response = self._call("get", "/pods/json", params=self._filters(pod_uid))
        if response.status_code != 200:
            raise ContainerRuntimeError(f"list pods: {self._message(response)}")
        pods = response.json() or []
        return pods[0] if pods else None

    def prepare_pod_sandbox(self, spec: PodSandboxSpec) -> PodSandboxStatus:
        validate_sandbox_spec(spec)
        existing = self._find_pod(spec.uid)
        if existing is None:
            self._create_pod(spec)
        pod_id = existing["Id"] if existing else None
        status = self._sandbox_status_by_ref(pod_id or self.pod_name(spec))
        if status is None:
            raise PodSandboxNotFoundError(spec.uid)
        if not status.ready:
            self._start_pod(status.sandbox_id, spec.uid, remove_on_failure=existing is None)
            status = self._sandbox_status_by_ref(status.sandbox_id)
            if status is None:
                raise PodSandboxNotFoundError(spec.uid)
        return status

    def _create_pod(self, spec: PodSandboxSpec) -> None:
        body: dict[str, Any] = {
            "name": self.pod_name(spec),
            "labels": sandbox_labels(spec),
            "hostname": spec.hostname or spec.name,
            "netns": {"nsmode": "bridge"},
            "exit_policy": "continue",
        }
        if spec.network:
            options: dict[str, Any] = {}
            if spec.static_ip:
                options["static_ips"] = [spec.static_ip]
            body["Networks"] = {spec.network: options}
        if spec.port_mappings:
            body["portmappings"] = [
                {"container_port": p.container_port, "host_port": p.host_port,
                 "protocol": p.protocol, "host_ip": p.host_ip}
                for p in spec.port_mappings]
        if spec.dns_servers:
            body["dns_server"] = list(spec.dns_servers)
        if spec.dns_search:
            body["dns_search"] = list(spec.dns_search)
        if spec.dns_options:
            body["dns_option"] = list(spec.dns_options)
        response = self._call("post", "/pods/create", body=body)
        if response.status_code == 409 and self._find_pod(spec.uid) is not None:
            return  # created concurrently by another caller
        if response.status_code not in (200, 201):
            message = self._message(response)
            # Podman can leave a half-made pod behind (e.g. unknown network): remove it.
            leftover = self._find_pod(spec.uid)
            if leftover is not None:
                self._call("delete", f"/pods/{leftover['Id']}",
                           params={"force": "true", "timeout": 0})
            raise ContainerRuntimeError(f"create pod sandbox {self.pod_name(spec)}: {message}")

    def _start_pod(self, pod_id: str, pod_uid: str, remove_on_failure: bool) -> None:
        response = self._call("post", f"/pods/{pod_id}/start")
        if response.status_code in (200, 304):
            return
        message = self._message(response)
        if remove_on_failure:
            self._call("delete", f"/pods/{pod_id}", params={"force": "true"})
        raise ContainerRuntimeError(f"start pod sandbox of {pod_uid}: {message}")

    def _sandbox_status_by_ref(self, ref: str) -> PodSandboxStatus | None:
        response = self._call("get", f"/pods/{ref}/json")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ContainerRuntimeError(f"inspect pod {ref}: {self._message(response)}")
        pod = response.json()
        labels = pod.get("Labels") or {}
        infra_id = pod.get("InfraContainerID") or ""
        ip, network, running = "", "", False
        if infra_id:
            infra = self._call("get", f"/containers/{infra_id}/json")
            if infra.status_code == 200:
                data = infra.json()
                running = (data.get("State") or {}).get("Status") == "running"
                networks = ((data.get("NetworkSettings") or {}).get("Networks") or {})
                for net_name, net in sorted(networks.items()):
                    if net.get("IPAddress"):
                        ip, network = net["IPAddress"], net_name
                        break
        return PodSandboxStatus(
            sandbox_id=pod["Id"], uid=labels.get(LABEL_POD_UID, ""),
            namespace=labels.get(LABEL_POD_NAMESPACE, ""),
            name=labels.get(LABEL_POD_NAME, ""), node=labels.get(LABEL_NODE, ""),
            ready=running, ip=ip, network=network,
            created_at=_parse_time(pod.get("Created")), labels=labels)

    def pod_sandbox_status(self, pod_uid: str) -> PodSandboxStatus | None:
        found = self._find_pod(pod_uid)
        return self._sandbox_status_by_ref(found["Id"]) if found else None

    def list_pod_sandboxes(self) -> list[PodSandboxStatus]:
        response = self._call("get", "/pods/json", params=self._filters())
        if response.status_code != 200:
            raise ContainerRuntimeError(f"list pods: {self._message(response)}")
        statuses = [self._sandbox_status_by_ref(p["Id"]) for p in response.json() or []]
        return sorted((s for s in statuses if s is not None), key=lambda s: s.uid)

    def remove_pod_sandbox(self, pod_uid: str, grace_seconds: float) -> None:
        found = self._find_pod(pod_uid)
        running = [c for c in self.list_containers(pod_uid)
                   if c.state is ContainerState.RUNNING]
        if running:
            with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
                for future in [pool.submit(self._stop_quietly, c.container_id, grace_seconds)
                               for c in running]:
                    future.result()
        for container in self.list_containers(pod_uid):
            self.remove_container(container.container_id)
        if found is None:
            return
        response = self._call("delete", f"/pods/{found['Id']}",
                              params={"force": "true", "timeout": 0})
        if response.status_code not in (200, 404):
            raise ContainerRuntimeError(f"remove pod sandbox of {pod_uid}: "
                                        f"{self._message(response)}")

    def _stop_quietly(self, container_id: str, grace_seconds: float) -> None:
        """Stop from a pool thread, then drop that thread's connection."""
        try:
            with contextlib.suppress(ContainerNotFoundError):
                self.stop_container(container_id, grace_seconds)
        finally:
            self.close()

    # --- containers -------------------------------------------------------------------------

    def create_container(self, pod_uid: str, spec: ContainerSpec, attempt: int) -> str:
        validate_container_spec(spec)
        pod = self._find_pod(pod_uid)
        if pod is None:
            raise PodSandboxNotFoundError(pod_uid)
        if not self.image_present(spec.image):
            raise ImageNotPresentError(spec.image)
        pod_labels = pod.get("Labels") or {}
        name = self.container_name(pod_labels, spec, attempt)
        body = self._container_body(pod["Id"], name, container_labels(pod_labels, spec, attempt),
                                    spec)
        response = self._call("post", "/containers/create", body=body)
        if response.status_code == 201:
            return str(response.json()["Id"])
        message = self._message(response)
        if "image not known" in message or "no such image" in message.lower():
            raise ImageNotPresentError(spec.image)
        raise ContainerCreateError(f"create container {spec.name!r} (attempt {attempt}) of "
                                   f"pod {pod_uid}: {message}")

    @staticmethod
    def _container_body(pod_id: str, name: str, labels: Mapping[str, str],
                        spec: ContainerSpec) -> dict[str, Any]:
        entrypoint, cmd = container_argv(spec)
        body: dict[str, Any] = {
            "name": name, "pod": pod_id, "image": spec.image, "labels": dict(labels),
            "env": dict(spec.env), "stop_signal": int(spec.stop_signal),
            "restart_policy": "no", "init": spec.use_init_process,
            "log_configuration": {"driver": "k8s-file"},
        }
        if entrypoint is not None:
            body["entrypoint"] = entrypoint
        if cmd is not None:
            body["command"] = cmd
        if spec.working_dir:
            body["work_dir"] = spec.working_dir
        limits: dict[str, Any] = {}
        if spec.memory_limit_bytes:
            limits["memory"] = {"limit": spec.memory_limit_bytes,
                                "swap": spec.memory_limit_bytes}
        cpu: dict[str, Any] = {}
        if spec.cpu_limit_millicores:
            cpu.update(period=CFS_PERIOD_US, quota=cpu_quota_us(spec.cpu_limit_millicores))
        if spec.cpu_request_millicores:
            cpu["shares"] = cpu_shares(spec.cpu_request_millicores)
        if cpu:
            limits["cpu"] = cpu
        if limits:
            body["resource_limits"] = limits
        mounts = []
        for mount in spec.mounts:
            if mount.kind is MountKind.BIND:
                options = ["rbind", "ro" if mount.read_only else "rw"]
                mounts.append({"destination": mount.target, "source": mount.source,
                               "type": "bind", "options": options})
            else:
                options = ["rw" if not mount.read_only else "ro", "nosuid", "nodev"]
                if mount.tmpfs_size_bytes:
                    options.append(f"size={mount.tmpfs_size_bytes}")
                mounts.append({"destination": mount.target, "source": "tmpfs",
                               "type": "tmpfs", "options": options})
        if mounts:
            body["mounts"] = mounts
        return body

    def _inspect(self, container_id: str) -> dict[str, Any]:
        response = self._call("get", f"/containers/{container_id}/json")
        if response.status_code == 404:
            raise ContainerNotFoundError(container_id)
        if response.status_code != 200:
            raise ContainerRuntimeError(f"inspect {container_id}: {self._message(response)}")
        return response.json()

    def start_container(self, container_id: str) -> None:
        data = self._inspect(container_id)
        state = _STATES.get((data.get("State") or {}).get("Status", ""), ContainerState.EXITED)
        if state is ContainerState.RUNNING:
            return
        if state is ContainerState.EXITED:
            raise ContainerStartError(f"container {container_id} has exited; create a new "
                                      "attempt instead of restarting it")
        response = self._call("post", f"/containers/{container_id}/start")
        if response.status_code in (204, 304):
            return
        if response.status_code == 404:
            raise ContainerNotFoundError(container_id)
        raise ContainerStartError(f"start {container_id}: {self._message(response)}")

    def stop_container(self, container_id: str, grace_seconds: float) -> ContainerStatus:
        status = self.container_status(container_id)
        if status.state is not ContainerState.RUNNING:
            return status
        with self._stopped_lock:
            self._stopped_by_us.add(container_id)
        grace = max(0, math.ceil(grace_seconds))
        response = self._call("post", f"/containers/{container_id}/stop",
                              params={"timeout": grace}, timeout=grace + 60)
        if response.status_code == 404:
            raise ContainerNotFoundError(container_id)
        if response.status_code not in (204, 304):
            raise ContainerRuntimeError(f"stop {container_id}: {self._message(response)}")
        response = self._call("post", f"/containers/{container_id}/wait",
                              params={"condition": ["exited", "stopped"]}, timeout=60)
        return self.container_status(container_id)

    def remove_container(self, container_id: str) -> None:
        response = self._call("delete", f"/containers/{container_id}",
                              params={"force": "true", "timeout": 0, "v": "true"})
        if response.status_code not in (200, 204, 404):
            raise ContainerRuntimeError(f"remove {container_id}: {self._message(response)}")
        with self._stopped_lock:
            self._stopped_by_us.discard(container_id)

    def container_status(self, container_id: str) -> ContainerStatus:
        data = self._inspect(container_id)
        state = data.get("State") or {}
        config = data.get("Config") or {}
        return self._status(
            container_id=data["Id"], labels=config.get("Labels") or {},
            image=config.get("Image") or data.get("ImageName") or "",
            raw_state=state.get("Status", ""), exit_code=state.get("ExitCode"),
            created_at=_parse_time(data.get("Created")),
            started_at=_parse_time(state.get("StartedAt")),
            finished_at=_parse_time(state.get("FinishedAt")),
            oom_killed=bool(state.get("OOMKilled")))

    def _status(self, *, container_id: str, labels: Mapping[str, str], image: str,
                raw_state: str, exit_code: int | None, created_at: datetime | None,
                started_at: datetime | None, finished_at: datetime | None,
                oom_killed: bool) -> ContainerStatus:
        state = _STATES.get(raw_state, ContainerState.EXITED)
        code = int(exit_code) if state is ContainerState.EXITED and exit_code is not None \
            else None
        with self._stopped_lock:
            stopped_by_us = container_id in self._stopped_by_us
        memory_limited = labels.get(LABEL_MEMORY_LIMITED) == "true"
        oom = state is ContainerState.EXITED and (
            oom_killed or is_oom_suspected(code, memory_limited, stopped_by_us))
        return ContainerStatus(
            container_id=container_id, name=labels.get(LABEL_CONTAINER_NAME, ""),
            pod_uid=labels.get(LABEL_POD_UID, ""),
            namespace=labels.get(LABEL_POD_NAMESPACE, ""),
            pod_name=labels.get(LABEL_POD_NAME, ""), node=labels.get(LABEL_NODE, ""),
            attempt=int(labels.get(LABEL_ATTEMPT, "0") or 0), image=image, state=state,
            exit_code=code, created_at=created_at,
            started_at=started_at if state is not ContainerState.CREATED else None,
            finished_at=finished_at if state is ContainerState.EXITED else None,
            oom_suspected=oom, stopped_by_runtime=stopped_by_us,
            init_container=labels.get(LABEL_INIT) == "true", labels=dict(labels))

    def list_containers(self, pod_uid: str | None = None) -> list[ContainerStatus]:
        params = {"all": "true", **self._filters(pod_uid)}
        response = self._call("get", "/containers/json", params=params)
        if response.status_code != 200:
            raise ContainerRuntimeError(f"list containers: {self._message(response)}")
        statuses = []
        for item in response.json() or []:
            labels = item.get("Labels") or {}
            if labels.get(LABEL_CONTAINER_NAME) is None:
                continue  # a pod's infra container
            statuses.append(self._status(
                container_id=item["Id"], labels=labels, image=item.get("Image", ""),
                raw_state=item.get("State", ""), exit_code=item.get("ExitCode"),
                created_at=_parse_time(item.get("Created")),
                started_at=_epoch(item.get("StartedAt")),
                finished_at=_epoch(item.get("ExitedAt")), oom_killed=False))
        return sorted(statuses, key=lambda s: (s.pod_uid, s.name, s.attempt))

    def logs(self, container_id: str, *, follow: bool = False, since: datetime | None = None,
             tail: int | None = None, timestamps: bool = False) -> Iterator[bytes]:
        params: dict[str, Any] = {"stdout": "true", "stderr": "true",
                                  "follow": "true" if follow else "false",
                                  "timestamps": "true" if timestamps else "false"}
        if since is not None:
            params["since"] = str(since.timestamp())
        if tail is not None:
            params["tail"] = str(max(0, tail))
        response = self._call("get", f"/containers/{container_id}/logs", params=params,
                              stream=True, timeout=None if follow else 60)
        if response.status_code == 404:
            raise ContainerNotFoundError(container_id)
        if response.status_code != 200:
            raise ContainerRuntimeError(f"logs of {container_id}: {self._message(response)}")
        return _close_after(response, stream_frames(response))

    def exec(self, container_id: str, command: Sequence[str], *, stdin: bytes | None = None,
             tty: bool = False, timeout_seconds: float | None = None) -> ExecResult:
        session = self.exec_stream(container_id, command,
                                   stdin=iter([stdin]) if stdin is not None else None, tty=tty)
        try:
            session.set_timeout(timeout_seconds)
            out, err = bytearray(), bytearray()
            for stream, data in session.output():
                (err if stream == "stderr" else out).extend(data)
            return ExecResult(exit_code=session.exit_code(), stdout=bytes(out),
                              stderr=bytes(err))
        finally:
            session.close()

    def exec_stream(self, container_id: str, command: Sequence[str], *,
                    stdin: Iterator[bytes] | None = None, tty: bool = False,
                    size: TerminalSize | None = None) -> PodmanExecSession:
        if not command:
            raise ContainerRuntimeError(f"exec in {container_id}: empty command")
        return PodmanExecSession(self.config.socket_path, container_id, command, stdin, tty,
                                 size)

    def container_usage(self) -> dict[str, ContainerUsage]:
        # Podman's stats of every running container (one cgroup read each), then only ours:
        # asking for named containers fails as a whole when one of them just exited.
        ours = {c.container_id for c in self.list_containers()
                if c.state is ContainerState.RUNNING}
        if not ours:
            return {}
        response = self._call("get", "/containers/stats", params={"stream": "false"})
        if response.status_code != 200:
            raise ContainerRuntimeError(f"container stats: {self._message(response)}")
        usage = {}
        for item in (response.json() or {}).get("Stats") or []:
            container_id = item.get("ContainerID", "")
            if container_id in ours:
                usage[container_id] = ContainerUsage(
                    container_id, int(item.get("CPUNano") or 0), int(item.get("MemUsage") or 0))
        return usage

    def events(self, stop: threading.Event) -> Iterator[ContainerEvent]:
        return stream_events(self.config.socket_path, {
            "type": ["container"], "event": list(PODMAN_ACTIONS),
            "label": [f"{LABEL_MANAGED}=true", f"{LABEL_NODE}={self.node}"]}, stop)

    # --- images -----------------------------------------------------------------------------

    def image_present(self, image: str) -> bool:
        response = self._call("get", f"/images/{image}/exists")
        if response.status_code == 204:
            return True
        if response.status_code == 404:
            return False
        raise ContainerRuntimeError(f"image {image!r}: {self._message(response)}")

    def list_images(self) -> list[ImageInfo]:
        response = self._call("get", "/images/json")
        if response.status_code != 200:
            raise ContainerRuntimeError(f"list images: {self._message(response)}")
        return sorted((ImageInfo(image_id=i.get("Id", ""),
                                 names=tuple(i.get("Names") or i.get("RepoTags") or ()),
                                 size_bytes=int(i.get("Size") or 0))
                       for i in response.json() or []), key=lambda i: i.names)

    # --- networks (used by tests and node setup; pod networking owns real networks) -------

    def ensure_network(self, name: str, subnet: str, gateway: str, interface: str,
                       labels: Mapping[str, str] | None = None) -> None:
        """Create bridge network `name` (bridge device `interface`) unless it exists.
        Idempotent; an existing network is left unchanged."""
        if self._call("get", f"/networks/{name}/exists").status_code == 204:
            return
        response = self._call("post", "/networks/create", body={
            "name": name, "driver": "bridge", "network_interface": interface,
            "subnets": [{"subnet": subnet, "gateway": gateway}],
            "labels": dict(labels or {}), "dns_enabled": False})
        if response.status_code not in (200, 201):
            raise ContainerRuntimeError(f"create network {name}: {self._message(response)}")

    def remove_network(self, name: str) -> None:
        """Remove network `name`; idempotent (a missing network is not an error)."""
        response = self._call("delete", f"/networks/{name}", params={"force": "true"})
        if response.status_code not in (200, 204, 404):
            raise ContainerRuntimeError(f"remove network {name}: {self._message(response)}")

    def close(self) -> None:
        """Close the calling thread's connection (each thread has its own; a later call
        reconnects). Idempotent."""
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
            self._local.client = None


def _close_after(response: Any, frames: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from frames
    finally:
        response.close()


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time from Podman (nanoseconds allowed) or epoch seconds; None if unset."""
    if value in (None, "", 0):
        return None
    if isinstance(value, int | float):
        return _epoch(value)
    text = str(value)
    if text.startswith("0001-01-01"):
        return None
    text = text.replace("Z", "+00:00")
    fraction = _FRACTION.search(text)
    if fraction:  # Python reads at most microseconds: cut nanoseconds to six digits
        digits = fraction.group(1)[:6].ljust(6, "0")
        text = f"{text[:fraction.start()]}.{digits}{text[fraction.end():]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _epoch(value: Any) -> datetime | None:
    if not value or int(value) <= 0:
        return None
    return datetime.fromtimestamp(float(value), tz=UTC)
