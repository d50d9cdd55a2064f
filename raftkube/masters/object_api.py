"""The API's semantics, independent of gRPC: what create, get, list, update, patch, apply,
delete, watch and bind do to objects. The gRPC servicer and in-process callers (controllers,
the scheduler) both go through this class, so every write is authorized, validated,
defaulted and committed the same way.

```
 request ─> gatekeeper (authn/authz/audit) ─> defaults ─> validation ─> lifecycle rules
         ─> ObjectStore (one CAS transaction) ─> object with its new resourceVersion
```

Contract: nothing is half-applied. A request either commits one transaction or changes
nothing and raises an `apierrors.ApiError` naming the field, permission or version at fault.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from raftkube import apierrors
from raftkube.api.v1 import core_pb2, pod_pb2
from raftkube.masters import object_lifecycle as lifecycle
from raftkube.masters import pod_cidr_allocator as cidr_allocator
from raftkube.masters import service_allocator as allocator
from raftkube.masters.gatekeeper import Gatekeeper
from raftkube.masters.object_store import ClaimTaken, ObjectEvent, ObjectStore
from raftkube.objects import codec, registry
from raftkube.objects.defaulting import apply_defaults
from raftkube.objects.errors import FieldError, ObjectInvalid
from raftkube.objects.immutability import validate_update
from raftkube.objects.registry import KindInfo
from raftkube.objects.selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from raftkube.objects.validation import validate

FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
NAMESPACE_FINALIZER = "kubernetes"
PROTECTED_NAMESPACES = ("default", "kube-system", "raftkube-node-lease")
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")
SERVER_SIDE_RETRIES = 5  # re-reads for patch/apply when a concurrent write wins
NAMESPACES_ALWAYS_PRESENT = ("default",)


def rfc3339_now() -> str:
    """The current UTC time as Kubernetes writes timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ApiConfig:
    """Behaviour of the object API.

    max_object_bytes: largest serialized object accepted (etcd's value limit is 1.5 MiB).
    bookmark_interval: seconds between BOOKMARK events on an idle watch that asked for them.
    allocator: Service clusterIP range and nodePort range.
    pod_cidrs: the range Nodes' pod subnets are allocated from.
    """

    max_object_bytes: int = 1_500_000
    bookmark_interval: float = 5.0
    allocator: allocator.AllocatorConfig = field(default_factory=allocator.AllocatorConfig)
    pod_cidrs: cidr_allocator.PodCidrConfig = field(
        default_factory=cidr_allocator.PodCidrConfig)


@dataclass(frozen=True)
class WatchItem:
    """What a watch delivers: ADDED / MODIFIED / DELETED with an object, or BOOKMARK."""

    type: str
    obj: Message | None
    resource_version: int


class ObjectApi:
    """Authorized, validated object operations over an ObjectStore."""

    def __init__(self, objects: ObjectStore, gatekeeper: Gatekeeper,
                 config: ApiConfig | None = None,
                 clock: Callable[[], str] = rfc3339_now,
                 new_uid: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.objects = objects
        self._gate = gatekeeper
        self._config = config or ApiConfig()
        self._clock = clock
        self._new_uid = new_uid
        self._random = random.Random()

    # -- helpers ----------------------------------------------------------------------
    @staticmethod
    def kind(name: str) -> KindInfo:
        try:
            return registry.resolve(name)
        except registry.UnknownKind as e:
            raise apierrors.NotFound(str(e)) from None

    def _checked(self, obj: Message, what: str) -> Message:
        """Defaulted and validated copy of `obj`; Invalid lists every problem."""
        try:
            info = registry.for_message(obj)
        except registry.UnknownKind as e:
            raise apierrors.Invalid(str(e)) from None
        out = apply_defaults(obj)
        errors = validate(out)
        if errors:
            name = out.metadata.name or out.metadata.generate_name or "<unnamed>"
            raise apierrors.Invalid(
                f"{info.kind} {name!r} is invalid ({what}): "
                + "; ".join(str(e) for e in errors), errors)
        size = out.ByteSize()
        if size > self._config.max_object_bytes:
            raise apierrors.TooLarge(
                f"{info.kind} {out.metadata.name!r} is {size} bytes; the limit is "
                f"{self._config.max_object_bytes} bytes")
        return out

    def _require_namespace(self, info: KindInfo, namespace: str) -> None:
        if not info.namespaced or namespace in NAMESPACES_ALWAYS_PRESENT:
            return
        ns_info = registry.by_kind("Namespace")
        existing = self.objects.get_many(ns_info, "", namespace)
        if existing is None:
            raise apierrors.NotFound(f'namespaces "{namespace}" not found')
        if existing.metadata.deletion_timestamp:
            raise apierrors.Forbidden(
                f'namespace "{namespace}" is being deleted: no new objects may be created in it')

    @staticmethod
    def _expected_revision(obj: Message) -> int | None:
        rv = obj.metadata.resource_version  # type: ignore[attr-defined]
        if not rv:
            return None
        try:
            return int(rv)
        except ValueError:
            raise apierrors.Invalid(
                f"metadata.resourceVersion: {rv!r} is not a resourceVersion from this cluster",
                [FieldError("metadata.resourceVersion", "not a valid resourceVersion")],
            ) from None

    @staticmethod
    def _object_node(obj: Message | None) -> str | None:
        if isinstance(obj, pod_pb2.Pod):
            return obj.spec.node_name or None
        return None

    # -- create -----------------------------------------------------------------------
    def create(self, obj: Message, dry_run: bool = False) -> Message:
        """Store a new object. AlreadyExists when the name is taken."""
        checked = self._prepare_name(obj)
        checked = self._checked(checked, "create")
        info = registry.for_message(checked)
        meta = checked.metadata  # type: ignore[attr-defined]
        self._gate.check("create", info, meta.namespace, meta.name,
                         object_node=self._object_node(checked))
        self._require_namespace(info, meta.namespace)
        new = lifecycle.prepare_create(checked, uid=self._new_uid(), now=self._clock(),
                                       namespace=meta.namespace if info.namespaced else None)
        if info.kind == "Service":
            return self._create_service(new, dry_run)
        if info.kind == "Node":
            return self._create_node(new, dry_run)
        if dry_run:
            return new
        return self.objects.create(new)

    def create_many(self, objs: Sequence[Message]) -> list[Message]:
        """Create several objects in ONE store transaction (all or none), each checked
        like `create`. For controllers creating many objects at once (a ReplicaSet's
        pods, events). Services are not accepted here (their allocations need `create`).
        AlreadyExists names the first taken name; nothing is written then."""
        items = [(registry.for_message(checked), checked, checked.metadata)  # type: ignore[attr-defined]
                 for checked in (self._checked(self._prepare_name(obj), "create")
                                 for obj in objs)]
        if any(info.kind == "Service" for info, _, _ in items):
            raise apierrors.Invalid("create_many: Services must be created one by one")
        self._gate.check_many("create", [(info, meta.namespace, meta.name,
                                          self._object_node(checked))
                                         for info, checked, meta in items])
        for info, namespace in {(info, meta.namespace) for info, _, meta in items}:
            self._require_namespace(info, namespace)
        prepared = [lifecycle.prepare_create(
            checked, uid=self._new_uid(), now=self._clock(),
            namespace=meta.namespace if info.namespaced else None)
            for info, checked, meta in items]
        return self.objects.create_many(prepared)

    def _create_service(self, service: Message, dry_run: bool) -> Message:
        """Create a Service with its clusterIP and nodePorts allocated collision-free
        (see masters.service_allocator); Invalid when a requested one is taken."""
        config = self._config.allocator
        allocator.check_requested(service, config)  # type: ignore[arg-type]
        requested = set(allocator.claim_keys(service))  # type: ignore[arg-type]
        for _ in range(8):
            taken = self.objects.claimed_for(allocator.ALLOCATIONS_PREFIX, requested)
            clash = sorted(requested & taken)
            if clash:
                what = clash[0].decode().rsplit("/", 2)
                raise apierrors.Invalid(
                    f"Service {service.metadata.name!r} is invalid: "  # type: ignore[attr-defined]
                    f"{what[-2]} {what[-1]} is already allocated",
                    [FieldError("spec", f"{what[-1]} is already allocated")])
            ips = {k[len(allocator.IP_PREFIX):].decode() for k in taken
                   if k.startswith(allocator.IP_PREFIX)}
            ports = {int(k[len(allocator.PORT_PREFIX):]) for k in taken
                     if k.startswith(allocator.PORT_PREFIX)}
            assigned = allocator.assign(service, config, ips, ports,  # type: ignore[arg-type]
                                        self._random)
            if dry_run:
                return assigned
            try:
                return self.objects.create_claiming(assigned, allocator.claim_keys(assigned))
            except ClaimTaken:
                continue  # a concurrent create took a value: pick again
        raise apierrors.Conflict(f"Service {service.metadata.name!r}: could not allocate "  # type: ignore[attr-defined]
                                 "a clusterIP/nodePort after several attempts; retry")

    def _create_node(self, node: Message, dry_run: bool) -> Message:
        """Create a Node with its pod subnet claimed (given, or the lowest free one)."""
        config = self._config.pod_cidrs
        name = node.metadata.name  # type: ignore[attr-defined]
        if self.objects.get_many(registry.by_kind("Node"), "", name) is not None:
            raise apierrors.AlreadyExists(f'nodes "{name}" already exists')
        cidr_allocator.check_requested(node, config)  # type: ignore[arg-type]
        for attempt in range(16):
            taken = cidr_allocator.taken_cidrs(self.objects.claimed_for(
                cidr_allocator.CIDR_PREFIX, cidr_allocator.claim_keys(node)))  # type: ignore[arg-type]
            requested = node.spec.pod_cidr  # type: ignore[attr-defined]
            if requested and requested in taken:
                raise apierrors.Invalid(
                    f"Node {node.metadata.name!r} is invalid: spec.podCIDR: "  # type: ignore[attr-defined]
                    f"{requested} is already allocated to another node",
                    [FieldError("spec.podCIDR", f"{requested} is already allocated")])
            assigned = cidr_allocator.assign(  # type: ignore[arg-type]
                node, config, taken, self._random if attempt else None)
            if dry_run:
                return assigned
            try:
                return self.objects.create_claiming(assigned,
                                                    cidr_allocator.claim_keys(assigned))
            except ClaimTaken:
                continue
        raise apierrors.Conflict(f"Node {node.metadata.name!r}: could not allocate a pod "  # type: ignore[attr-defined]
                                 "subnet after several attempts; retry")

    @staticmethod
    def _release_keys(obj: Message) -> list[bytes]:
        """Claim keys freed when `obj` leaves the store."""
        if isinstance(obj, core_pb2.Service):
            return allocator.claim_keys(obj)
        if isinstance(obj, core_pb2.Node):
            return cidr_allocator.claim_keys(obj)
        return []

    def _prepare_name(self, obj: Message) -> Message:
        meta = obj.metadata  # type: ignore[attr-defined]
        if meta.name or not meta.generate_name:
            return obj
        out = type(obj)()
        out.CopyFrom(obj)
        alphabet = "bcdfghjklmnpqrstvwxz2456789"
        out.metadata.name = meta.generate_name + "".join(  # type: ignore[attr-defined]
            secrets.choice(alphabet) for _ in range(5))
        return out

    # -- read -------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str, linearizable: bool = False) -> Message:
        info = self.kind(kind)
        namespace = namespace if info.namespaced else ""
        obj = self.objects.get_many(info, namespace, name) if not linearizable else None
        if linearizable:
            obj = self.objects.get(info, namespace, name, linearizable=True)
        self._gate.check("get", info, namespace, name, object_node=self._object_node(obj))
        if obj is None:
            raise apierrors.NotFound(
                f'{info.plural} "{name}" not found'
                + (f' in namespace "{namespace}"' if info.namespaced else ""))
        return obj

    def list(self, kind: str, namespace: str = "", label_selector: str = "",
             field_selector: str = "", limit: int = 0, continue_token: str = "",
             linearizable: bool = False) -> tuple[list[Message], int, str]:
        """Objects matching the selectors: (items, revision, continue token)."""
        info = self.kind(kind)
        namespace = namespace if info.namespaced else ""
        labels, fields = self._selectors(info, label_selector, field_selector)
        self._gate.check("list", info, namespace, None,
                         object_node=self._node_from_fields(info, fields))
        if limit < 0:
            raise apierrors.Invalid("limit: must be zero or positive")

        def keep(obj: Message) -> bool:
            return labels.matches(obj.metadata.labels) and fields.matches(obj)

        filtering = not (labels.empty() and not fields.requirements)
        return self.objects.list(info, namespace, limit=limit, continue_token=continue_token,
                                 linearizable=linearizable, keep=keep if filtering else None)

    @staticmethod
    def _selectors(info: KindInfo, label_selector: str, field_selector: str,
                   ) -> tuple[LabelSelector, FieldSelector]:
        try:
            labels = parse_label_selector(label_selector)
        except SelectorError as e:
            raise apierrors.Invalid(f"labelSelector: {e}",
                                    [FieldError("labelSelector", str(e))]) from None
        try:
            fields = parse_field_selector(field_selector)
            fields.check_paths(info.message_class)
        except SelectorError as e:
            raise apierrors.Invalid(f"fieldSelector: {e}",
                                    [FieldError("fieldSelector", str(e))]) from None
        return labels, fields

    @staticmethod
    def _node_from_fields(info: KindInfo, fields: FieldSelector) -> str | None:
        if info.kind != "Pod":
            return None
        for req in fields.requirements:
            if req.path == "spec.nodeName" and req.operator == "=":
                return req.value
        return None

    # -- update -----------------------------------------------------------------------
    def update(self, obj: Message, dry_run: bool = False) -> Message:
        """Replace spec and metadata (status kept). Conflict when resourceVersion is stale;
        without a resourceVersion the update applies to the current version."""
        checked = self._checked(obj, "update")
        info = registry.for_message(checked)
        meta = checked.metadata  # type: ignore[attr-defined]
        expected = self._expected_revision(checked)
        current = self._current(info, meta.namespace, meta.name, expected)
        keep_server_assigned(current, checked)
        self._gate.check("update", info, meta.namespace, meta.name,
                         object_node=self._object_node(current))
        self._check_version(info, current, expected)
        new = lifecycle.prepare_update(current, checked)
        self._check_immutable(info, current, new)
        return self._store_update(info, current, new, dry_run)

    def update_status(self, obj: Message, dry_run: bool = False) -> Message:
        """Replace status only (the /status subresource)."""
        info = registry.for_message(obj)
        if not lifecycle.has_status(obj):
            raise apierrors.NotFound(f"{info.plural} have no status subresource")
        meta = obj.metadata  # type: ignore[attr-defined]
        namespace = meta.namespace or ("default" if info.namespaced else "")
        expected = self._expected_revision(obj)
        current = self._current(info, namespace, meta.name, expected)
        self._gate.check("update", info, namespace, meta.name, subresource="status",
                         object_node=self._object_node(current))
        self._check_version(info, current, expected)
        new = lifecycle.prepare_status_update(current, obj)
        self._checked(new, "status update")
        return self._store_update(info, current, new, dry_run)

    def _current(self, info: KindInfo, namespace: str, name: str,
                 expected: int | None = None) -> Message:
        """The object a write applies to. Read from this master's replica; when it is
        missing there, or older than the `expected` resourceVersion, read again through
        the leader (linearizable): this replica may not have applied yet a write the caller
        saw acknowledged by another master, and a write must not fail for that."""
        namespace = namespace if info.namespaced else ""
        current = self.objects.get_many(info, namespace, name)
        if current is None or (expected is not None and int(
                current.metadata.resource_version) < expected):  # type: ignore[attr-defined]
            return self.objects.get(info, namespace, name, linearizable=True)
        return current

    @staticmethod
    def _check_version(info: KindInfo, current: Message, expected: int | None) -> None:
        have = current.metadata.resource_version  # type: ignore[attr-defined]
        if expected is not None and str(expected) != have:
            raise apierrors.Conflict(
                f'Operation cannot be fulfilled on {info.plural} '
                f'"{current.metadata.name}": the object has been modified '  # type: ignore[attr-defined]
                f"(resourceVersion {expected} given, current is {have}); read it again and retry",
                given=str(expected), current=have)

    @staticmethod
    def _check_immutable(info: KindInfo, current: Message, new: Message) -> None:
        errors = validate_update(current, new)
        if info.kind == "Service":
            errors += _service_allocation_errors(current, new)
        if errors:
            raise apierrors.Invalid(
                f"{info.kind} {current.metadata.name!r} is invalid: "  # type: ignore[attr-defined]
                + "; ".join(str(e) for e in errors), errors)

    def _store_update(self, info: KindInfo, current: Message, new: Message,
                      dry_run: bool) -> Message:
        if dry_run:
            return new
        expected = int(current.metadata.resource_version)  # type: ignore[attr-defined]
        meta = new.metadata  # type: ignore[attr-defined]
        if meta.deletion_timestamp and not meta.finalizers and not self._awaits_kubelet(new):
            self.objects.remove(info, meta.namespace, meta.name, expected,
                                release=self._release_keys(current))
            return new
        return self.objects.replace(new, expected)

    @staticmethod
    def _awaits_kubelet(obj: Message) -> bool:
        """A pod being deleted gracefully waits for its node's agent to stop it."""
        return (isinstance(obj, pod_pb2.Pod) and bool(obj.spec.node_name)
                and obj.status.phase not in ("Succeeded", "Failed")
                and obj.metadata.deletion_grace_period_seconds > 0)

    # -- patch and apply -----------------------------------------------------------------
    def patch(self, kind: str, namespace: str, name: str, merge_patch_json: str,
              status: bool = False, dry_run: bool = False) -> Message:
        """Apply a JSON merge patch (RFC 7386) to the current object, then update it.

        The patch is applied to the object as stored at the moment of the write: when a
        concurrent writer (a controller updating status) wins the race, the patch is
        applied again to the newer object (a bounded number of times), as Kubernetes does.
        """
        info = self.kind(kind)
        try:
            patch = json.loads(merge_patch_json)
        except ValueError as e:
            raise apierrors.Invalid(f"patch is not valid JSON: {e}") from None
        if not isinstance(patch, dict):
            raise apierrors.Invalid("patch must be a JSON object")
        for attempt in range(SERVER_SIDE_RETRIES):
            current = self._current(info, namespace or "default", name)
            merged = merge_patch(codec.encode(current), patch)
            try:
                new = codec.decode(info.message_class, merged)
            except ObjectInvalid as e:
                raise apierrors.Invalid(f"patched {info.kind} {name!r} is invalid: {e}",
                                        e.errors) from None
            new.metadata.resource_version = current.metadata.resource_version  # type: ignore[attr-defined]
            try:
                return (self.update_status(new, dry_run) if status
                        else self.update(new, dry_run))
            except apierrors.Conflict:
                if attempt == SERVER_SIDE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def apply(self, obj: Message, dry_run: bool = False) -> tuple[Message, str]:
        """Create the object, or update it to this manifest: ("created" | "configured" |
        "unchanged"). Re-applying the same manifest is a no-op. Server-assigned spec fields
        the manifest leaves out (a Service's clusterIP, nodePorts) are kept, and so are
        labels and annotations it does not name (removing one needs edit/patch). A manifest
        carries no resourceVersion, so a concurrent write (a controller's status update)
        makes the apply run again against the newer object rather than fail."""
        for attempt in range(SERVER_SIDE_RETRIES):
            try:
                return self._apply_once(obj, dry_run)
            except apierrors.Conflict:
                if attempt == SERVER_SIDE_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _apply_once(self, obj: Message, dry_run: bool) -> tuple[Message, str]:
        checked = self._checked(self._prepare_name(obj), "apply")
        info = registry.for_message(checked)
        meta = checked.metadata  # type: ignore[attr-defined]
        current = self.objects.get_many(info, meta.namespace, meta.name)
        if current is None:
            return self.create(checked, dry_run), "created"
        desired = type(checked)()
        desired.CopyFrom(checked)
        keep_server_assigned(current, desired)
        desired.metadata.resource_version = current.metadata.resource_version  # type: ignore[attr-defined]
        # Labels and annotations the manifest does not name are kept (controllers add
        # some, e.g. deployment.kubernetes.io/revision); the manifest's own ones win.
        old_meta = current.metadata  # type: ignore[attr-defined]
        labels = {**dict(old_meta.labels), **dict(meta.labels)}
        annotations = {**dict(old_meta.annotations), **dict(meta.annotations)}
        desired.metadata.labels.update(labels)  # type: ignore[attr-defined]
        desired.metadata.annotations.update(annotations)  # type: ignore[attr-defined]
        unchanged = (lifecycle.spec_bytes(current) == lifecycle.spec_bytes(desired)
                     and dict(old_meta.labels) == labels
                     and dict(old_meta.annotations) == annotations)
        if unchanged:
            self._gate.check("get", info, meta.namespace, meta.name,
                             object_node=self._object_node(current))
            return current, "unchanged"
        carried = desired.metadata  # type: ignore[attr-defined]
        carried.finalizers[:] = list(current.metadata.finalizers)  # type: ignore[attr-defined]
        carried.owner_references.extend(
            [] if carried.owner_references else current.metadata.owner_references)  # type: ignore[attr-defined]
        return self.update(desired, dry_run), "configured"

    # -- delete -----------------------------------------------------------------------
    def delete(self, kind: str, namespace: str, name: str, *,
               grace_period_seconds: int | None = None, propagation_policy: str = "",
               precondition_resource_version: str = "", precondition_uid: str = "",
               dry_run: bool = False) -> tuple[Message, bool]:
        """Delete an object: (object as last stored, gone now?).

        Pods bound to a node are deleted gracefully (deletionTimestamp set; the node's agent
        stops the containers and finishes the delete); objects with finalizers are marked
        and removed when the last finalizer goes; Foreground adds the foregroundDeletion
        finalizer (dependents go first), Orphan the orphan finalizer (dependents are kept
        and released), Background (default) removes the object now and leaves dependents
        to the garbage collector.
        """
        info = self.kind(kind)
        namespace = (namespace or "default") if info.namespaced else ""
        policy = propagation_policy or "Background"
        if policy not in PROPAGATION_POLICIES:
            raise apierrors.Invalid(
                f"propagationPolicy: {policy!r} is not one of {', '.join(PROPAGATION_POLICIES)}")
        if grace_period_seconds is not None and grace_period_seconds < 0:
            raise apierrors.Invalid("gracePeriodSeconds: must be zero or positive")
        # Without a resourceVersion precondition the caller asked for no particular
        # version: a concurrent write (a controller's status) only means read again.
        retries = 1 if precondition_resource_version else SERVER_SIDE_RETRIES
        for attempt in range(retries):
            try:
                return self._delete_current(info, namespace, name, policy,
                                            grace_period_seconds,
                                            precondition_resource_version,
                                            precondition_uid, dry_run)
            except apierrors.Conflict:
                if attempt == retries - 1:
                    raise
        raise AssertionError("unreachable")

    def _delete_current(self, info: KindInfo, namespace: str, name: str, policy: str,
                        grace_period_seconds: int | None, precondition_resource_version: str,
                        precondition_uid: str, dry_run: bool) -> tuple[Message, bool]:
        """One attempt of `delete` against the object as stored now."""
        current = self._current(info, namespace, name)
        self._gate.check("delete", info, namespace, name, object_node=self._object_node(current))
        meta = current.metadata  # type: ignore[attr-defined]
        if precondition_uid and precondition_uid != meta.uid:
            raise apierrors.Conflict(
                f'Precondition failed for {info.plural} "{name}": uid {precondition_uid} '
                f"given, current is {meta.uid}", given=precondition_uid, current=meta.uid)
        if precondition_resource_version:
            self._check_version(info, current,
                                self._expected_revision_text(precondition_resource_version))
        expected = int(meta.resource_version)
        grace = self._grace(current, grace_period_seconds)
        finalizers = list(meta.finalizers)
        if policy == "Foreground" and FOREGROUND_FINALIZER not in finalizers:
            finalizers.append(FOREGROUND_FINALIZER)
        if policy == "Orphan" and ORPHAN_FINALIZER not in finalizers:
            finalizers.append(ORPHAN_FINALIZER)
        if info.kind == "Namespace":
            if name in PROTECTED_NAMESPACES:
                raise apierrors.Forbidden(f'namespace "{name}" is a system namespace and '
                                          "cannot be deleted")
            if NAMESPACE_FINALIZER not in finalizers:
                # Stays Terminating until the garbage collector has emptied it.
                finalizers.append(NAMESPACE_FINALIZER)
        marked = lifecycle.mark_for_deletion(current, now=self._clock(), grace_seconds=grace)
        marked.metadata.finalizers[:] = finalizers  # type: ignore[attr-defined]
        if grace_period_seconds is not None and meta.deletion_timestamp:
            # A shorter grace period may replace a longer one (kubectl delete --grace-period).
            marked.metadata.deletion_grace_period_seconds = min(  # type: ignore[attr-defined]
                grace, meta.deletion_grace_period_seconds)
        if finalizers or self._awaits_kubelet(marked):
            if dry_run:
                return marked, False
            if marked.SerializeToString(deterministic=True) == current.SerializeToString(
                    deterministic=True):
                return current, False
            return self.objects.replace(marked, expected), False
        if dry_run:
            return current, True
        self.objects.remove(info, namespace, name, expected,
                            release=self._release_keys(current))
        return current, True

    @staticmethod
    def _expected_revision_text(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise apierrors.Invalid(
                f"preconditions.resourceVersion: {text!r} is not a resourceVersion") from None

    @staticmethod
    def _grace(obj: Message, requested: int | None) -> int:
        if not isinstance(obj, pod_pb2.Pod):
            return 0
        if requested is not None:
            return requested
        if obj.spec.HasField("termination_grace_period_seconds"):
            return obj.spec.termination_grace_period_seconds
        return 30

    # -- watch ------------------------------------------------------------------------
    def watch(self, kind: str, namespace: str, label_selector: str, field_selector: str,
              resource_version: str, stop: threading.Event,
              allow_bookmarks: bool = False) -> Iterator[WatchItem]:
        """Changes from `resource_version` (or the current state then changes, when empty).

        Selector semantics follow Kubernetes: an object that stops matching is delivered as
        DELETED, one that starts matching as ADDED.
        """
        for batch in self.watch_batches(kind, namespace, label_selector, field_selector,
                                        resource_version, stop, allow_bookmarks):
            yield from batch

    def watch_batches(self, kind: str, namespace: str, label_selector: str,
                      field_selector: str, resource_version: str, stop: threading.Event,
                      allow_bookmarks: bool = False,
                      list_chunk: int = 500) -> Iterator[list[WatchItem]]:
        """`watch` as non-empty lists of the items that were ready together: the current
        state in lists of at most `list_chunk`, then the changes of one or more
        consecutive revisions per list (a BOOKMARK comes alone). The same items in the
        same order as `watch`."""
        info = self.kind(kind)
        namespace = namespace if info.namespaced else ""
        labels, fields = self._selectors(info, label_selector, field_selector)
        self._gate.check("watch", info, namespace, None,
                         object_node=self._node_from_fields(info, fields))
        everything = labels.empty() and not fields.requirements

        def matches(obj: Message | None) -> bool:
            return obj is not None and labels.matches(obj.metadata.labels) and fields.matches(obj)

        if resource_version:
            start = self._expected_revision_text(resource_version) + 1
        else:
            items, revision, _ = self.objects.list(info, namespace, keep=matches)
            for first in range(0, len(items), list_chunk):
                yield [WatchItem("ADDED", obj, int(obj.metadata.resource_version))
                       for obj in items[first: first + list_chunk]]
            start = revision + 1
        last_bookmark = time.monotonic()
        for events in self.objects.watch_batches(info, namespace, start, stop,
                                                 idle_events=True,
                                                 with_previous=not everything):
            if events[0].type == "IDLE":
                now = time.monotonic()
                if allow_bookmarks and now - last_bookmark >= self._config.bookmark_interval:
                    last_bookmark = now
                    yield [WatchItem("BOOKMARK", None, events[0].revision)]
                continue
            if everything:  # no previous values decoded: `_filtered` would need them
                batch = [WatchItem(e.type, e.obj, e.revision) for e in events]
            else:
                batch = [item for item in (_filtered(e, matches) for e in events)
                         if item is not None]
            if batch:
                yield batch

    # -- scheduling -------------------------------------------------------------------
    def bind_pods(self, bindings: Sequence[tuple[str, str, str, str]]) -> int:
        """Bind pods (namespace, name, resourceVersion, node) in one transaction; all or
        none. Returns the transaction's revision."""
        info = registry.by_kind("Pod")
        updates: list[tuple[Message, int]] = []
        now = self._clock()
        for _, name, _, node in bindings:
            if not node:
                raise apierrors.Invalid(f'binding of pod "{name}": nodeName is required')
        self._gate.check_many("create", [(info, namespace, name, None)
                                         for namespace, name, _, _ in bindings],
                              subresource="binding")
        for namespace, name, rv, node in bindings:
            given = self._expected_revision_text(rv) if rv else None
            pod = self._current(info, namespace, name, given)
            expected = given if given is not None else int(pod.metadata.resource_version)
            self._check_version(info, pod, expected)
            if pod.spec.node_name:
                raise apierrors.Conflict(
                    f'pod "{name}" is already bound to node "{pod.spec.node_name}"',
                    given=node, current=pod.spec.node_name)
            pod.spec.node_name = node
            set_condition(pod.status.conditions, "PodScheduled", "True", now)
            updates.append((pod, expected))
        return self.objects.replace_many(updates)


def _filtered(event: ObjectEvent, matches: Callable[[Message | None], bool]) -> WatchItem | None:
    now_matches = event.type != "DELETED" and matches(event.obj)
    before_matches = matches(event.previous)
    if event.type == "DELETED":
        return WatchItem("DELETED", event.obj, event.revision) if before_matches else None
    if now_matches and not before_matches:
        return WatchItem("ADDED", event.obj, event.revision)
    if now_matches:
        return WatchItem("MODIFIED", event.obj, event.revision)
    if before_matches:
        gone = type(event.obj)()
        gone.CopyFrom(event.obj)
        return WatchItem("DELETED", gone, event.revision)
    return None


def set_condition(conditions: Any, kind: str, status: str, now: str,
                  reason: str = "", message: str = "") -> None:
    """Set condition `kind` in a repeated Condition field, moving lastTransitionTime only
    when the status changes."""
    for condition in conditions:
        if condition.type == kind:
            if condition.status != status:
                condition.last_transition_time = now
            condition.status = status
            condition.reason = reason
            condition.message = message
            return
    conditions.add(type=kind, status=status, last_transition_time=now, reason=reason,
                   message=message)


def _service_allocation_errors(current: Message, new: Message) -> list[FieldError]:
    """nodePorts are allocated on create and hold claim keys: an update may not change
    them (the claims would no longer match). clusterIP is checked by validate_update."""
    errors = []
    if allocator.claim_keys(new) != allocator.claim_keys(current):  # type: ignore[arg-type]
        errors.append(FieldError("spec.ports[].nodePort",
                                 "node ports are allocated when the Service is created and "
                                 "may not change; delete and recreate the Service"))
    return errors


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null deletes, else replace."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def keep_server_assigned(current: Message, desired: Message) -> None:
    """Carry spec fields the server assigned (Service clusterIP, nodePorts) into a manifest
    that leaves them out, so re-applying a manifest does not reallocate them."""
    if registry.for_message(current).kind != "Service":
        return
    spec, old = desired.spec, current.spec  # type: ignore[attr-defined]
    if not spec.cluster_ip and old.cluster_ip:
        spec.cluster_ip = old.cluster_ip
        spec.cluster_ips[:] = list(old.cluster_ips)
    old_ports = {(p.port, p.protocol): p.node_port for p in old.ports}
    for port in spec.ports:
        if not port.node_port and old_ports.get((port.port, port.protocol)):
            port.node_port = old_ports[(port.port, port.protocol)]
