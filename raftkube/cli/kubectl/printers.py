"""What `raftkubectl get` and `describe` print, as pure functions of objects and the time.

    rows(objects, now, wide) --> cells per kind (kubectl's columns) --> aligned text

Column sets follow kubectl: pods NAME READY STATUS RESTARTS AGE (wide: IP NODE), deployments
NAME READY UP-TO-DATE AVAILABLE AGE, and so on; AGE comes from creationTimestamp.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from raftkube.client.reconcile import parse_timestamp
from raftkube.objects import registry
from raftkube.objects.codec import encode, int_or_string_value

NONE = "<none>"


def human_age(seconds: float) -> str:
    """kubectl's short duration: 45s, 3m20s, 17m, 5h3m, 30h, 3d4h, 45d, 3y."""
    s = max(0, math.floor(seconds))
    if s < 120:
        return f"{s}s"
    m, h, d = s // 60, s // 3600, s // 86400
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if h < 3:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def age(timestamp: str, now: float) -> str:
    when = parse_timestamp(timestamp) if timestamp else None
    return human_age(now - when) if when is not None else "<unknown>"


def resource_name(obj: Message) -> str:
    """`deployment.apps/web`, `pod/web-0` (what `-o name` and apply print)."""
    info = registry.for_message(obj)
    return f"{type_name(info)}/{obj.metadata.name}"  # type: ignore[attr-defined]


def type_name(info: registry.KindInfo) -> str:
    return f"{info.singular}.{info.group}" if info.group else info.singular


def plural_name(info: registry.KindInfo) -> str:
    return f"{info.plural}.{info.group}" if info.group else info.plural


def align(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by three spaces (kubectl's tabwriter look)."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell
                 for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


# ---- per-kind columns ----------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    headers: tuple[str, ...]
    wide: tuple[str, ...]
    cells: Callable[[Any, float], list[str]]
    wide_cells: Callable[[Any, float], list[str]] = lambda obj, now: []


def pod_status(pod: Any) -> str:
    """The STATUS kubectl shows: Terminating, a container's waiting/terminated reason, the
    pod's reason, else its phase."""
    if pod.metadata.deletion_timestamp:
        return "Terminating"
    reason = pod.status.reason or pod.status.phase or "Pending"
    for cs in pod.status.container_statuses:
        if cs.state.HasField("waiting") and cs.state.waiting.reason:
            reason = cs.state.waiting.reason
        elif cs.state.HasField("terminated") and cs.state.terminated.reason:
            reason = cs.state.terminated.reason
    return reason


def _pod_cells(pod: Any, now: float) -> list[str]:
    total = len(pod.spec.containers)
    ready = sum(1 for cs in pod.status.container_statuses if cs.ready)
    restarts = sum(cs.restart_count for cs in pod.status.container_statuses)
    return [f"{ready}/{total}", pod_status(pod), str(restarts),
            age(pod.metadata.creation_timestamp, now)]


def _pod_wide(pod: Any, now: float) -> list[str]:
    return [pod.status.pod_ip or NONE, pod.spec.node_name or NONE]


def _replicas(obj: Any) -> int:
    return obj.spec.replicas if obj.spec.HasField("replicas") else 1


def _deployment_cells(d: Any, now: float) -> list[str]:
    return [f"{d.status.ready_replicas}/{_replicas(d)}", str(d.status.updated_replicas),
            str(d.status.available_replicas), age(d.metadata.creation_timestamp, now)]


def _template_wide(obj: Any, now: float) -> list[str]:
    containers = obj.spec.template.spec.containers
    labels = obj.spec.selector.match_labels
    return [",".join(c.name for c in containers) or NONE,
            ",".join(c.image for c in containers) or NONE,
            ",".join(f"{k}={labels[k]}" for k in sorted(labels)) or NONE]


def _replica_set_cells(rs: Any, now: float) -> list[str]:
    return [str(_replicas(rs)), str(rs.status.replicas), str(rs.status.ready_replicas),
            age(rs.metadata.creation_timestamp, now)]


def _stateful_set_cells(s: Any, now: float) -> list[str]:
    return [f"{s.status.ready_replicas}/{_replicas(s)}", age(s.metadata.creation_timestamp, now)]


def _ports(service: Any) -> str:
    parts = []
    for p in service.spec.ports:
        text = f"{p.port}:{p.node_port}" if p.node_port else str(p.port)
        parts.append(f"{text}/{p.protocol or 'TCP'}")
    return ",".join(parts) or NONE


def _service_cells(s: Any, now: float) -> list[str]:
    external = ",".join(s.spec.external_ips) or NONE
    return [s.spec.type or "ClusterIP", s.spec.cluster_ip or NONE, external, _ports(s),
            age(s.metadata.creation_timestamp, now)]


def _service_wide(s: Any, now: float) -> list[str]:
    sel = s.spec.selector
    return [",".join(f"{k}={sel[k]}" for k in sorted(sel)) or NONE]


def node_status(node: Any) -> str:
    ready = next((c.status for c in node.status.conditions if c.type == "Ready"), "")
    text = "Ready" if ready == "True" else ("NotReady" if ready else "Unknown")
    return text + (",SchedulingDisabled" if node.spec.unschedulable else "")


def _node_cells(n: Any, now: float) -> list[str]:
    roles = sorted(k.rpartition("/")[2] for k in n.metadata.labels
                   if k.startswith("node-role.kubernetes.io/"))
    return [node_status(n), ",".join(roles) or NONE, age(n.metadata.creation_timestamp, now),
            n.status.node_info.kubelet_version or NONE]


def _node_wide(n: Any, now: float) -> list[str]:
    internal = next((a.address for a in n.status.addresses if a.type == "InternalIP"), NONE)
    return [internal, n.status.node_info.os_image or NONE,
            n.status.node_info.kernel_version or NONE,
            n.status.node_info.container_runtime_version or NONE]


def _namespace_cells(ns: Any, now: float) -> list[str]:
    phase = "Terminating" if ns.metadata.deletion_timestamp else (ns.status.phase or "Active")
    return [phase, age(ns.metadata.creation_timestamp, now)]


def _config_map_cells(cm: Any, now: float) -> list[str]:
    return [str(len(cm.data) + len(cm.binary_data)), age(cm.metadata.creation_timestamp, now)]


def _secret_cells(s: Any, now: float) -> list[str]:
    return [s.type or "Opaque", str(len(s.data) + len(s.string_data)),
            age(s.metadata.creation_timestamp, now)]


def _endpoints_cells(ep: Any, now: float) -> list[str]:
    addrs = [f"{a.ip}:{p.port}" for sub in ep.subsets for a in sub.addresses for p in sub.ports]
    text = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [text or NONE, age(ep.metadata.creation_timestamp, now)]


def event_time(ev: Any) -> str:
    return ev.last_timestamp or ev.event_time or ev.first_timestamp or \
        ev.metadata.creation_timestamp


def _event_cells(ev: Any, now: float) -> list[str]:
    ref = ev.involved_object
    target = f"{ref.kind.lower()}/{ref.name}" if ref.kind else ref.name
    return [ev.type or "Normal", ev.reason, target, ev.message]


def _ingress_cells(ing: Any, now: float) -> list[str]:
    hosts = ",".join(r.host for r in ing.spec.rules if r.host) or "*"
    addresses = [i.ip or i.hostname for i in ing.status.load_balancer.ingress]
    return [ing.spec.ingress_class_name or NONE, hosts, ",".join(addresses), "80",
            age(ing.metadata.creation_timestamp, now)]


def _pv_cells(pv: Any, now: float) -> list[str]:
    claim = pv.spec.claim_ref
    return [pv.spec.capacity.get("storage", ""), ",".join(_modes(pv.spec.access_modes)),
            pv.status.phase or "Pending",
            f"{claim.namespace}/{claim.name}" if claim.name else "",
            age(pv.metadata.creation_timestamp, now)]


def _pvc_cells(pvc: Any, now: float) -> list[str]:
    return [pvc.status.phase or "Pending", pvc.spec.volume_name,
            pvc.status.capacity.get("storage", ""), ",".join(_modes(pvc.status.access_modes)),
            age(pvc.metadata.creation_timestamp, now)]


def _modes(modes: Sequence[str]) -> list[str]:
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
             "ReadWriteOncePod": "RWOP"}
    return [short.get(m, m) for m in modes]


def _lease_cells(lease: Any, now: float) -> list[str]:
    return [lease.spec.holder_identity or NONE, age(lease.metadata.creation_timestamp, now)]


COLUMNS: dict[str, Columns] = {
    "Pod": Columns(("READY", "STATUS", "RESTARTS", "AGE"), ("IP", "NODE"),
                   _pod_cells, _pod_wide),
    "Deployment": Columns(("READY", "UP-TO-DATE", "AVAILABLE", "AGE"),
                          ("CONTAINERS", "IMAGES", "SELECTOR"), _deployment_cells,
                          _template_wide),
    "ReplicaSet": Columns(("DESIRED", "CURRENT", "READY", "AGE"),
                          ("CONTAINERS", "IMAGES", "SELECTOR"), _replica_set_cells,
                          _template_wide),
    "StatefulSet": Columns(("READY", "AGE"), ("CONTAINERS", "IMAGES", "SELECTOR"),
                           _stateful_set_cells, _template_wide),
    "Service": Columns(("TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"), ("SELECTOR",),
                       _service_cells, _service_wide),
    "Node": Columns(("STATUS", "ROLES", "AGE", "VERSION"),
                    ("INTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"),
                    _node_cells, _node_wide),
    "Namespace": Columns(("STATUS", "AGE"), (), _namespace_cells),
    "ConfigMap": Columns(("DATA", "AGE"), (), _config_map_cells),
    "Secret": Columns(("TYPE", "DATA", "AGE"), (), _secret_cells),
    "Endpoints": Columns(("ENDPOINTS", "AGE"), (), _endpoints_cells),
    "Event": Columns(("TYPE", "REASON", "OBJECT", "MESSAGE"), (), _event_cells),
    "Ingress": Columns(("CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"), (), _ingress_cells),
    "PersistentVolume": Columns(("CAPACITY", "ACCESS MODES", "STATUS", "CLAIM", "AGE"), (),
                                _pv_cells),
    "PersistentVolumeClaim": Columns(("STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "AGE"),
                                     (), _pvc_cells),
    "Lease": Columns(("HOLDER", "AGE"), (), _lease_cells),
}


def table_rows(info: registry.KindInfo, objects: Sequence[Message], now: float, *,
               wide: bool = False, with_namespace: bool = False,
               headers: bool = True) -> list[list[str]]:
    """Header and one row per object, in the order given."""
    columns = COLUMNS[info.kind]
    first = ["LAST SEEN"] if info.kind == "Event" else []
    head = [*(["NAMESPACE"] if with_namespace else []), *first,
            *([] if info.kind == "Event" else ["NAME"]), *columns.headers,
            *(columns.wide if wide else ())]
    rows = [head] if headers else []
    for obj in objects:
        meta = obj.metadata  # type: ignore[attr-defined]
        lead = [meta.namespace] if with_namespace else []
        if info.kind == "Event":
            lead.append(age(event_time(obj), now))
        else:
            lead.append(meta.name)
        row = [*lead, *columns.cells(obj, now)]
        if wide:
            row.extend(columns.wide_cells(obj, now))
        rows.append(row)
    return rows


def table(info: registry.KindInfo, objects: Sequence[Message], now: float, *,
          wide: bool = False, with_namespace: bool = False) -> str:
    """The `get` table; "" when there are no objects (the caller says "No resources")."""
    if not objects:
        return ""
    return align(table_rows(info, objects, now, wide=wide, with_namespace=with_namespace))


# ---- describe ------------------------------------------------------------------------------


def _tree(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(_tree(item, indent + 1))
            else:
                lines.append(f"{pad}{key}:\t{_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                sub = _tree(item, indent + 1)
                if sub:
                    sub[0] = f"{pad}- " + sub[0].lstrip()
                lines.extend(sub)
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    return lines


def _scalar(value: Any) -> str:
    if value in ({}, [], "", None):
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pairs(mapping: Any) -> list[str]:
    return [f"{k}={mapping[k]}" for k in sorted(mapping)] or [NONE]


def _align_tabs(lines: list[str]) -> list[str]:
    """Align "key:\\tvalue" lines of the same indentation block on one column."""
    width = max((len(line.split("\t")[0]) for line in lines if "\t" in line), default=0)
    return [(lambda k, v: f"{k.ljust(width + 1)}{v}")(*line.split("\t", 1))
            if "\t" in line else line for line in lines]


def describe(obj: Message, events: Sequence[Message], now: float) -> str:
    """kubectl-describe-like text: metadata, kind headline, spec and status as a tree,
    then the events about the object (oldest first)."""
    info = registry.for_message(obj)
    meta = obj.metadata  # type: ignore[attr-defined]
    lines = [f"Name:\t{meta.name}"]
    if info.namespaced:
        lines.append(f"Namespace:\t{meta.namespace}")
    labels, annotations = _pairs(meta.labels), _pairs(meta.annotations)
    lines.append(f"Labels:\t{labels[0]}")
    lines.extend(f"\t{x}" for x in labels[1:])
    lines.append(f"Annotations:\t{annotations[0]}")
    lines.extend(f"\t{x}" for x in annotations[1:])
    lines.append(f"CreationTimestamp:\t{meta.creation_timestamp or NONE}")
    if meta.deletion_timestamp:
        lines.append(f"DeletionTimestamp:\t{meta.deletion_timestamp}")
    for ref in meta.owner_references:
        if ref.controller:
            lines.append(f"Controlled By:\t{ref.kind}/{ref.name}")
    lines.extend(_headline(info, obj))
    data = encode(obj)
    for section in ("spec", "data", "subsets", "status"):
        if data.get(section):
            lines.append(f"{section.capitalize()}:")
            lines.extend(_tree(data[section], 1))
    text = "\n".join(_align_tabs(lines)) + "\n"
    if info.kind == "Event":
        return text
    if not events:
        return text + "Events:  <none>\n"
    rows = [["Type", "Reason", "Age", "From", "Message"],
            ["----", "------", "----", "----", "-------"]]
    for ev in events:
        rows.append([ev.type or "Normal", ev.reason, age(event_time(ev), now),  # type: ignore[attr-defined]
                     ev.source.component or ev.reporting_component or NONE,  # type: ignore[attr-defined]
                     ev.message])  # type: ignore[attr-defined]
    body = align(rows)
    return text + "Events:\n" + "".join(f"  {line}\n" for line in body.splitlines())


def _headline(info: registry.KindInfo, obj: Any) -> list[str]:
    if info.kind == "Pod":
        return [f"Node:\t{obj.spec.node_name or NONE}", f"Status:\t{pod_status(obj)}",
                f"IP:\t{obj.status.pod_ip or NONE}"]
    if info.kind == "Deployment":
        s = obj.status
        return [f"Replicas:\t{_replicas(obj)} desired | {s.updated_replicas} updated | "
                f"{s.replicas} total | {s.available_replicas} available | "
                f"{s.unavailable_replicas} unavailable"]
    if info.kind == "Service":
        ports = [f"{p.name or '<unset>'} {p.port}/{p.protocol or 'TCP'} -> "
                 f"{int_or_string_value(p.target_port) if p.HasField('target_port') else p.port}"
                 for p in obj.spec.ports]
        return [f"Type:\t{obj.spec.type or 'ClusterIP'}", f"IP:\t{obj.spec.cluster_ip or NONE}",
                *[f"Port:\t{p}" for p in ports]]
    if info.kind == "Node":
        return [f"Status:\t{node_status(obj)}",
                f"Unschedulable:\t{str(obj.spec.unschedulable).lower()}"]
    return []


def related_events(obj: Message, events: Sequence[Message]) -> list[Message]:
    """The events whose involvedObject is `obj` (kind + name + namespace, and uid when the
    event names one), oldest first."""
    info = registry.for_message(obj)
    meta = obj.metadata  # type: ignore[attr-defined]
    out = []
    for ev in events:
        ref = ev.involved_object  # type: ignore[attr-defined]
        if ref.kind != info.kind or ref.name != meta.name:
            continue
        if info.namespaced and (ref.namespace or ev.metadata.namespace) != meta.namespace:  # type: ignore[attr-defined]
            continue
        if ref.uid and meta.uid and ref.uid != meta.uid:
            continue
        out.append(ev)
    return sorted(out, key=lambda e: parse_timestamp(event_time(e)) or 0.0)
