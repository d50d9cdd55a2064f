"""The worker's logs/exec gRPC service (proto/raftkube/api/v1/node_agent.proto).

    caller (API server proxy, tests) --mTLS, client cert O=system:masters--> NodeAgent
        Logs(target, follow, tail, previous)  -> runtime.logs(container instance)
        Exec(start, stdin..., eof)            -> runtime.exec_stream(...) -> output, exit code
        PortForward(target, port, bytes...)   -> TCP connection to the pod's IP
        Stats(node)                           -> the UsageSampler's latest figures

Authentication is the TLS layer's: only certificates signed by the cluster CA get in.
Authorization: the certificate's groups must include one of `allowed_groups` (default
system:masters); anything else gets PERMISSION_DENIED. Pods are found through
`PodLookup` (the agent's informer), containers through the runtime's labels.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import datetime

import grpc

from raftkube.api.v1 import node_agent_pb2, node_agent_pb2_grpc, pod_pb2
from raftkube.security.grpc_auth import principal_from_auth_context, server_credentials
from raftkube.workers.agent.usage import NodeUsage
from raftkube.workers.runtime.interface import (
    ContainerNotFoundError,
    ContainerRuntimeError,
    ContainerState,
    ContainerStatus,
    ExecSession,
    Runtime,
    TerminalSize,
)

PodLookup = Callable[[str, str], pod_pb2.Pod | None]
UsageSource = Callable[[], NodeUsage | None]


class NodeAgentServicer(node_agent_pb2_grpc.NodeAgentServicer):
    """node_name: the node this agent serves (Stats refuses other names); usage: the latest
    sampled usage (None = not sampled yet)."""

    def __init__(self, runtime: Runtime, pods: PodLookup,
                 allowed_groups: tuple[str, ...] = ("system:masters",), *,
                 node_name: str = "", usage: UsageSource | None = None) -> None:
        self.runtime = runtime
        self.pods = pods
        self.allowed_groups = allowed_groups
        self.node_name = node_name
        self.usage = usage

    # -- helpers ---------------------------------------------------------------------------
    def _authorize(self, context: grpc.ServicerContext) -> None:
        principal = principal_from_auth_context(context.auth_context())
        if principal is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
        if not set(principal.groups) & set(self.allowed_groups):  # type: ignore[union-attr]
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"user {principal.name!r} is not in any of the groups "  # type: ignore[union-attr]
                          f"{', '.join(self.allowed_groups)}")

    def _instance(self, target: node_agent_pb2.ContainerRef, context: grpc.ServicerContext,
                  previous: bool = False) -> ContainerStatus:
        pod = self.pods(target.namespace or "default", target.pod)
        if pod is None or (target.pod_uid and target.pod_uid != pod.metadata.uid):
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f'pod "{target.namespace}/{target.pod}" is not on this node')
        assert pod is not None
        names = [c.name for c in [*pod.spec.init_containers, *pod.spec.containers]]
        name = target.container
        if not name:
            if len(pod.spec.containers) != 1:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f'pod "{target.pod}" has several containers: name one of '
                              f"{', '.join(names)}")
            name = pod.spec.containers[0].name
        if name not in names:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f'container "{name}" is not in pod "{target.pod}" (has '
                          f"{', '.join(names)})")
        instances = sorted((c for c in self.runtime.list_containers(pod.metadata.uid)
                            if c.name == name and c.state is not ContainerState.CREATED),
                           key=lambda c: c.attempt)
        wanted = instances[-2:-1] if previous else instances[-1:]
        if not wanted:
            what = "previous terminated container" if previous else "container"
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f'{what} "{name}" in pod "{target.pod}" not found')
        return wanted[0]

    # -- RPCs ------------------------------------------------------------------------------
    def Logs(self, request: node_agent_pb2.LogsRequest,
             context: grpc.ServicerContext) -> Iterator[node_agent_pb2.LogsChunk]:
        self._authorize(context)
        instance = self._instance(request.target, context, request.previous)
        since = None
        if request.since_time:
            try:
                since = datetime.fromisoformat(request.since_time.replace("Z", "+00:00"))
            except ValueError:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"sinceTime: {request.since_time!r} is not RFC 3339")
        try:
            stream = self.runtime.logs(instance.container_id, follow=request.follow,
                                       since=since, tail=request.tail_lines or None,
                                       timestamps=request.timestamps)
            for chunk in stream:
                if not context.is_active():
                    return
                yield node_agent_pb2.LogsChunk(data=chunk)
        except ContainerNotFoundError:
            context.abort(grpc.StatusCode.NOT_FOUND, "the container was removed")
        except ContainerRuntimeError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    def Exec(self, request_iterator: Iterator[node_agent_pb2.ExecInput],
             context: grpc.ServicerContext) -> Iterator[node_agent_pb2.ExecOutput]:
        self._authorize(context)
        first = next(request_iterator, None)
        if first is None or not first.HasField("start"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "the first Exec message must carry `start`")
        assert first is not None
        start = first.start
        if not start.command:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "start.command: required")
        instance = self._instance(start.target, context)
        if instance.state is not ContainerState.RUNNING:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f'container "{instance.name}" is not running')
        resizer = _Resizer()
        stdin = _stdin_feed(request_iterator, first, resizer.resize) if start.stdin else None
        size = _size(start.size) if start.tty and start.HasField("size") else None
        try:
            session = self.runtime.exec_stream(instance.container_id, list(start.command),
                                               stdin=stdin, tty=start.tty, size=size)
        except ContainerRuntimeError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        resizer.attach(session)
        try:
            for stream, data in session.output():
                yield node_agent_pb2.ExecOutput(stream=stream, data=data)
            yield node_agent_pb2.ExecOutput(exit_code=session.exit_code())
        finally:
            session.close()

    def PortForward(self, request_iterator, context):
        yield from port_forward(self, request_iterator, context)

    def Stats(self, request: node_agent_pb2.StatsRequest,
              context: grpc.ServicerContext) -> node_agent_pb2.NodeStats:
        self._authorize(context)
        if request.node and request.node != self.node_name:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f'this is node "{self.node_name}", not "{request.node}"')
        usage = self.usage() if self.usage is not None else None
        if usage is None:
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          f'node "{self.node_name}": usage not sampled yet (two samples '
                          "are needed; try again in a few seconds)")
        assert usage is not None
        return usage_to_proto(self.node_name, usage)


def usage_to_proto(node_name: str, usage: NodeUsage) -> node_agent_pb2.NodeStats:
    """The NodeStats message of a sampled NodeUsage."""
    return node_agent_pb2.NodeStats(
        node=node_name, timestamp=usage.timestamp, window_seconds=usage.window_seconds,
        cpu_nanocores=usage.cpu_nanocores, memory_bytes=usage.memory_bytes,
        containers=[node_agent_pb2.ContainerStats(
            namespace=c.namespace, pod=c.pod, pod_uid=c.pod_uid, container=c.container,
            cpu_nanocores=c.cpu_nanocores, memory_bytes=c.memory_bytes)
            for c in usage.containers])


def port_forward(servicer: NodeAgentServicer, request_iterator, context
                 ) -> Iterator[node_agent_pb2.PortForwardFrame]:
    """Connect to the pod's IP on the requested port and relay bytes both ways."""
    servicer._authorize(context)
    first = next(request_iterator, None)
    if first is None or not first.HasField("target") or not 0 < first.port < 65536:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      "the first PortForward message must carry target and port")
    assert first is not None
    pod = servicer.pods(first.target.namespace or "default", first.target.pod)
    if pod is None or not pod.status.pod_ip:
        context.abort(grpc.StatusCode.NOT_FOUND,
                      f'pod "{first.target.pod}" is not running on this node')
    assert pod is not None
    try:
        sock = socket.create_connection((pod.status.pod_ip, first.port), timeout=5)
    except OSError as exc:
        context.abort(grpc.StatusCode.UNAVAILABLE,
                      f"pod {first.target.pod} port {first.port}: {exc}")
    sock.settimeout(None)

    def upstream() -> None:
        try:
            if first.data:
                sock.sendall(first.data)
            for frame in request_iterator:
                if frame.data:
                    sock.sendall(frame.data)
                if frame.close:
                    break
        except (OSError, grpc.RpcError):
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True, name="port-forward-up").start()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            yield node_agent_pb2.PortForwardFrame(data=data)
        yield node_agent_pb2.PortForwardFrame(close=True)
    finally:
        sock.close()


def _size(message: node_agent_pb2.TerminalSize) -> TerminalSize:
    return TerminalSize(message.rows, message.cols)


class _Resizer:
    """Applies terminal resizes to an exec session; one that arrives before the session
    exists is kept and applied when it is attached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: ExecSession | None = None
        self._pending: TerminalSize | None = None

    def resize(self, size: TerminalSize) -> None:
        with self._lock:
            if self._session is None:
                self._pending = size
                return
            session = self._session
        with contextlib.suppress(ContainerRuntimeError):
            session.resize(size)  # the command may have just ended

    def attach(self, session: ExecSession) -> None:
        with self._lock:
            self._session, pending = session, self._pending
        if pending is not None:
            self.resize(pending)


def _stdin_feed(requests: Iterator[node_agent_pb2.ExecInput],
                first: node_agent_pb2.ExecInput,
                on_resize: Callable[[TerminalSize], None]) -> Iterator[bytes]:
    """Bytes of the client's stdin messages until stdin_eof (or the stream ends); resize
    messages go to `on_resize` in their order among the stdin bytes."""
    chunks: queue.Queue[bytes | None] = queue.Queue()

    def pump() -> None:
        try:
            if first.stdin:
                chunks.put(first.stdin)
            if first.stdin_eof:
                return
            for message in requests:
                if message.HasField("resize"):
                    on_resize(_size(message.resize))
                if message.stdin:
                    chunks.put(message.stdin)
                if message.stdin_eof:
                    return
        except grpc.RpcError:
            return
        finally:
            chunks.put(None)

    threading.Thread(target=pump, daemon=True, name="exec-stdin").start()

    def feed() -> Iterator[bytes]:
        while True:
            chunk = chunks.get()
            if chunk is None:
                return
            yield chunk

    return feed()


class NodeAgentServer:
    """The gRPC server of NodeAgentServicer on `listen` with mutual TLS."""

    def __init__(self, servicer: NodeAgentServicer, listen: str, cert_pem: bytes,
                 key_pem: bytes, ca_pem: bytes, max_workers: int = 16) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers,
                                                             thread_name_prefix="node-agent"))
        node_agent_pb2_grpc.add_NodeAgentServicer_to_server(servicer, self.server)
        creds = server_credentials(cert_pem, key_pem, ca_pem, require_client_cert=True)
        self.port = self.server.add_secure_port(listen, creds)
        if self.port == 0:
            raise OSError(f"node agent service: cannot listen on {listen}")

    def start(self) -> NodeAgentServer:
        self.server.start()
        return self

    def stop(self, grace: float = 2.0) -> None:
        self.server.stop(grace).wait(grace + 1)
