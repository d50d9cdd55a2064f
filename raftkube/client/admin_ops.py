"""Operations of the Admin service and the raw KV API (transport-free; see core.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raftkube import apierrors
from raftkube.api.v1 import admin_pb2, kv_pb2
from raftkube.client.core import Call, Operation, Resolved
from raftkube.client.retry import Safety


def cluster_status_op() -> Operation:
    return Operation(Call("Admin", "ClusterStatus", admin_pb2.ClusterStatusRequest(),
                          Safety.READ, "cluster status"))


def local_status_op() -> Operation:
    return Operation(Call("Admin", "LocalStatus", admin_pb2.LocalStatusRequest(),
                          Safety.READ, "master status"))


def add_master_op(name: str, api_address: str, raft_address: str) -> Operation:
    """Idempotent on the server (an existing member is only re-registered); goes to the
    leader, following the leader hint of a follower's Unavailable answer."""
    request = admin_pb2.AddMasterRequest(name=name, api_address=api_address,
                                         raft_address=raft_address)
    return Operation(Call("Admin", "AddMaster", request, Safety.IDEMPOTENT,
                          f"add master {name}"), lambda r: list(r.members))


def remove_master_op(name: str) -> Operation:
    """Retried after an ambiguous attempt; NotFound then means the first attempt removed it
    (the members are then unknown: an empty list is returned)."""
    request = admin_pb2.RemoveMasterRequest(name=name)

    def settle(error: apierrors.ApiError) -> Resolved | None:
        return Resolved([]) if isinstance(error, apierrors.NotFound) else None

    return Operation(Call("Admin", "RemoveMaster", request, Safety.IDEMPOTENT,
                          f"remove master {name}"), lambda r: list(r.members), settle)


def rotate_secrets_op() -> Operation:
    """Idempotent: re-encrypting under the primary key twice rewrites nothing the second
    time. Returns (rewritten count, key name)."""
    return Operation(Call("Admin", "RotateSecrets", admin_pb2.RotateSecretsRequest(),
                          Safety.IDEMPOTENT, "rotate secrets"), lambda r: (r.rewritten, r.key))


@dataclass(frozen=True)
class JoinToken:
    token: str
    expires_at: float


def join_token_op(ttl_seconds: int, description: str = "") -> Operation:
    """Not retried after an ambiguous attempt (a second token would be issued)."""
    request = admin_pb2.CreateJoinTokenRequest(ttl_seconds=ttl_seconds,
                                               description=description)
    return Operation(Call("Admin", "CreateJoinToken", request, Safety.UNSAFE,
                          "create join token"), lambda r: JoinToken(r.token, r.expires_at))


# ---- raw KV ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KVEntry:
    """A key's value and versions; a missing key is None, not an entry."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int


def _entry(kv: Any) -> KVEntry:
    return KVEntry(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version)


def kv_get_op(key: bytes, serializable: bool = False) -> Operation:
    """Linearizable read of one key (None when absent) unless `serializable`."""
    request = kv_pb2.StoreRangeRequest(key=key, serializable=serializable)
    return Operation(Call("KV", "Range", request, Safety.READ, f"kv get {key!r}"),
                     lambda r: _entry(r.kvs[0]) if r.kvs else None)


def kv_put_op(key: bytes, value: bytes) -> Operation:
    """Blind put: the new revision. Never retried after an ambiguous attempt."""
    request = kv_pb2.StorePutRequest(key=key, value=value)
    return Operation(Call("KV", "Put", request, Safety.UNSAFE, f"kv put {key!r}"),
                     lambda r: r.header.revision)


def kv_cas_op(key: bytes, expected_mod_revision: int, value: bytes) -> Operation:
    """Put `value` only if the key's mod_revision is `expected_mod_revision` (0: the key must
    be absent): (succeeded, revision). Never retried after an ambiguous attempt."""
    compare = kv_pb2.StoreCompare(result=kv_pb2.StoreCompare.EQUAL,
                                  target=kv_pb2.StoreCompare.MOD, key=key,
                                  number=expected_mod_revision)
    put = kv_pb2.StoreRequestOp(request_put=kv_pb2.StorePutRequest(key=key, value=value))
    request = kv_pb2.StoreTxnRequest(compare=[compare], success=[put])
    return Operation(Call("KV", "Txn", request, Safety.UNSAFE, f"kv cas {key!r}"),
                     lambda r: (r.succeeded, r.header.revision))


def kv_delete_op(key: bytes) -> Operation:
    """Delete one key: how many keys were deleted. Never retried after an ambiguous attempt."""
    request = kv_pb2.StoreDeleteRangeRequest(key=key)
    return Operation(Call("KV", "DeleteRange", request, Safety.UNSAFE, f"kv delete {key!r}"),
                     lambda r: r.deleted)
