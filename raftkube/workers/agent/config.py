"""The worker's configuration file (`raftkube worker --config FILE`, YAML).

Example (every field but nodeName and clientConfig is optional):

```yaml
nodeName: w1                          # the Node this worker registers (DNS-1123 name)
clientConfig: /etc/raftkube/workers/w1/config.yaml   # written by `raftkube init`
runtime:
  kind: podman                        # podman | fake
  podmanSocket: /run/raftkube/podman.sock
  hostDir: /var/lib/raftkube/podman   # per-node store (containers.conf + storage.conf)
  netns: ""                           # run the podman service inside /run/netns/NAME
  network: ""                         # podman network pods join ("" = podman's default)
  startService: true                  # start `podman system service` if none answers
nodeIP: 10.0.0.11                     # InternalIP; "" = the address routing to a master
podCIDR: 10.244.1.0/24
labels: {disk: ssd}
taints: [{key: dedicated, value: db, effect: NoSchedule}]
capacity: {cpu: "4", memory: 8Gi, pods: "110"}   # overrides of what the machine reports
reserved: {cpu: 100m, memory: 256Mi}  # capacity - reserved = allocatable
dataDir: /var/lib/raftkube/agent      # pod volumes (emptyDir, configMap/secret views)
leaseIntervalSeconds: 2
leaseDurationSeconds: 40
fencingTimeoutSeconds: 6
fenceWatchdog: true                   # a process that fences StatefulSet pods if the agent dies
nodeStatusIntervalSeconds: 60
resolvConf: {nameservers: [10.96.0.10], searches: [svc.cluster.local], options: [ndots:5]}
backoff: {initialSeconds: 10, maxSeconds: 300}
nodeAgent: {listen: 0.0.0.0:10250, certFile: ..., keyFile: ..., caFile: ...}
statsIntervalSeconds: 10              # how often CPU and memory usage are sampled
metricsAddress: 127.0.0.1:9102        # Prometheus metrics; "" (the default) turns them off
```
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from raftkube.objects.quantity import is_quantity

FENCING_TIMEOUT_SECONDS = 6.0
"""Shared with the node lifecycle controller: an agent that could not renew its Lease for
this long stops its StatefulSet pods and the pods being deleted by itself."""
LEASE_NAMESPACE = "raftkube-node-lease"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class WorkerConfigError(ValueError):
    """The worker config is wrong; the message names the file, the field and the reason."""


@dataclass(frozen=True)
class RuntimeConfig:
    """Which container runtime the agent drives.

    kind: "podman" (real containers) or "fake" (in memory, for hollow nodes).
    podman_socket: the Podman API unix socket.
    host_dir: per-node Podman store directory (containers.conf, storage.conf, storage);
        None = the machine-wide Podman configuration.
    netns: run the Podman service inside /run/netns/<netns> ("" = this namespace).
    network: Podman network the pods join ("" = Podman's default network).
    start_service: start `podman system service` on the socket when none answers.
    fake_images: images the fake runtime reports present (kind fake only).
    """

    kind: str = "podman"
    podman_socket: Path = Path("/run/raftkube/podman.sock")
    host_dir: Path | None = None
    netns: str = ""
    network: str = ""
    start_service: bool = True
    fake_images: tuple[str, ...] = ("localhost/busybox:latest",)


@dataclass(frozen=True)
class ResolvConfig:
    """The /etc/resolv.conf every pod gets (empty = the runtime's default).

    nameservers: DNS server addresses; searches: search domains; options: e.g. "ndots:5".
    """

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackoffConfig:
    """Restart back-off of crashing containers: initial_seconds, doubled per restart up to
    max_seconds; reset after a container ran for reset_after_seconds."""

    initial_seconds: float = 10.0
    max_seconds: float = 300.0
    reset_after_seconds: float = 600.0


@dataclass(frozen=True)
class NodeAgentServiceConfig:
    """The worker's logs/exec gRPC service (node_agent.proto).

    listen: HOST:PORT to serve on ("" = the service is off).
    cert_file / key_file: the serving certificate, with the node's name as DNS SAN (the
        masters check it): signed by the cluster CA (`raftkube init`, `credentials
        add-worker`) or by the node serving CA (`raftkube join`).
    ca_file: callers must present a client certificate signed by this CA ...
    allowed_groups: ... whose groups (certificate O values) include one of these.
    """

    listen: str = ""
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    allowed_groups: tuple[str, ...] = ("system:masters",)


@dataclass(frozen=True)
class NetworkSettings:
    """The worker's network role: service proxy (nftables), node DNS, ingress and routes to
    other nodes' pod subnets, all fed from the API. Absent from the config = not run.

    cluster_cidr: every pod address (pod-to-pod traffic inside it is not masqueraded).
    service_cidr: the Service virtual IP range.
    cluster_domain: the DNS domain served from memory.
    dns_port: port of the node DNS server on the node address (0 = no DNS server).
    ingress_port: HTTP port of the ingress proxy (0 = no ingress on this node).
    node_ports_on_localhost: also serve NodePorts on 127.0.0.1.
    proxy_table: name of the service proxy's nft table.
    """

    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    cluster_domain: str = "cluster.local"
    dns_port: int = 53
    ingress_port: int = 80
    node_ports_on_localhost: bool = False
    proxy_table: str = "raftkube_proxy"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything one worker agent needs.

    node_name: name of the Node object this worker registers and serves.
    client_config: the ClientConfig file with the masters and this node's credentials.
    runtime: which container runtime to drive (RuntimeConfig).
    node_ip: the node's InternalIP ("" = the local address that routes to the first master).
    pod_cidr: this node's pod subnet ("" = none configured yet).
    labels: extra Node labels (kubernetes.io/hostname and kubernetes.io/os are added).
    taints: Node taints, as dicts with key, value, effect.
    capacity: overrides of cpu / memory / pods / ephemeral-storage the machine reports.
    reserved: amounts subtracted from capacity to get allocatable (system daemons).
    data_dir: where pod volumes live (emptyDir, configMap and secret views).
    lease_interval_seconds: how often the node Lease is renewed.
    lease_duration_seconds: leaseDurationSeconds written in the Lease.
    fencing_timeout_seconds: without a successful renewal for this long, kill the
        StatefulSet pods and the pods being deleted (see FENCING_TIMEOUT_SECONDS).
    fence_watchdog: on Podman, keep a watchdog process that kills the StatefulSet pods
        when the Lease goes unrenewed that long while the agent is dead, hung or stopped
        (fence_watchdog.py); turning it off breaks the one-copy guarantee on agent death.
    node_status_interval_seconds: Node status is written when it changes or this often.
    resolv_conf: pods' DNS settings (ResolvConfig).
    backoff: container restart back-off (BackoffConfig).
    config_refresh_seconds: how often configMap/secret volumes are re-read and updated.
    relist_interval_seconds: how often the runtime's containers are listed to notice exits.
    pod_workers: threads executing pod actions in parallel.
    node_agent: the logs/exec service (NodeAgentServiceConfig).
    network: the network role (NetworkSettings); None = not run by this worker.
    stats_interval_seconds: how often container and node usage are sampled (`top`, metrics).
    metrics_address: HOST:PORT where Prometheus metrics are served ("" = not served).
    """

    node_name: str
    client_config: Path
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    node_ip: str = ""
    pod_cidr: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()
    capacity: dict[str, str] = field(default_factory=dict)
    reserved: dict[str, str] = field(default_factory=dict)
    data_dir: Path = Path("/var/lib/raftkube/agent")
    lease_interval_seconds: float = 2.0
    lease_duration_seconds: int = 40
    fencing_timeout_seconds: float = FENCING_TIMEOUT_SECONDS
    fence_watchdog: bool = True
    node_status_interval_seconds: float = 60.0
    resolv_conf: ResolvConfig = field(default_factory=ResolvConfig)
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    config_refresh_seconds: float = 10.0
    relist_interval_seconds: float = 0.5
    pod_workers: int = 8
    node_agent: NodeAgentServiceConfig = field(default_factory=NodeAgentServiceConfig)
    network: NetworkSettings | None = None
    stats_interval_seconds: float = 10.0
    metrics_address: str = ""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.upper() if part in ("ip", "cidr") else part.capitalize()
                          for part in rest)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WorkerConfigError(f"{where}: expected a mapping")
    return value


def _check_unknown(doc: dict[str, Any], cls: type, where: str) -> dict[str, str]:
    known = {_camel(f.name): f.name for f in fields(cls)}
    for key in doc:
        if key not in known:
            at = f"{where} {key}" if where.endswith(":") else f"{where}.{key}"
            raise WorkerConfigError(f"{at}: unknown field (known: "
                                    f"{', '.join(sorted(known))})")
    return known


def _number(value: Any, where: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkerConfigError(f"{where}: expected a number, got {value!r}")
    if value <= minimum:
        raise WorkerConfigError(f"{where}: must be greater than {minimum:g}")
    return float(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WorkerConfigError(f"{where}: expected a list of strings")
    return tuple(value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    out = {}
    for key, item in _mapping(value, where).items():
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise WorkerConfigError(f"{where}.{key}: expected a string")
        out[str(key)] = str(item)
    return out


def _path(value: Any, where: str, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise WorkerConfigError(f"{where}: expected a path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _simple(doc: dict[str, Any], cls: type, where: str, base: Path,
            paths: tuple[str, ...] = ()) -> Any:
    known = _check_unknown(doc, cls, where)
    kwargs: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(cls)}
    for key, value in doc.items():
        name = known[key]
        kind = str(types[name])
        at = f"{where}.{key}"
        if name in paths:
            kwargs[name] = _path(value, at, base)
        elif "tuple" in kind:
            kwargs[name] = _strings(value, at)
        elif kind == "bool":
            if not isinstance(value, bool):
                raise WorkerConfigError(f"{at}: expected true or false")
            kwargs[name] = value
        elif kind == "float":
            kwargs[name] = _number(value, at)
        else:
            if not isinstance(value, str):
                raise WorkerConfigError(f"{at}: expected a string")
            kwargs[name] = value
    return cls(**kwargs)


def parse_worker_config(doc: Any, source: str, base_dir: Path) -> WorkerConfig:
    """A WorkerConfig from a parsed YAML document. WorkerConfigError names the field."""
    if not isinstance(doc, dict):
        raise WorkerConfigError(f"{source}: expected a mapping")
    known = _check_unknown(doc, WorkerConfig, f"{source}:")
    kwargs: dict[str, Any] = {}
    for key in ("nodeName", "clientConfig"):
        if key not in doc:
            raise WorkerConfigError(f"{source}: {key}: required")
    for key, value in doc.items():
        name = known[key]
        at = f"{source}: {key}"
        if name == "node_name":
            if not isinstance(value, str) or not _NAME.match(value):
                raise WorkerConfigError(f"{at}: {value!r} is not a lower-case DNS name")
            kwargs[name] = value
        elif name in ("client_config", "data_dir"):
            kwargs[name] = _path(value, at, base_dir)
        elif name == "runtime":
            runtime = _simple(_mapping(value, at), RuntimeConfig, at, base_dir,
                              paths=("podman_socket", "host_dir"))
            if runtime.kind not in ("podman", "fake"):
                raise WorkerConfigError(f"{at}.kind: {runtime.kind!r} is not podman or fake")
            kwargs[name] = runtime
        elif name == "node_ip":
            if value:
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    raise WorkerConfigError(f"{at}: {value!r} is not an IP address") from None
            kwargs[name] = str(value or "")
        elif name == "pod_cidr":
            if value:
                try:
                    ipaddress.ip_network(value)
                except ValueError as exc:
                    raise WorkerConfigError(f"{at}: {value!r}: {exc}") from None
            kwargs[name] = str(value or "")
        elif name == "labels":
            kwargs[name] = _string_map(value, at)
        elif name in ("capacity", "reserved"):
            amounts = _string_map(value, at)
            for resource, amount in amounts.items():
                if not is_quantity(amount):
                    raise WorkerConfigError(f"{at}.{resource}: {amount!r} is not a quantity")
            kwargs[name] = amounts
        elif name == "taints":
            kwargs[name] = tuple(_taint(t, f"{at}[{i}]")
                                 for i, t in enumerate(value or []))
        elif name == "lease_duration_seconds" or name == "pod_workers":
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise WorkerConfigError(f"{at}: expected a positive integer")
            kwargs[name] = value
        elif name == "resolv_conf":
            kwargs[name] = _simple(_mapping(value, at), ResolvConfig, at, base_dir)
        elif name == "backoff":
            kwargs[name] = _simple(_mapping(value, at), BackoffConfig, at, base_dir)
        elif name == "network":
            kwargs[name] = _network(_mapping(value, at), at)
        elif name == "fence_watchdog":
            if not isinstance(value, bool):
                raise WorkerConfigError(f"{at}: expected true or false")
            kwargs[name] = value
        elif name == "metrics_address":
            kwargs[name] = _listen_address(value, at)
        elif name == "node_agent":
            service = _simple(_mapping(value, at), NodeAgentServiceConfig, at, base_dir,
                              paths=("cert_file", "key_file", "ca_file"))
            if service.listen and not (service.cert_file and service.key_file
                                       and service.ca_file):
                raise WorkerConfigError(f"{at}: listen needs certFile, keyFile and caFile")
            kwargs[name] = service
        else:
            kwargs[name] = _number(value, at)
    return WorkerConfig(**kwargs)


def _network(doc: dict[str, Any], where: str) -> NetworkSettings:
    known = _check_unknown(doc, NetworkSettings, where)
    kwargs: dict[str, Any] = {}
    for key, value in doc.items():
        name, at = known[key], f"{where}.{key}"
        if name in ("dns_port", "ingress_port"):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
                raise WorkerConfigError(f"{at}: expected a port number (0 = off)")
            kwargs[name] = value
        elif name == "node_ports_on_localhost":
            if not isinstance(value, bool):
                raise WorkerConfigError(f"{at}: expected true or false")
            kwargs[name] = value
        elif name in ("cluster_cidr", "service_cidr"):
            try:
                ipaddress.ip_network(value)
            except (TypeError, ValueError):
                raise WorkerConfigError(f"{at}: {value!r} is not a CIDR") from None
            kwargs[name] = str(value)
        else:
            if not isinstance(value, str) or not value:
                raise WorkerConfigError(f"{at}: expected a string")
            kwargs[name] = value
    return NetworkSettings(**kwargs)


def _listen_address(value: Any, where: str) -> str:
    """"" or HOST:PORT with a port number."""
    if value in ("", None):
        return ""
    host, sep, port = str(value).rpartition(":")
    if not isinstance(value, str) or not sep or not host or not port.isdigit() \
            or not 0 < int(port) < 65536:
        raise WorkerConfigError(f"{where}: {value!r} is not HOST:PORT")
    return value


def _taint(value: Any, where: str) -> dict[str, str]:
    taint = _string_map(value, where)
    unknown = set(taint) - {"key", "value", "effect"}
    if unknown:
        raise WorkerConfigError(f"{where}.{sorted(unknown)[0]}: unknown field")
    if not taint.get("key"):
        raise WorkerConfigError(f"{where}.key: required")
    if taint.get("effect") not in _TAINT_EFFECTS:
        raise WorkerConfigError(f"{where}.effect: {taint.get('effect')!r} is not one of "
                                f"{', '.join(_TAINT_EFFECTS)}")
    return taint


def load_worker_config(path: Path) -> WorkerConfig:
    """Read and check the worker config file; WorkerConfigError names file and field."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise WorkerConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkerConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_worker_config(doc, str(path), Path(path).resolve().parent)
