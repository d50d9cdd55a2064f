"""`Client`: the blocking SDK entry point. See README.md for a tour.

    client = Client.from_config()                 # $RAFTKUBECONFIG or ~/.raftkube/config
    pod = client.pods.get("web-0")                # typed CRUD for every kind
    obj, action = client.apply(deployment)        # "created" | "configured" | "unchanged"
    for event in client.pods.watch(): ...         # resumes across master failover
    client.admin.cluster_status()                 # masters, roles, terms, indexes
    client.kv.cas(b"/x", 0, b"1")                 # raw KV for administrators
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf.message import Message

from raftkube import apierrors
from raftkube.api.v1 import admin_pb2, node_agent_pb2
from raftkube.client import admin_ops, core, pod_streams
from raftkube.client.config import ClientOptions
from raftkube.client.endpoints import Endpoints
from raftkube.client.informer import Informer
from raftkube.client.retry import Failure, backoff, classify
from raftkube.client.transport import SyncTransport
from raftkube.client.watch import Watch, WatchSpec
from raftkube.client.watch_state import WatchTracker
from raftkube.objects import registry
from raftkube.objects.manifests import load_manifests
from raftkube.security.client_config import ClientConfig, load_client_config


def resolve_kind(kind: str | registry.KindInfo | type[Message]) -> registry.KindInfo:
    """A KindInfo from a kind name ("Deployment"), any CLI alias ("deploy", "pods"), a
    KindInfo or a message class. Raise registry.UnknownKind."""
    if isinstance(kind, registry.KindInfo):
        return kind
    if isinstance(kind, type):
        return registry.for_message(kind)
    try:
        return registry.by_kind(kind)
    except registry.UnknownKind:
        return registry.resolve(kind)


def namespaced(obj: Message, namespace: str) -> Message:
    """`obj`, or a copy in `namespace` when its kind is namespaced and it names none."""
    if obj.metadata.namespace or not registry.for_message(obj).namespaced:  # type: ignore[attr-defined]
        return obj
    out = type(obj)()
    out.CopyFrom(obj)
    out.metadata.namespace = namespace  # type: ignore[attr-defined]
    return out


def patch_text(patch: str | dict[str, Any]) -> str:
    return patch if isinstance(patch, str) else json.dumps(patch)


class ResourceClient:
    """Typed operations on one kind. Obtain with `client.resource("Deployment")` or an
    attribute named after the kind's plural: `client.deployments`, `client.pods`, ...

    `namespace=None` means the client's default namespace; cluster-scoped kinds ignore it.
    Every method raises the typed errors of raftkube.apierrors (NotFound, Conflict,
    Invalid with field paths, Forbidden, Unavailable, UnknownOutcome, ...).
    """

    def __init__(self, client: Client, info: registry.KindInfo) -> None:
        self._client = client
        self.info = info

    def _ns(self, namespace: str | None) -> str:
        return core.namespace_of(self.info, namespace, self._client.namespace)

    def _linearizable(self, asked: bool | None) -> bool:
        return self._client.options.linearizable_reads if asked is None else asked

    def get(self, name: str, namespace: str | None = None, *,
            linearizable: bool | None = None) -> Message:
        """The object; NotFound when absent. `linearizable` reads through the leader
        (default: ClientOptions.linearizable_reads)."""
        return self._client._run(core.get_op(self.info, self._ns(namespace), name,
                                             self._linearizable(linearizable)))

    def list(self, namespace: str | None = None, *, label_selector: str = "",
             field_selector: str = "", all_namespaces: bool = False,
             linearizable: bool | None = None) -> list[Message]:
        """Every matching object (all pages), sorted by namespace and name."""
        return self.list_with_version(namespace, label_selector=label_selector,
                                      field_selector=field_selector,
                                      all_namespaces=all_namespaces,
                                      linearizable=linearizable)[0]

    def list_with_version(self, namespace: str | None = None, *, label_selector: str = "",
                          field_selector: str = "", all_namespaces: bool = False,
                          linearizable: bool | None = None) -> tuple[list[Message], str]:
        """(objects, resourceVersion of the list) — watch from that version to follow."""
        ns = "" if all_namespaces else self._ns(namespace)
        items: list[Message] = []
        token, revision = "", ""
        while True:
            page = self._client._run(core.list_op(
                self.info, ns, label_selector, field_selector,
                self._client.options.list_page_size, token,
                self._linearizable(linearizable)))
            items.extend(page.items)
            revision = revision or page.resource_version
            token = page.continue_token
            if not token:
                return items, revision

    def create(self, obj: Message, *, dry_run: bool = False) -> Message:
        """Create `obj` (must be of this kind); see Client.create."""
        self._check(obj)
        return self._client.create(obj, dry_run=dry_run)

    def update(self, obj: Message, *, dry_run: bool = False) -> Message:
        self._check(obj)
        return self._client.update(obj, dry_run=dry_run)

    def update_status(self, obj: Message, *, dry_run: bool = False) -> Message:
        self._check(obj)
        return self._client.update_status(obj, dry_run=dry_run)

    def apply(self, obj: Message, *, dry_run: bool = False) -> tuple[Message, str]:
        self._check(obj)
        return self._client.apply(obj, dry_run=dry_run)

    def patch(self, name: str, patch: str | dict[str, Any], namespace: str | None = None, *,
              status: bool = False, dry_run: bool = False) -> Message:
        """Apply a JSON merge patch (a dict or JSON text) in Kubernetes field names:
        `client.deployments.patch("web", {"spec": {"replicas": 3}})`."""
        return self._client._run(core.patch_op(self.info, self._ns(namespace), name,
                                               patch_text(patch), status, dry_run))

    def delete(self, name: str, namespace: str | None = None, *,
               grace_period_seconds: int | None = None, propagation_policy: str = "",
               precondition_uid: str = "", precondition_resource_version: str = "",
               dry_run: bool = False) -> core.DeleteResult:
        """Delete (see Client.delete)."""
        return self._client._run(core.delete_op(
            self.info, self._ns(namespace), name, grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy,
            precondition_resource_version=precondition_resource_version,
            precondition_uid=precondition_uid, dry_run=dry_run))

    def watch(self, namespace: str | None = None, *, label_selector: str = "",
              field_selector: str = "", resource_version: str = "",
              all_namespaces: bool = False, bookmarks: bool = False) -> Watch:
        """A resuming watch: without `resource_version`, the current objects first (as
        ADDED), then every change. Stop it with `.stop()` or a `with` block."""
        ns = "" if all_namespaces else self._ns(namespace)
        return self._client._watch(WatchSpec(self.info, ns, label_selector, field_selector,
                                             resource_version, bookmarks))

    def informer(self, namespace: str | None = None, *, label_selector: str = "",
                 field_selector: str = "", all_namespaces: bool = False) -> Informer:
        """An Informer (not started) over the matching objects."""
        ns = "" if all_namespaces else self._ns(namespace)
        spec = WatchSpec(self.info, ns, label_selector, field_selector)
        return Informer(lambda on_synced, tracker: self._client._watch(
            spec, on_synced=on_synced, tracker=tracker))

    def _check(self, obj: Message) -> None:
        if registry.for_message(obj) is not self.info:
            raise apierrors.Invalid(
                f"kind: a {registry.for_message(obj).kind} given to the "
                f"{self.info.plural} client")


@dataclass(frozen=True)
class SnapshotInfo:
    """A saved snapshot: file, size in bytes, SHA-256 (verified), store revision."""

    path: Path
    size: int
    sha256: str
    revision: int


class AdminClient:
    """Cluster administration (needs cluster-admin credentials)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def cluster_status(self) -> admin_pb2.ClusterStatusResponse:
        """Every master's status as seen from one master (unreachable ones marked)."""
        return self._client._run(admin_ops.cluster_status_op())

    def local_status(self, address: str | None = None) -> admin_pb2.MasterStatus:
        """The status of the master at `address` (default: any master), no retry to others
        when an address is given."""
        op = admin_ops.local_status_op()
        if address is None:
            return self._client._run(op)
        stub = self._client._transport.stub(address, "Admin")
        try:
            return stub.LocalStatus(op.call.request,
                                    timeout=self._client.options.retry.call_timeout)
        except grpc.RpcError as e:
            raise apierrors.from_rpc_error(e) from None

    def add_master(self, name: str, api_address: str, raft_address: str) -> list[str]:
        """Add a master to the Raft membership (run on the leader, found through the leader
        hint); the Raft members after the change. Start the new master with join: true."""
        return self._client._run(admin_ops.add_master_op(name, api_address, raft_address))

    def remove_master(self, name: str) -> list[str]:
        """Remove a master from the membership; the Raft members after the change."""
        return self._client._run(admin_ops.remove_master_op(name))

    def rotate_secrets(self) -> tuple[int, str]:
        """Re-encrypt every stored Secret under the primary key of the masters' key file:
        (how many were rewritten, the key name)."""
        return self._client._run(admin_ops.rotate_secrets_op())

    def create_join_token(self, ttl_seconds: int = 24 * 3600,
                          description: str = "") -> admin_ops.JoinToken:
        """A bearer token a new worker can join with, valid for `ttl_seconds`."""
        return self._client._run(admin_ops.join_token_op(ttl_seconds, description))

    def save_snapshot(self, path: str | Path) -> SnapshotInfo:
        """Stream a consistent snapshot of the store into `path`.

        Written to a temporary file next to `path` and renamed only after the SHA-256 the
        master sends matches the bytes received; otherwise nothing is left behind and
        Internal is raised. A broken stream is retried from the start on another master.
        """
        target = Path(path)
        transport = self._client._transport
        attempt = 0
        while True:
            attempt += 1
            address = transport.endpoints.current()
            try:
                return _receive_snapshot(transport.stub(address, "Admin"), target)
            except grpc.RpcError as e:
                error = apierrors.from_rpc_error(e)
                if (classify(e) is Failure.ANSWERED
                        or attempt >= transport.retry.max_attempts):
                    raise error from None
                transport.endpoints.failed(address)
                time.sleep(backoff(attempt + 1, transport.retry, transport.rng))


def _receive_snapshot(stub: Any, target: Path) -> SnapshotInfo:
    digest = hashlib.sha256()
    size, expected, revision = 0, "", 0
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in stub.SnapshotSave(admin_pb2.SnapshotSaveRequest()):
                if chunk.data:
                    out.write(chunk.data)
                    digest.update(chunk.data)
                    size += len(chunk.data)
                revision = chunk.revision or revision
                if chunk.sha256:
                    expected = chunk.sha256
            out.flush()
            os.fsync(out.fileno())
        if not expected:
            raise apierrors.Internal("snapshot stream ended without its SHA-256")
        if digest.hexdigest() != expected:
            raise apierrors.Internal(
                f"snapshot corrupted in transit: SHA-256 {digest.hexdigest()} received, "
                f"{expected} sent")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return SnapshotInfo(target, size, expected, revision)


class KVClient:
    """The raw replicated key-value API (cluster administrators only), for tools and the
    chaos register workload. Reads are linearizable and retried; writes are never
    repeated after an ambiguous attempt (UnknownOutcome instead)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, key: bytes, *, serializable: bool = False) -> admin_ops.KVEntry | None:
        return self._client._run(admin_ops.kv_get_op(key, serializable))

    def put(self, key: bytes, value: bytes) -> int:
        """Store `value`; the new revision."""
        return self._client._run(admin_ops.kv_put_op(key, value))

    def cas(self, key: bytes, expected_mod_revision: int, value: bytes) -> tuple[bool, int]:
        """Store `value` only if the key's mod_revision is `expected_mod_revision` (0: the
        key must not exist): (succeeded, revision)."""
        return self._client._run(admin_ops.kv_cas_op(key, expected_mod_revision, value))

    def delete(self, key: bytes) -> int:
        """Delete the key; 1 if it existed, else 0."""
        return self._client._run(admin_ops.kv_delete_op(key))


class Client:
    """A connection to a raftkube cluster: every master, with failover (see README.md).

    Thread-safe: share one Client between threads. Close it (or use `with`) to release
    the channels.
    """

    def __init__(self, masters: Sequence[str], credentials: grpc.ChannelCredentials, *,
                 options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        start = (random.Random(self.options.seed).randrange(len(masters))
                 if masters and self.options.random_start else 0)
        self._transport = SyncTransport(credentials, Endpoints(masters, start),
                                        self.options.retry, self.options.seed)
        self.admin = AdminClient(self)
        self.kv = KVClient(self)

    @classmethod
    def from_config(cls, path: str | Path | None = None, *,
                    options: ClientOptions | None = None) -> Client:
        """A client from a client config file (default: $RAFTKUBECONFIG, else
        ~/.raftkube/config). Raise ClientConfigError naming the file and field."""
        config = load_client_config(Path(path) if path is not None else None)
        return cls.from_client_config(config, options=options)

    @classmethod
    def from_client_config(cls, config: ClientConfig, *,
                           options: ClientOptions | None = None) -> Client:
        return cls(config.masters, config.credentials(), options=options)

    @property
    def namespace(self) -> str:
        return self.options.namespace

    @property
    def masters(self) -> tuple[str, ...]:
        return self._transport.endpoints.addresses

    @property
    def current_master(self) -> str:
        """The master the next call goes to."""
        return self._transport.endpoints.current()

    def prefer_master(self, address: str) -> None:
        """Send the next calls to `address` (added to the known masters if new), e.g. the
        master on this machine. Failover still moves away from it when it fails."""
        self._transport.endpoints.prefer(address)

    def resource(self, kind: str | registry.KindInfo | type[Message]) -> ResourceClient:
        """Operations on one kind: `client.resource("Deployment")`, `("deploy")`."""
        return ResourceClient(self, resolve_kind(kind))

    def __getattr__(self, name: str) -> ResourceClient:
        for info in registry.all_kinds():
            if info.plural == name:
                return ResourceClient(self, info)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # -- object operations taking whole objects -------------------------------------------
    def create(self, obj: Message, *, dry_run: bool = False) -> Message:
        """Create `obj`; the stored object (uid, resourceVersion, defaults). AlreadyExists
        when the name is taken. Retried across masters: a retry that meets AlreadyExists
        after an interrupted attempt succeeds only if the stored object is the one this
        call created (same content, created after the call began)."""
        return self._run(core.create_op(self._namespaced(obj), dry_run,
                                        self.options.create_clock_skew))

    def get(self, kind: str | registry.KindInfo | type[Message], name: str,
            namespace: str | None = None) -> Message:
        return self.resource(kind).get(name, namespace)

    def list(self, kind: str | registry.KindInfo | type[Message],
             namespace: str | None = None, **selectors: Any) -> list[Message]:
        """`client.list("pods", label_selector="app=web", all_namespaces=True)`."""
        return self.resource(kind).list(namespace, **selectors)

    def update(self, obj: Message, *, dry_run: bool = False) -> Message:
        """Replace spec and metadata. With metadata.resourceVersion set: Conflict if the
        object changed since, and the call is retried across masters; without it, the
        update applies to whatever is current and an interrupted call raises
        UnknownOutcome."""
        return self._run(core.update_op(self._namespaced(obj), dry_run))

    def update_status(self, obj: Message, *, dry_run: bool = False) -> Message:
        """Replace status only (guarded by resourceVersion like update)."""
        return self._run(core.update_op(self._namespaced(obj), dry_run, status=True))

    def apply(self, obj: Message, *, dry_run: bool = False) -> tuple[Message, str]:
        """Create or update to this manifest: (object, "created"|"configured"|"unchanged").
        Idempotent in effect; an interrupted call raises UnknownOutcome — apply again."""
        return self._run(core.apply_op(self._namespaced(obj), dry_run))

    def delete(self, kind: str | registry.KindInfo | type[Message], name: str,
               namespace: str | None = None, **options: Any) -> core.DeleteResult:
        """Delete; options: grace_period_seconds, propagation_policy ("Background",
        "Foreground", "Orphan"), precondition_uid, precondition_resource_version, dry_run.
        With a precondition the call is retried across masters."""
        return self.resource(kind).delete(name, namespace, **options)

    def apply_manifests(self, paths: Sequence[str | Path], *, stdin: TextIO | None = None,
                        dry_run: bool = False) -> list[tuple[Message, str]]:
        """Load every object from files, directories and "-" (all-or-nothing: a
        ManifestError lists every problem before anything is sent), then apply each in
        order: [(object, action)]. Objects without a namespace go to the client's namespace."""
        loaded = load_manifests([str(p) for p in paths], stdin=stdin)
        return [self.apply(item.obj, dry_run=dry_run) for item in loaded]

    def bind_pods(self, bindings: Sequence[tuple[str, str, str, str]]) -> str:
        """Bind (namespace, pod, resourceVersion, node) in one transaction; its revision."""
        return self._run(core.bind_pods_op(list(bindings)))

    # -- plumbing ----------------------------------------------------------------------
    def _namespaced(self, obj: Message) -> Message:
        return namespaced(obj, self.namespace)

    def _run(self, op: core.Operation) -> Any:
        return self._transport.run(op)

    def _watch(self, spec: WatchSpec, on_synced: Callable[[], None] | None = None,
               tracker: WatchTracker | None = None) -> Watch:
        return Watch(self._transport, spec, self.options.list_page_size,
                     self.options.watch_idle_timeout, self.options.watch_give_up,
                     on_synced, tracker)

    # -- container streams (proxied by the masters) ---------------------------------------
    def _stream_stub(self) -> Any:
        """A NodeAgent stub on a master that answers (tries each master once)."""
        last: Exception | None = None
        for _ in range(len(self.masters)):
            address = self._transport.endpoints.current()
            try:
                self.admin.local_status(address)
                return self._transport.stub(address, "NodeAgent")
            except apierrors.ApiError as e:
                last = e
                self._transport.endpoints.failed(address)
        raise apierrors.Unavailable(f"no master answers: {last}")

    def pod_logs(self, name: str, namespace: str | None = None, *, container: str = "",
                 follow: bool = False, tail_lines: int = 0, previous: bool = False,
                 timestamps: bool = False) -> Iterator[bytes]:
        """A container's output, chunk by chunk (with `follow`: until it exits or the
        caller stops iterating)."""
        request = pod_streams.logs_request(namespace or self.options.namespace, name,
                                           container=container, follow=follow,
                                           tail_lines=tail_lines, previous=previous,
                                           timestamps=timestamps)
        call = self._stream_stub().Logs(request)
        try:
            for chunk in call:
                yield chunk.data
        except grpc.RpcError as e:
            raise apierrors.from_rpc_error(e) from None
        finally:
            call.cancel()

    def pod_exec(self, name: str, command: Sequence[str], namespace: str | None = None, *,
                 container: str = "", tty: bool = False, stdin: bool = False,
                 terminal_size: tuple[int, int] | None = None) -> pod_streams.ExecSession:
        """Start `command` in a container; read `output()`, then `exit_code`. With `tty`,
        `terminal_size` (rows, cols) is its terminal's size from the start; later changes
        go through `session.resize()`."""
        start = pod_streams.exec_start(namespace or self.options.namespace, name, command,
                                       container=container, tty=tty, stdin=stdin,
                                       terminal_size=terminal_size)
        inputs: queue.Queue = queue.Queue()
        if not stdin:
            inputs.put(None)
        calls = self._stream_stub().Exec(pod_streams.exec_inputs(start, inputs))
        return pod_streams.ExecSession(calls, inputs)

    def pod_port_forward(self, name: str, port: int, namespace: str | None = None
                         ) -> pod_streams.PortForwardStream:
        """A TCP connection to `port` of the pod, relayed through a master and the pod's
        node."""
        if not 0 < port < 65536:
            raise apierrors.Invalid(f"port: {port} is not a port number")
        first = node_agent_pb2.PortForwardFrame(
            target=pod_streams.container_ref(namespace or self.options.namespace, name),
            port=port)
        outgoing: queue.Queue = queue.Queue()
        calls = self._stream_stub().PortForward(pod_streams.port_forward_frames(first, outgoing))
        return pod_streams.PortForwardStream(calls, outgoing)

    def node_stats(self, node: str, timeout: float = 10.0) -> node_agent_pb2.NodeStats:
        """The node's latest usage sample, relayed by a master that answers (`get
        nodes/stats`). Unavailable until the node's agent has two samples."""
        try:
            return self._stream_stub().Stats(node_agent_pb2.StatsRequest(node=node),
                                             timeout=timeout)
        except grpc.RpcError as e:
            raise apierrors.from_rpc_error(e) from None

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
