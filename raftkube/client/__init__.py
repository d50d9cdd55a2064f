"""The raftkube Python SDK: typed CRUD, watch, informers and administration over gRPC,
with failover across masters. Start with `Client.from_config()` (README.md has a tour)."""

from raftkube.apierrors import (
    AlreadyExists,
    ApiError,
    Compacted,
    Conflict,
    Forbidden,
    Internal,
    Invalid,
    NotFound,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnknownOutcome,
)
from raftkube.client.admin_ops import JoinToken, KVEntry
from raftkube.client.aio import AsyncClient, AsyncInformer, AsyncWatch
from raftkube.client.client import (
    AdminClient,
    Client,
    KVClient,
    ResourceClient,
    SnapshotInfo,
)
from raftkube.client.config import ClientOptions
from raftkube.client.core import DeleteResult, ListResult
from raftkube.client.informer import Informer
from raftkube.client.retry import RetryConfig
from raftkube.client.watch import Watch
from raftkube.client.watch_state import WatchEvent

__all__ = [
    "AdminClient", "AlreadyExists", "ApiError", "AsyncClient", "AsyncInformer", "AsyncWatch",
    "Client", "ClientOptions", "Compacted",
    "Conflict", "DeleteResult", "Forbidden", "Informer", "Internal", "Invalid", "JoinToken",
    "KVClient", "KVEntry", "ListResult", "NotFound", "ResourceClient", "RetryConfig",
    "SnapshotInfo", "TooLarge", "Unauthenticated", "Unavailable", "UnknownOutcome", "Watch",
    "WatchEvent",
]
