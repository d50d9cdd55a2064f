"""`AsyncClient`: the asyncio flavour of the SDK (grpc.aio).

It runs the very same operations as `Client` — request building, the retry/failover
driver, reconciliation of interrupted writes, decoding and watch resume state all come from
core.py, admin_ops.py and watch_state.py; only the transport differs.

    async with AsyncClient.from_config() as client:
        pod = await client.pods.get("web-0")
        async for event in client.pods.watch():
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from raftkube import apierrors
from raftkube.client import admin_ops, core
from raftkube.client.client import namespaced, patch_text, resolve_kind
from raftkube.client.config import CHANNEL_OPTIONS, ClientOptions
from raftkube.client.endpoints import Endpoints
from raftkube.client.informer import Handlers, InformerCache
from raftkube.client.retry import Failure, backoff, classify
from raftkube.client.transport import STUBS
from raftkube.client.watch import WatchSpec, event_from_pb, unimplemented
from raftkube.client.watch_state import BOOKMARK, WatchEvent, WatchTracker
from raftkube.logging_config import get_logger
from raftkube.objects import registry
from raftkube.security.client_config import ClientConfig, load_client_config

log = get_logger(__name__)


class AsyncTransport:
    """grpc.aio channels to every master; created lazily inside the running loop."""

    def __init__(self, credentials: grpc.ChannelCredentials, endpoints: Endpoints,
                 options: ClientOptions) -> None:
        self._credentials = credentials
        self.endpoints = endpoints
        self.retry = options.retry
        self.rng = random.Random(options.seed)
        self._channels: dict[str, grpc.aio.Channel] = {}

    def stub(self, address: str, service: str) -> Any:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.secure_channel(address, self._credentials,
                                              options=CHANNEL_OPTIONS)
            self._channels[address] = channel
        return STUBS[service](channel)

    async def run(self, op: core.Operation) -> Any:
        gen = core.drive(op, self.endpoints, self.retry, self.rng)
        return await self._perform(gen)

    async def _perform(self, gen: Generator[Any, Any, Any]) -> Any:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = gen.throw(error) if error is not None else gen.send(value)
            except StopIteration as done:
                return done.value
            value, error = None, None
            if isinstance(effect, core.Sleep):
                await asyncio.sleep(effect.seconds)
                continue
            call = effect.call
            method = getattr(self.stub(effect.address, call.service), call.method)
            try:
                value = await method(call.request, timeout=self.retry.call_timeout)
            except grpc.RpcError as e:
                error = e

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


class AsyncWatch:
    """The asyncio twin of `Watch`: `async for event in watch`, `watch.stop()`."""

    def __init__(self, transport: AsyncTransport, spec: WatchSpec, options: ClientOptions,
                 on_synced: Callable[[], None] | None = None,
                 tracker: WatchTracker | None = None) -> None:
        self._transport = transport
        self._spec = spec
        self._options = options
        self._on_synced = on_synced
        self._stopped = False
        self._call: Any = None
        self.tracker = tracker or WatchTracker(int(spec.resource_version or 0))
        self._batched = True  # WatchBatched until a master answers UNIMPLEMENTED

    @property
    def resource_version(self) -> str:
        return self.tracker.resume_version

    def stop(self) -> None:
        self._stopped = True
        if self._call is not None:
            self._call.cancel()

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._run()

    async def _relist(self) -> list[WatchEvent]:
        spec, items, token, revision = self._spec, [], "", ""
        while True:
            page = await self._transport.run(core.list_op(
                spec.info, spec.namespace, spec.label_selector, spec.field_selector,
                self._options.list_page_size, token, linearizable=True))
            items.extend(page.items)
            revision = revision or page.resource_version
            token = page.continue_token
            if not token:
                return self.tracker.relist(items, int(revision))

    async def _run(self) -> AsyncIterator[WatchEvent]:
        if not self._spec.resource_version:
            for event in await self._relist():
                yield event
        if self._on_synced is not None:
            self._on_synced()
        failures, failing_since = 0, None
        loop = asyncio.get_running_loop()
        while not self._stopped:
            address = self._transport.endpoints.current()
            stub = self._transport.stub(address, "Resources")
            batched = self._batched
            request = self._spec.request(self.tracker.resume_version)
            call = stub.WatchBatched(request) if batched else stub.Watch(request)
            self._call = call
            ended: BaseException | None = None
            try:
                while True:
                    pb = await asyncio.wait_for(call.read(), self._options.watch_idle_timeout)
                    if pb is grpc.aio.EOF:
                        break
                    failures, failing_since = 0, None
                    for event_pb in (pb.events if batched else (pb,)):
                        event = event_from_pb(event_pb)
                        if self.tracker.accept(event) or (
                                event.type == BOOKMARK and self._spec.bookmarks):
                            yield event
            except TimeoutError:
                call.cancel()
            except grpc.RpcError as e:
                ended = e
            finally:
                self._call = None
            if self._stopped:
                return
            if batched and isinstance(ended, grpc.RpcError) and unimplemented(ended):
                self._batched = False  # a master older than WatchBatched: plain Watch
                continue
            if isinstance(ended, grpc.RpcError):
                error = apierrors.from_rpc_error(ended)
                if isinstance(error, apierrors.Compacted):
                    for event in await self._relist():
                        yield event
                    continue
                if classify(ended) is Failure.ANSWERED:
                    raise error
            failures += 1
            failing_since = failing_since or loop.time()
            if loop.time() - failing_since > self._options.watch_give_up:
                raise apierrors.Unavailable(
                    f"watch {self._spec.info.plural}: no master reachable for "
                    f"{self._options.watch_give_up:.0f}s")
            self._transport.endpoints.failed(address)
            await asyncio.sleep(backoff(failures + 1, self._transport.retry,
                                        self._transport.rng))


class AsyncResourceClient:
    """Async operations on one kind (same arguments and errors as ResourceClient)."""

    def __init__(self, client: AsyncClient, info: registry.KindInfo) -> None:
        self._client = client
        self.info = info

    def _ns(self, namespace: str | None) -> str:
        return core.namespace_of(self.info, namespace, self._client.options.namespace)

    async def get(self, name: str, namespace: str | None = None, *,
                  linearizable: bool | None = None) -> Message:
        if linearizable is None:
            linearizable = self._client.options.linearizable_reads
        return await self._client._run(core.get_op(self.info, self._ns(namespace), name,
                                                   linearizable))

    async def list(self, namespace: str | None = None, *, label_selector: str = "",
                   field_selector: str = "", all_namespaces: bool = False) -> list[Message]:
        ns = "" if all_namespaces else self._ns(namespace)
        items: list[Message] = []
        token = ""
        while True:
            page = await self._client._run(core.list_op(
                self.info, ns, label_selector, field_selector,
                self._client.options.list_page_size, token,
                self._client.options.linearizable_reads))
            items.extend(page.items)
            token = page.continue_token
            if not token:
                return items

    async def create(self, obj: Message, *, dry_run: bool = False) -> Message:
        return await self._client.create(obj, dry_run=dry_run)

    async def update(self, obj: Message, *, dry_run: bool = False) -> Message:
        return await self._client.update(obj, dry_run=dry_run)

    async def update_status(self, obj: Message, *, dry_run: bool = False) -> Message:
        return await self._client._run(core.update_op(
            namespaced(obj, self._client.options.namespace), dry_run, status=True))

    async def apply(self, obj: Message, *, dry_run: bool = False) -> tuple[Message, str]:
        return await self._client.apply(obj, dry_run=dry_run)

    async def patch(self, name: str, patch: str | dict[str, Any],
                    namespace: str | None = None, *, status: bool = False,
                    dry_run: bool = False) -> Message:
        return await self._client._run(core.patch_op(self.info, self._ns(namespace), name,
                                                     patch_text(patch), status, dry_run))

    async def delete(self, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, propagation_policy: str = "",
                     precondition_uid: str = "", precondition_resource_version: str = "",
                     dry_run: bool = False) -> core.DeleteResult:
        return await self._client._run(core.delete_op(
            self.info, self._ns(namespace), name, grace_period_seconds=grace_period_seconds,
            propagation_policy=propagation_policy,
            precondition_resource_version=precondition_resource_version,
            precondition_uid=precondition_uid, dry_run=dry_run))

    def watch(self, namespace: str | None = None, *, label_selector: str = "",
              field_selector: str = "", resource_version: str = "",
              all_namespaces: bool = False, bookmarks: bool = False) -> AsyncWatch:
        ns = "" if all_namespaces else self._ns(namespace)
        return AsyncWatch(self._client._transport,
                          WatchSpec(self.info, ns, label_selector, field_selector,
                                    resource_version, bookmarks), self._client.options)

    def informer(self, namespace: str | None = None, *, label_selector: str = "",
                 field_selector: str = "", all_namespaces: bool = False) -> AsyncInformer:
        """An AsyncInformer (not started) over the matching objects."""
        ns = "" if all_namespaces else self._ns(namespace)
        spec = WatchSpec(self.info, ns, label_selector, field_selector)
        return AsyncInformer(lambda on_synced, tracker: AsyncWatch(
            self._client._transport, spec, self._client.options, on_synced, tracker))


class AsyncInformer:
    """The asyncio twin of `Informer`: a task keeps an InformerCache current and calls the
    handlers (plain functions or coroutine functions) in revision order.

        informer = client.pods.informer()
        informer.add_handlers(on_add=print)
        informer.start()                     # inside a running loop
        await informer.wait_for_sync()
        ...
        await informer.stop()
    """

    def __init__(self, watch_factory: Callable[[Callable[[], None], WatchTracker], AsyncWatch],
                 ) -> None:
        self._watch_factory = watch_factory
        self._cache = InformerCache()
        self._handlers: list[Handlers] = []
        self._synced = asyncio.Event()
        self._tracker = WatchTracker()
        self._watch: AsyncWatch | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.error: BaseException | None = None

    def add_handlers(self, on_add: Callable[..., Any] | None = None,
                     on_update: Callable[..., Any] | None = None,
                     on_delete: Callable[..., Any] | None = None) -> AsyncInformer:
        self._handlers.append(Handlers(on_add, on_update, on_delete))
        return self

    def start(self) -> AsyncInformer:
        """Start the watch task in the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def stop(self) -> None:
        self._stopped = True
        if self._watch is not None:
            self._watch.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def get(self, name: str, namespace: str = "") -> Message | None:
        return self._cache.get(name, namespace)

    def list(self) -> list[Message]:
        return self._cache.list()

    async def _run(self) -> None:
        while not self._stopped:
            try:
                self._watch = self._watch_factory(self._synced.set, self._tracker)
                async for event in self._watch:
                    await self._dispatch(event)
                return
            except apierrors.Unavailable as e:
                log.warning("async informer: watch failed, restarting", error=str(e))
                await asyncio.sleep(1.0)
            except apierrors.ApiError as e:
                self.error = e
                log.error("async informer stopped", error=str(e))
                return

    async def _dispatch(self, event: WatchEvent) -> None:
        change = self._cache.apply(event)
        if change is None:
            return
        what, args = change
        for handlers in list(self._handlers):
            handler = getattr(handlers, f"on_{what}")
            if handler is None:
                continue
            try:
                result = handler(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("async informer handler failed", handler=what)


class AsyncAdminClient:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def cluster_status(self) -> Any:
        return await self._client._run(admin_ops.cluster_status_op())

    async def add_master(self, name: str, api_address: str, raft_address: str) -> list[str]:
        return await self._client._run(admin_ops.add_master_op(name, api_address,
                                                               raft_address))

    async def remove_master(self, name: str) -> list[str]:
        return await self._client._run(admin_ops.remove_master_op(name))

    async def create_join_token(self, ttl_seconds: int = 24 * 3600,
                                description: str = "") -> admin_ops.JoinToken:
        return await self._client._run(admin_ops.join_token_op(ttl_seconds, description))


class AsyncKVClient:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, key: bytes, *, serializable: bool = False) -> admin_ops.KVEntry | None:
        return await self._client._run(admin_ops.kv_get_op(key, serializable))

    async def put(self, key: bytes, value: bytes) -> int:
        return await self._client._run(admin_ops.kv_put_op(key, value))

    async def cas(self, key: bytes, expected_mod_revision: int,
                  value: bytes) -> tuple[bool, int]:
        return await self._client._run(admin_ops.kv_cas_op(key, expected_mod_revision, value))

    async def delete(self, key: bytes) -> int:
        return await self._client._run(admin_ops.kv_delete_op(key))


class AsyncClient:
    """The asyncio client; same constructor arguments and semantics as Client."""

    def __init__(self, masters: Sequence[str], credentials: grpc.ChannelCredentials, *,
                 options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        start = (random.Random(self.options.seed).randrange(len(masters))
                 if masters and self.options.random_start else 0)
        self._transport = AsyncTransport(credentials, Endpoints(masters, start), self.options)
        self.admin = AsyncAdminClient(self)
        self.kv = AsyncKVClient(self)

    @classmethod
    def from_config(cls, path: str | Path | None = None, *,
                    options: ClientOptions | None = None) -> AsyncClient:
        config = load_client_config(Path(path) if path is not None else None)
        return cls.from_client_config(config, options=options)

    @classmethod
    def from_client_config(cls, config: ClientConfig, *,
                           options: ClientOptions | None = None) -> AsyncClient:
        return cls(config.masters, config.credentials(), options=options)

    def resource(self, kind: str | registry.KindInfo | type[Message]) -> AsyncResourceClient:
        return AsyncResourceClient(self, resolve_kind(kind))

    def __getattr__(self, name: str) -> AsyncResourceClient:
        for info in registry.all_kinds():
            if info.plural == name:
                return AsyncResourceClient(self, info)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    async def create(self, obj: Message, *, dry_run: bool = False) -> Message:
        return await self._run(core.create_op(self._namespaced(obj), dry_run,
                                              self.options.create_clock_skew))

    async def update(self, obj: Message, *, dry_run: bool = False) -> Message:
        return await self._run(core.update_op(self._namespaced(obj), dry_run))

    async def apply(self, obj: Message, *, dry_run: bool = False) -> tuple[Message, str]:
        return await self._run(core.apply_op(self._namespaced(obj), dry_run))

    def _namespaced(self, obj: Message) -> Message:
        return namespaced(obj, self.options.namespace)

    async def _run(self, op: core.Operation) -> Any:
        return await self._transport.run(op)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
