"""Container logs, exec, port-forward and node usage through the API server: the master
serves the NodeAgent gRPC service itself and forwards each call to the agent on the pod's
(or the named) node.

```
 raftkubectl logs/exec ──TLS+token──> master: authorize pods/log or pods/exec
                                         │ pod -> node -> InternalIP : agent port
                                         └──mutual TLS (master cert, O system:masters)──>
                                            worker agent NodeAgent.Logs / Exec
```

Contract: users never reach workers directly; every call is authorized here (`get
pods/log`, `create pods/exec`, `create pods/portforward`, `get nodes/stats`) and audited
like other requests. The worker's serving certificate must chain to the cluster CA or to
the node serving CA (certificates signed when workers join with a token, see
masters/node_serving_certs.py) and name the node (DNS SAN = node name). Errors
from the worker are passed on with their code.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc

from raftkube import apierrors
from raftkube.api.v1 import node_agent_pb2, node_agent_pb2_grpc
from raftkube.masters.gatekeeper import Gatekeeper
from raftkube.masters.object_store import ObjectStore
from raftkube.objects import registry

_POD = registry.by_kind("Pod")
_NODE = registry.by_kind("Node")
_STATS_TIMEOUT_SECONDS = 5.0


class PodStreamsProxy(node_agent_pb2_grpc.NodeAgentServicer):
    """The NodeAgent service on a master, forwarding to the pod's node.

    ca_pem: the CA certificates a node agent's serving certificate may chain to (the
        cluster CA and, when the master holds it, the node serving CA).
    cert_file / key_file: the master's certificate, presented to node agents.
    """

    def __init__(self, objects: ObjectStore, gatekeeper: Gatekeeper, ca_pem: bytes,
                 cert_file: Path, key_file: Path) -> None:
        self._objects = objects
        self._gate = gatekeeper
        self._credentials = grpc.ssl_channel_credentials(
            ca_pem, Path(key_file).read_bytes(), Path(cert_file).read_bytes())
        self._channels: dict[tuple[str, str], grpc.Channel] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()

    def _node_stub(self, target: node_agent_pb2.ContainerRef, subresource: str,
                   verb: str) -> node_agent_pb2_grpc.NodeAgentStub:
        namespace = target.namespace or "default"
        pod = self._objects.get_many(_POD, namespace, target.pod)
        node_name = pod.spec.node_name if pod is not None else None
        self._gate.check(verb, _POD, namespace, target.pod, subresource=subresource,
                         object_node=node_name)
        if pod is None:
            raise apierrors.NotFound(f'pods "{target.pod}" not found in namespace '
                                     f'"{namespace}"')
        if not node_name:
            raise apierrors.Invalid(f'pod "{target.pod}" is not running on a node yet')
        return self._stub_for_node(node_name)

    def _stub_for_node(self, node_name: str) -> node_agent_pb2_grpc.NodeAgentStub:
        """A stub on the agent of `node_name`, at the address its Node status publishes."""
        node = self._objects.get_many(_NODE, "", node_name)
        if node is None:
            raise apierrors.NotFound(f'nodes "{node_name}" not found')
        address = next((a.address for a in node.status.addresses if a.type == "InternalIP"),
                       "")
        port = node.status.daemon_endpoints.kubelet_endpoint.port
        if not address or not port:
            raise apierrors.Unavailable(f'node "{node_name}" publishes no agent service')
        host = f"[{address}]" if ":" in address else address
        key = (f"{host}:{port}", node_name)
        with self._lock:
            channel = self._channels.get(key)
            if channel is None:
                channel = grpc.secure_channel(
                    key[0], self._credentials,
                    options=[("grpc.ssl_target_name_override", node_name)])
                self._channels[key] = channel
        return node_agent_pb2_grpc.NodeAgentStub(channel)

    def Logs(self, request, context) -> Iterator[node_agent_pb2.LogsChunk]:
        try:
            stub = self._node_stub(request.target, "log", "get")
        except apierrors.ApiError as e:
            e.abort(context)
        yield from _forward(stub.Logs(request), context)

    def Exec(self, request_iterator, context) -> Iterator[node_agent_pb2.ExecOutput]:
        first = next(request_iterator, None)
        if first is None or not first.HasField("start"):
            apierrors.Invalid("the first Exec message must carry `start`").abort(context)
        try:
            stub = self._node_stub(first.start.target, "exec", "create")
        except apierrors.ApiError as e:
            e.abort(context)
        yield from _forward(stub.Exec(itertools.chain([first], request_iterator)), context)

    def PortForward(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or not first.HasField("target"):
            apierrors.Invalid("the first PortForward message must carry target and port"
                              ).abort(context)
        try:
            stub = self._node_stub(first.target, "portforward", "create")
        except apierrors.ApiError as e:
            e.abort(context)
        yield from _forward(stub.PortForward(itertools.chain([first], request_iterator)),
                            context)


    def Stats(self, request: node_agent_pb2.StatsRequest, context) -> node_agent_pb2.NodeStats:
        try:
            if not request.node:
                raise apierrors.Invalid("node: required")
            self._gate.check("get", _NODE, None, request.node, subresource="stats")
            stub = self._stub_for_node(request.node)
        except apierrors.ApiError as e:
            e.abort(context)
        try:
            return stub.Stats(request, timeout=_STATS_TIMEOUT_SECONDS)
        except grpc.RpcError as e:
            context.abort(e.code(), f'node "{request.node}": {e.details()}')


def _forward(upstream, context) -> Iterator:
    """Relay a node's response stream; cancel it when our caller goes away; pass its
    errors on with their codes."""
    context.add_callback(upstream.cancel)
    try:
        yield from upstream
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            context.abort(e.code(), f"from the node: {e.details()}")
