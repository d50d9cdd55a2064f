"""gRPC glue for the Resources service: requests in, ObjectApi calls, responses out.

Every handler converts `apierrors.ApiError` into its gRPC status (with trailing metadata
the SDK turns back into the same exception). Anything else is a bug: logged with its
traceback and returned as INTERNAL without details.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from raftkube import apierrors
from raftkube.api.v1 import objects_pb2, resources_pb2, resources_pb2_grpc
from raftkube.logging_config import get_logger
from raftkube.masters.object_api import ObjectApi
from raftkube.objects import registry

log = get_logger(__name__)
WATCH_BATCH_EVENTS = 1000  # events per WatchEventBatch at most
WATCH_BATCH_BYTES = 1024 * 1024  # a batch stops growing before this size (one event may exceed it)
F = TypeVar("F", bound=Callable[..., Any])


def api_errors(handler: F) -> F:
    """Turn ApiError into the RPC's status; log and hide unexpected errors."""

    @functools.wraps(handler)
    def wrapped(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return handler(self, request, context)
        except apierrors.ApiError as e:
            e.abort(context)
        except Exception:
            log.exception("internal error", method=handler.__name__)
            apierrors.Internal(f"internal error in {handler.__name__}; see the master's log"
                               ).abort(context)

    return wrapped  # type: ignore[return-value]


def _unwrap(typed: objects_pb2.TypedObject) -> Any:
    try:
        return registry.unwrap(typed)
    except ValueError:
        raise apierrors.Invalid("object: the request carries no object") from None


class ResourcesServicer(resources_pb2_grpc.ResourcesServicer):
    """Serves the Resources gRPC service from an ObjectApi."""

    def __init__(self, api: ObjectApi) -> None:
        self._api = api

    @api_errors
    def Create(self, request, context):
        return registry.wrap(self._api.create(_unwrap(request.object), request.dry_run))

    @api_errors
    def Get(self, request, context):
        return registry.wrap(self._api.get(request.kind, request.namespace, request.name,
                                           request.linearizable))

    @api_errors
    def List(self, request, context):
        items, revision, token = self._api.list(
            request.kind, request.namespace, request.label_selector, request.field_selector,
            request.limit, request.continue_token, request.linearizable)
        out = objects_pb2.TypedObjectList()
        out.metadata.resource_version = str(revision)
        out.metadata.continue_token = token
        out.items.extend(registry.wrap(item) for item in items)
        return out

    @api_errors
    def Update(self, request, context):
        return registry.wrap(self._api.update(_unwrap(request.object), request.dry_run))

    @api_errors
    def UpdateStatus(self, request, context):
        return registry.wrap(self._api.update_status(_unwrap(request.object), request.dry_run))

    @api_errors
    def Patch(self, request, context):
        return registry.wrap(self._api.patch(request.kind, request.namespace, request.name,
                                             request.merge_patch_json, request.status,
                                             request.dry_run))

    @api_errors
    def Apply(self, request, context):
        obj, action = self._api.apply(_unwrap(request.object), request.dry_run)
        return resources_pb2.ApplyResponse(object=registry.wrap(obj), action=action)

    @api_errors
    def Delete(self, request, context):
        obj, deleted = self._api.delete(
            request.kind, request.namespace, request.name,
            grace_period_seconds=(request.grace_period_seconds
                                  if request.HasField("grace_period_seconds") else None),
            propagation_policy=request.propagation_policy,
            precondition_resource_version=request.precondition_resource_version,
            precondition_uid=request.precondition_uid, dry_run=request.dry_run)
        return resources_pb2.DeleteResponse(object=registry.wrap(obj), deleted=deleted)

    def Watch(self, request, context) -> Iterator[resources_pb2.WatchEvent]:
        for batch in self._watch_batches(request, context):
            yield from batch.events

    def WatchBatched(self, request, context) -> Iterator[resources_pb2.WatchEventBatch]:
        yield from self._watch_batches(request, context)

    def _watch_batches(self, request, context) -> Iterator[resources_pb2.WatchEventBatch]:
        """The watch's items as WatchEventBatch messages of at most `WATCH_BATCH_EVENTS`
        events and about `WATCH_BATCH_BYTES` (one larger event goes alone)."""
        stop = threading.Event()
        context.add_callback(stop.set)
        try:
            for items in self._api.watch_batches(request.kind, request.namespace,
                                                 request.label_selector,
                                                 request.field_selector,
                                                 request.resource_version, stop,
                                                 request.allow_bookmarks):
                batch = resources_pb2.WatchEventBatch()
                size = 0
                for item in items:
                    event = resources_pb2.WatchEvent(type=item.type,
                                                     resource_version=str(item.resource_version))
                    if item.obj is not None:
                        getattr(event.object, registry.for_message(item.obj).typed_field
                                ).CopyFrom(item.obj)
                    event_size = event.ByteSize()
                    if batch.events and (len(batch.events) >= WATCH_BATCH_EVENTS
                                         or size + event_size > WATCH_BATCH_BYTES):
                        yield batch
                        batch = resources_pb2.WatchEventBatch()
                        size = 0
                    batch.events.append(event)
                    size += event_size
                yield batch
        except apierrors.ApiError as e:
            e.abort(context)
        except Exception:
            log.exception("internal error", method="Watch")
            apierrors.Internal("internal error in Watch; see the master's log").abort(context)
        finally:
            stop.set()

    @api_errors
    def BindPods(self, request, context):
        revision = self._api.bind_pods([
            (b.namespace or "default", b.pod_name, b.resource_version, b.node_name)
            for b in request.bindings
        ])
        return resources_pb2.BindPodsResponse(resource_version=str(revision))
