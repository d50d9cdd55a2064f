from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StoreKeyValue(_message.Message):
    __slots__ = ("key", "value", "create_revision", "mod_revision", "version")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CREATE_REVISION_FIELD_NUMBER: _ClassVar[int]
    MOD_REVISION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., create_revision: _Optional[int] = ..., mod_revision: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class StoreResponseHeader(_message.Message):
    __slots__ = ("member", "revision", "raft_term", "leader")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    RAFT_TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    member: str
    revision: int
    raft_term: int
    leader: str
    def __init__(self, member: _Optional[str] = ..., revision: _Optional[int] = ..., raft_term: _Optional[int] = ..., leader: _Optional[str] = ...) -> None: ...

class StoreRangeRequest(_message.Message):
    __slots__ = ("key", "range_end", "limit", "serializable")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RANGE_END_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SERIALIZABLE_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    range_end: bytes
    limit: int
    serializable: bool
    def __init__(self, key: _Optional[bytes] = ..., range_end: _Optional[bytes] = ..., limit: _Optional[int] = ..., serializable: _Optional[bool] = ...) -> None: ...

class StoreRangeResponse(_message.Message):
    __slots__ = ("header", "kvs", "more", "count")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    KVS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    header: StoreResponseHeader
    kvs: _containers.RepeatedCompositeFieldContainer[StoreKeyValue]
    more: bool
    count: int
    def __init__(self, header: _Optional[_Union[StoreResponseHeader, _Mapping]] = ..., kvs: _Optional[_Iterable[_Union[StoreKeyValue, _Mapping]]] = ..., more: _Optional[bool] = ..., count: _Optional[int] = ...) -> None: ...

class StorePutRequest(_message.Message):
    __slots__ = ("key", "value", "timeout_seconds")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    value: bytes
    timeout_seconds: float
    def __init__(self, key: _Optional[bytes] = ..., value: _Optional[bytes] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class StorePutResponse(_message.Message):
    __slots__ = ("header", "prev_kv", "has_prev_kv")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PREV_KV_FIELD_NUMBER: _ClassVar[int]
    HAS_PREV_KV_FIELD_NUMBER: _ClassVar[int]
    header: StoreResponseHeader
    prev_kv: StoreKeyValue
    has_prev_kv: bool
    def __init__(self, header: _Optional[_Union[StoreResponseHeader, _Mapping]] = ..., prev_kv: _Optional[_Union[StoreKeyValue, _Mapping]] = ..., has_prev_kv: _Optional[bool] = ...) -> None: ...

class StoreDeleteRangeRequest(_message.Message):
    __slots__ = ("key", "range_end", "timeout_seconds")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RANGE_END_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    range_end: bytes
    timeout_seconds: float
    def __init__(self, key: _Optional[bytes] = ..., range_end: _Optional[bytes] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class StoreDeleteRangeResponse(_message.Message):
    __slots__ = ("header", "deleted", "prev_kvs")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    PREV_KVS_FIELD_NUMBER: _ClassVar[int]
    header: StoreResponseHeader
    deleted: int
    prev_kvs: _containers.RepeatedCompositeFieldContainer[StoreKeyValue]
    def __init__(self, header: _Optional[_Union[StoreResponseHeader, _Mapping]] = ..., deleted: _Optional[int] = ..., prev_kvs: _Optional[_Iterable[_Union[StoreKeyValue, _Mapping]]] = ...) -> None: ...

class StoreCompare(_message.Message):
    __slots__ = ("result", "target", "key", "number", "value")
    class Target(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VERSION: _ClassVar[StoreCompare.Target]
        CREATE: _ClassVar[StoreCompare.Target]
        MOD: _ClassVar[StoreCompare.Target]
        VALUE: _ClassVar[StoreCompare.Target]
    VERSION: StoreCompare.Target
    CREATE: StoreCompare.Target
    MOD: StoreCompare.Target
    VALUE: StoreCompare.Target
    class Result(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EQUAL: _ClassVar[StoreCompare.Result]
        GREATER: _ClassVar[StoreCompare.Result]
        LESS: _ClassVar[StoreCompare.Result]
        NOT_EQUAL: _ClassVar[StoreCompare.Result]
    EQUAL: StoreCompare.Result
    GREATER: StoreCompare.Result
    LESS: StoreCompare.Result
    NOT_EQUAL: StoreCompare.Result
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    result: StoreCompare.Result
    target: StoreCompare.Target
    key: bytes
    number: int
    value: bytes
    def __init__(self, result: _Optional[_Union[StoreCompare.Result, str]] = ..., target: _Optional[_Union[StoreCompare.Target, str]] = ..., key: _Optional[bytes] = ..., number: _Optional[int] = ..., value: _Optional[bytes] = ...) -> None: ...

class StoreRequestOp(_message.Message):
    __slots__ = ("request_range", "request_put", "request_delete_range")
    REQUEST_RANGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_PUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DELETE_RANGE_FIELD_NUMBER: _ClassVar[int]
    request_range: StoreRangeRequest
    request_put: StorePutRequest
    request_delete_range: StoreDeleteRangeRequest
    def __init__(self, request_range: _Optional[_Union[StoreRangeRequest, _Mapping]] = ..., request_put: _Optional[_Union[StorePutRequest, _Mapping]] = ..., request_delete_range: _Optional[_Union[StoreDeleteRangeRequest, _Mapping]] = ...) -> None: ...

class StoreResponseOp(_message.Message):
    __slots__ = ("response_range", "response_put", "response_delete_range")
    RESPONSE_RANGE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_PUT_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_DELETE_RANGE_FIELD_NUMBER: _ClassVar[int]
    response_range: StoreRangeResponse
    response_put: StorePutResponse
    response_delete_range: StoreDeleteRangeResponse
    def __init__(self, response_range: _Optional[_Union[StoreRangeResponse, _Mapping]] = ..., response_put: _Optional[_Union[StorePutResponse, _Mapping]] = ..., response_delete_range: _Optional[_Union[StoreDeleteRangeResponse, _Mapping]] = ...) -> None: ...

class StoreTxnRequest(_message.Message):
    __slots__ = ("compare", "success", "failure", "timeout_seconds")
    COMPARE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    compare: _containers.RepeatedCompositeFieldContainer[StoreCompare]
    success: _containers.RepeatedCompositeFieldContainer[StoreRequestOp]
    failure: _containers.RepeatedCompositeFieldContainer[StoreRequestOp]
    timeout_seconds: float
    def __init__(self, compare: _Optional[_Iterable[_Union[StoreCompare, _Mapping]]] = ..., success: _Optional[_Iterable[_Union[StoreRequestOp, _Mapping]]] = ..., failure: _Optional[_Iterable[_Union[StoreRequestOp, _Mapping]]] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class StoreTxnResponse(_message.Message):
    __slots__ = ("header", "succeeded", "failed_compare", "responses")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_COMPARE_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    header: StoreResponseHeader
    succeeded: bool
    failed_compare: int
    responses: _containers.RepeatedCompositeFieldContainer[StoreResponseOp]
    def __init__(self, header: _Optional[_Union[StoreResponseHeader, _Mapping]] = ..., succeeded: _Optional[bool] = ..., failed_compare: _Optional[int] = ..., responses: _Optional[_Iterable[_Union[StoreResponseOp, _Mapping]]] = ...) -> None: ...

class StoreWatchRequest(_message.Message):
    __slots__ = ("key", "range_end", "start_revision")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RANGE_END_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    key: bytes
    range_end: bytes
    start_revision: int
    def __init__(self, key: _Optional[bytes] = ..., range_end: _Optional[bytes] = ..., start_revision: _Optional[int] = ...) -> None: ...

class StoreEvent(_message.Message):
    __slots__ = ("type", "kv", "prev_kv", "has_prev_kv")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PUT: _ClassVar[StoreEvent.EventType]
        DELETE: _ClassVar[StoreEvent.EventType]
    PUT: StoreEvent.EventType
    DELETE: StoreEvent.EventType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    KV_FIELD_NUMBER: _ClassVar[int]
    PREV_KV_FIELD_NUMBER: _ClassVar[int]
    HAS_PREV_KV_FIELD_NUMBER: _ClassVar[int]
    type: StoreEvent.EventType
    kv: StoreKeyValue
    prev_kv: StoreKeyValue
    has_prev_kv: bool
    def __init__(self, type: _Optional[_Union[StoreEvent.EventType, str]] = ..., kv: _Optional[_Union[StoreKeyValue, _Mapping]] = ..., prev_kv: _Optional[_Union[StoreKeyValue, _Mapping]] = ..., has_prev_kv: _Optional[bool] = ...) -> None: ...

class StoreWatchResponse(_message.Message):
    __slots__ = ("header", "events", "created", "canceled", "compact_revision")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CANCELED_FIELD_NUMBER: _ClassVar[int]
    COMPACT_REVISION_FIELD_NUMBER: _ClassVar[int]
    header: StoreResponseHeader
    events: _containers.RepeatedCompositeFieldContainer[StoreEvent]
    created: bool
    canceled: bool
    compact_revision: int
    def __init__(self, header: _Optional[_Union[StoreResponseHeader, _Mapping]] = ..., events: _Optional[_Iterable[_Union[StoreEvent, _Mapping]]] = ..., created: _Optional[bool] = ..., canceled: _Optional[bool] = ..., compact_revision: _Optional[int] = ...) -> None: ...

class StoreStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StoreMember(_message.Message):
    __slots__ = ("address", "connected", "match_index", "lag")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    MATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    address: str
    connected: bool
    match_index: int
    lag: int
    def __init__(self, address: _Optional[str] = ..., connected: _Optional[bool] = ..., match_index: _Optional[int] = ..., lag: _Optional[int] = ...) -> None: ...

class StoreStatusResponse(_message.Message):
    __slots__ = ("header", "id", "address", "is_leader", "commit_index", "applied_index", "members", "compact_revision", "state_hash", "has_quorum", "journal_entries")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IS_LEADER_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    COMPACT_REVISION_FIELD_NUMBER: _ClassVar[int]
    STATE_HASH_FIELD_NUMBER: _ClassVar[int]
    HAS_QUORUM_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    header: StoreResponseHeader
    id: str
    address: str
    is_leader: bool
    commit_index: int
    applied_index: int
    members: _containers.RepeatedCompositeFieldContainer[StoreMember]
    compact_revision: int
    state_hash: str
    has_quorum: bool
    journal_entries: int
    def __init__(self, header: _Optional[_Union[StoreResponseHeader, _Mapping]] = ..., id: _Optional[str] = ..., address: _Optional[str] = ..., is_leader: _Optional[bool] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., members: _Optional[_Iterable[_Union[StoreMember, _Mapping]]] = ..., compact_revision: _Optional[int] = ..., state_hash: _Optional[str] = ..., has_quorum: _Optional[bool] = ..., journal_entries: _Optional[int] = ...) -> None: ...

class StoreMemberRequest(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: str
    def __init__(self, address: _Optional[str] = ...) -> None: ...

class StoreMemberResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: StoreResponseHeader
    def __init__(self, header: _Optional[_Union[StoreResponseHeader, _Mapping]] = ...) -> None: ...

class StoreTransferRequest(_message.Message):
    __slots__ = ("to",)
    TO_FIELD_NUMBER: _ClassVar[int]
    to: str
    def __init__(self, to: _Optional[str] = ...) -> None: ...

class StoreTransferResponse(_message.Message):
    __slots__ = ("leader",)
    LEADER_FIELD_NUMBER: _ClassVar[int]
    leader: str
    def __init__(self, leader: _Optional[str] = ...) -> None: ...

class StoreSnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StoreSnapshotChunk(_message.Message):
    __slots__ = ("data", "last", "total_size", "revision")
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    last: bool
    total_size: int
    revision: int
    def __init__(self, data: _Optional[bytes] = ..., last: _Optional[bool] = ..., total_size: _Optional[int] = ..., revision: _Optional[int] = ...) -> None: ...

class StoreCompactRequest(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class StoreCompactResponse(_message.Message):
    __slots__ = ("compact_revision",)
    COMPACT_REVISION_FIELD_NUMBER: _ClassVar[int]
    compact_revision: int
    def __init__(self, compact_revision: _Optional[int] = ...) -> None: ...
