from raftkube.api.v1 import meta_pb2 as _meta_pb2
from raftkube.api.v1 import pod_pb2 as _pod_pb2
from raftkube.api.v1 import core_pb2 as _core_pb2
from raftkube.api.v1 import storage_pb2 as _storage_pb2
from raftkube.api.v1 import apps_pb2 as _apps_pb2
from raftkube.api.v1 import networking_pb2 as _networking_pb2
from raftkube.api.v1 import coordination_pb2 as _coordination_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TypedObject(_message.Message):
    __slots__ = ("namespace", "node", "pod", "service", "endpoints", "config_map", "secret", "event", "persistent_volume", "persistent_volume_claim", "deployment", "replica_set", "stateful_set", "ingress", "lease")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_MAP_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_VOLUME_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_VOLUME_CLAIM_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    REPLICA_SET_FIELD_NUMBER: _ClassVar[int]
    STATEFUL_SET_FIELD_NUMBER: _ClassVar[int]
    INGRESS_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    namespace: _core_pb2.Namespace
    node: _core_pb2.Node
    pod: _pod_pb2.Pod
    service: _core_pb2.Service
    endpoints: _core_pb2.Endpoints
    config_map: _core_pb2.ConfigMap
    secret: _core_pb2.Secret
    event: _core_pb2.Event
    persistent_volume: _storage_pb2.PersistentVolume
    persistent_volume_claim: _storage_pb2.PersistentVolumeClaim
    deployment: _apps_pb2.Deployment
    replica_set: _apps_pb2.ReplicaSet
    stateful_set: _apps_pb2.StatefulSet
    ingress: _networking_pb2.Ingress
    lease: _coordination_pb2.Lease
    def __init__(self, namespace: _Optional[_Union[_core_pb2.Namespace, _Mapping]] = ..., node: _Optional[_Union[_core_pb2.Node, _Mapping]] = ..., pod: _Optional[_Union[_pod_pb2.Pod, _Mapping]] = ..., service: _Optional[_Union[_core_pb2.Service, _Mapping]] = ..., endpoints: _Optional[_Union[_core_pb2.Endpoints, _Mapping]] = ..., config_map: _Optional[_Union[_core_pb2.ConfigMap, _Mapping]] = ..., secret: _Optional[_Union[_core_pb2.Secret, _Mapping]] = ..., event: _Optional[_Union[_core_pb2.Event, _Mapping]] = ..., persistent_volume: _Optional[_Union[_storage_pb2.PersistentVolume, _Mapping]] = ..., persistent_volume_claim: _Optional[_Union[_storage_pb2.PersistentVolumeClaim, _Mapping]] = ..., deployment: _Optional[_Union[_apps_pb2.Deployment, _Mapping]] = ..., replica_set: _Optional[_Union[_apps_pb2.ReplicaSet, _Mapping]] = ..., stateful_set: _Optional[_Union[_apps_pb2.StatefulSet, _Mapping]] = ..., ingress: _Optional[_Union[_networking_pb2.Ingress, _Mapping]] = ..., lease: _Optional[_Union[_coordination_pb2.Lease, _Mapping]] = ...) -> None: ...

class TypedObjectList(_message.Message):
    __slots__ = ("metadata", "items")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    metadata: _meta_pb2.ListMeta
    items: _containers.RepeatedCompositeFieldContainer[TypedObject]
    def __init__(self, metadata: _Optional[_Union[_meta_pb2.ListMeta, _Mapping]] = ..., items: _Optional[_Iterable[_Union[TypedObject, _Mapping]]] = ...) -> None: ...
