from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LocalStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MasterStatus(_message.Message):
    __slots__ = ("name", "api_address", "raft_address", "role", "term", "commit_index", "applied_index", "pid", "health", "leader", "revision", "state_hash", "lag", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    API_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    STATE_HASH_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    api_address: str
    raft_address: str
    role: str
    term: int
    commit_index: int
    applied_index: int
    pid: int
    health: str
    leader: str
    revision: int
    state_hash: str
    lag: int
    version: str
    def __init__(self, name: _Optional[str] = ..., api_address: _Optional[str] = ..., raft_address: _Optional[str] = ..., role: _Optional[str] = ..., term: _Optional[int] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., pid: _Optional[int] = ..., health: _Optional[str] = ..., leader: _Optional[str] = ..., revision: _Optional[int] = ..., state_hash: _Optional[str] = ..., lag: _Optional[int] = ..., version: _Optional[str] = ...) -> None: ...

class ClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClusterStatusResponse(_message.Message):
    __slots__ = ("masters", "leader", "term", "members")
    MASTERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    masters: _containers.RepeatedCompositeFieldContainer[MasterStatus]
    leader: str
    term: int
    members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, masters: _Optional[_Iterable[_Union[MasterStatus, _Mapping]]] = ..., leader: _Optional[str] = ..., term: _Optional[int] = ..., members: _Optional[_Iterable[str]] = ...) -> None: ...

class AddMasterRequest(_message.Message):
    __slots__ = ("name", "api_address", "raft_address")
    NAME_FIELD_NUMBER: _ClassVar[int]
    API_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RAFT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    api_address: str
    raft_address: str
    def __init__(self, name: _Optional[str] = ..., api_address: _Optional[str] = ..., raft_address: _Optional[str] = ...) -> None: ...

class RemoveMasterRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class MembershipResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, members: _Optional[_Iterable[str]] = ...) -> None: ...

class SnapshotSaveRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SnapshotChunk(_message.Message):
    __slots__ = ("data", "sha256", "revision")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    sha256: str
    revision: int
    def __init__(self, data: _Optional[bytes] = ..., sha256: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class CreateJoinTokenRequest(_message.Message):
    __slots__ = ("ttl_seconds", "description")
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ttl_seconds: int
    description: str
    def __init__(self, ttl_seconds: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class CreateJoinTokenResponse(_message.Message):
    __slots__ = ("token", "expires_at")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: float
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[float] = ...) -> None: ...

class RotateSecretsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateSecretsResponse(_message.Message):
    __slots__ = ("rewritten", "key")
    REWRITTEN_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    rewritten: int
    key: str
    def __init__(self, rewritten: _Optional[int] = ..., key: _Optional[str] = ...) -> None: ...

class JoinNodeRequest(_message.Message):
    __slots__ = ("node_name", "serving_csr")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVING_CSR_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    serving_csr: bytes
    def __init__(self, node_name: _Optional[str] = ..., serving_csr: _Optional[bytes] = ...) -> None: ...

class JoinNodeResponse(_message.Message):
    __slots__ = ("token", "masters", "serving_certificate")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    MASTERS_FIELD_NUMBER: _ClassVar[int]
    SERVING_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    token: str
    masters: _containers.RepeatedScalarFieldContainer[str]
    serving_certificate: bytes
    def __init__(self, token: _Optional[str] = ..., masters: _Optional[_Iterable[str]] = ..., serving_certificate: _Optional[bytes] = ...) -> None: ...
