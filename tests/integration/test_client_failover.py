"""The SDK against real master processes that die: failover without duplicate or lost
writes, watches that resume without gaps or duplicates, relist after compaction."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.client import AsyncClient, Client, ClientOptions, RetryConfig
from raftkube.testing.master_cluster import MasterCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with MasterCluster(3) as c:
        yield c


def client_for(cluster: MasterCluster, **options) -> Client:
    options.setdefault("linearizable_reads", True)
    opts = ClientOptions(retry=RetryConfig(call_timeout=8.0, deadline=60.0),
                         watch_idle_timeout=12.0, **options)
    return Client.from_config(cluster.layout.admin_config, options=opts)


def config_map(name: str, label: str, **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.labels["test"] = label
    cm.data.update(data)
    return cm


def index_of(cluster: MasterCluster, address: str) -> int:
    return next(m.index for m in cluster.members if m.api_address == address)


def test_creates_survive_master_kills_without_duplicates_or_losses(cluster) -> None:
    total = 60
    acknowledged: dict[str, str] = {}
    unknown: list[str] = []
    with client_for(cluster) as client:
        victims: list[int] = []

        def chaos() -> None:
            time.sleep(1.5)
            victim = index_of(cluster, client.current_master)  # the master in use
            victims.append(victim)
            try:
                cluster.kill(victim)
                time.sleep(2.0)
            finally:
                cluster.restart(victim)
            leader = cluster.leader_index()  # then the leader, mid-traffic
            victims.append(leader)
            try:
                cluster.kill(leader)
                time.sleep(1.0)
            finally:
                cluster.restart(leader)

        killer = threading.Thread(target=chaos)
        killer.start()
        for i in range(total):
            name = f"fo-{i:03d}"
            try:
                created = client.create(config_map(name, "failover", i=str(i)))
            except apierrors.UnknownOutcome:
                unknown.append(name)
                continue
            acknowledged[name] = created.metadata.uid
            time.sleep(0.1)
        killer.join(120)
        assert len(victims) == 2
        stored = {o.metadata.name: o for o in
                  client.configmaps.list(label_selector="test=failover", linearizable=True)}
    # Every acknowledged create is there, as the very object the call returned.
    for name, uid in acknowledged.items():
        assert name in stored and stored[name].metadata.uid == uid
        assert stored[name].data["i"] == str(int(name[3:]))
    # Nothing was created that the client did not ask for, and nothing twice.
    assert set(stored) <= {f"fo-{i:03d}" for i in range(total)}
    assert len(acknowledged) + len(unknown) == total
    assert len(acknowledged) >= total - 2, f"too many unknown outcomes: {unknown}"


def test_watch_resumes_across_a_master_kill_without_gaps_or_duplicates(cluster) -> None:
    writes: list[tuple[str, str]] = []  # (name, resourceVersion) acknowledged
    seen: list[tuple[str, str, str]] = []
    victim: int | None = None
    with client_for(cluster) as watcher, client_for(cluster) as writer:
        start_rv = watcher.configmaps.list_with_version()[1]
        watch = watcher.configmaps.watch(label_selector="test=resume",
                                         resource_version=start_rv)
        done = threading.Event()

        def consume() -> None:
            for event in watch:
                seen.append((event.type, event.object.metadata.name, event.resource_version))
                if done.is_set() and {rv for _, rv in writes} <= {rv for *_, rv in seen}:
                    return

        reader = threading.Thread(target=consume)
        reader.start()
        time.sleep(0.5)
        try:
            for i in range(40):
                # create is retried safely across the kill (even of the leader)
                obj = writer.create(config_map(f"rs-{i:02d}", "resume", n=str(i)))
                writes.append((obj.metadata.name, obj.metadata.resource_version))
                if i == 15:
                    victim = index_of(cluster, watcher.current_master)  # the watch's master
                    cluster.kill(victim)
                time.sleep(0.05)
            done.set()
            reader.join(90)
        finally:
            watch.stop()
            if victim is not None:
                cluster.restart(victim)
    assert victim is not None
    revisions = [int(rv) for *_, rv in seen]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions), seen
    assert [(name, rv) for _, name, rv in seen] == writes


def test_watch_and_reads_move_away_from_a_hung_master(cluster) -> None:
    leader = cluster.leader_index()
    hung = next(i for i in range(3) if i != leader)
    address = cluster.members[hung].api_address
    fast = RetryConfig(call_timeout=3.0, deadline=60.0)
    with (Client.from_config(cluster.layout.admin_config, options=ClientOptions(
            retry=fast, watch_idle_timeout=4.0)) as watcher,
          client_for(cluster) as writer):
        writer.prefer_master(cluster.members[leader].api_address)
        watcher.prefer_master(address)
        watch = watcher.configmaps.watch(label_selector="test=hung")
        seen: list[str] = []
        all_seen = threading.Event()

        def consume() -> None:
            for event in watch:
                seen.append(event.object.metadata.name)
                if len(seen) == 5:
                    all_seen.set()
                    return

        reader = threading.Thread(target=consume)
        reader.start()
        time.sleep(1.0)
        cluster.pause(hung)  # alive but silent: the socket stays open
        try:
            for i in range(5):
                writer.create(config_map(f"hung-{i}", "hung"))
            assert all_seen.wait(60), seen
            watcher.prefer_master(address)
            started = time.monotonic()
            assert watcher.configmaps.get("hung-0").metadata.name == "hung-0"
            assert watcher.current_master != address
            assert time.monotonic() - started < 30
        finally:
            cluster.resume(hung)
            watch.stop()
            reader.join(30)
    assert seen == [f"hung-{i}" for i in range(5)]


def test_informer_lists_then_follows_changes(cluster) -> None:
    with client_for(cluster) as client:
        for i in range(3):
            client.create(config_map(f"inf-{i}", "informer"))
        events: list[tuple[str, str]] = []
        changed = threading.Event()
        informer = client.configmaps.informer(label_selector="test=informer")
        informer.add_handlers(
            on_add=lambda o: events.append(("add", o.metadata.name)),
            on_update=lambda old, new: events.append(("update", new.metadata.name)),
            on_delete=lambda o: (events.append(("delete", o.metadata.name)), changed.set()))
        with informer:
            assert informer.wait_for_sync(30) and informer.has_synced()
            assert [k[1] for k in informer.object_keys()] == ["inf-0", "inf-1", "inf-2"]
            cm = client.configmaps.get("inf-1")
            cm.data["x"] = "y"
            client.update(cm)
            client.configmaps.delete("inf-2")
            assert changed.wait(30)
            assert informer.get("inf-1", "default").data["x"] == "y"
            assert informer.get("inf-2", "default") is None
        assert events == [("add", "inf-0"), ("add", "inf-1"), ("add", "inf-2"),
                          ("update", "inf-1"), ("delete", "inf-2")]


def test_guarded_writes_and_typed_errors(cluster) -> None:
    with client_for(cluster) as client:
        created = client.create(config_map("guard", "errors", a="1"))
        stale = core_pb2.ConfigMap()
        stale.CopyFrom(created)
        created.data["a"] = "2"
        client.update(created)
        stale.data["a"] = "3"
        with pytest.raises(apierrors.Conflict):
            client.update(stale)
        with pytest.raises(apierrors.AlreadyExists):
            client.create(config_map("guard", "errors"))
        bad = config_map("Bad_Name", "errors")
        with pytest.raises(apierrors.Invalid) as info:
            client.create(bad)
        assert any(e.path == "metadata.name" for e in info.value.field_errors)
        with pytest.raises(apierrors.NotFound):
            client.configmaps.get("missing")
        result = client.configmaps.delete("guard", precondition_uid=created.metadata.uid)
        assert result.deleted


def test_admin_and_kv(cluster, tmp_path) -> None:
    with client_for(cluster) as client:
        status = client.admin.cluster_status()
        assert sorted(m.name for m in status.masters) == ["m1", "m2", "m3"]
        info = client.admin.save_snapshot(tmp_path / "s.db")
        assert info.size == (tmp_path / "s.db").stat().st_size and info.revision > 0
        assert client.kv.get(b"/chaos/reg") is None
        ok, rev = client.kv.cas(b"/chaos/reg", 0, b"1")
        assert ok
        entry = client.kv.get(b"/chaos/reg")
        assert entry.value == b"1" and entry.mod_revision == rev
        assert client.kv.cas(b"/chaos/reg", 0, b"2")[0] is False
        assert client.kv.cas(b"/chaos/reg", rev, b"2")[0] is True
        client.kv.put(b"/chaos/reg", b"3")
        assert client.kv.get(b"/chaos/reg").value == b"3"
        assert client.kv.delete(b"/chaos/reg") == 1


def test_async_client_crud_watch_and_admin(cluster) -> None:
    async def scenario() -> list[str]:
        async with AsyncClient.from_config(cluster.layout.admin_config) as client:
            created = await client.create(config_map("async-1", "async"))
            got = await client.configmaps.get("async-1")
            assert got.metadata.uid == created.metadata.uid
            watch = client.configmaps.watch(label_selector="test=async")
            seen: list[str] = []

            async def consume() -> None:
                async for event in watch:
                    seen.append(f"{event.type}:{event.object.metadata.name}")
                    if len(seen) == 3:
                        watch.stop()
                        return

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.5)
            _, action = await client.apply(config_map("async-1", "async", k="v"))
            assert action == "configured"
            await client.configmaps.delete("async-1")
            await asyncio.wait_for(task, 30)
            informer = client.configmaps.informer(label_selector="test=async")
            added: list[str] = []

            async def on_add(obj) -> None:
                added.append(obj.metadata.name)

            informer.add_handlers(on_add=on_add).start()
            assert await informer.wait_for_sync(30)
            await client.create(config_map("async-2", "async"))
            for _ in range(100):
                if informer.get("async-2", "default") is not None:
                    break
                await asyncio.sleep(0.1)
            await informer.stop()
            assert added == ["async-2"] and informer.has_synced()
            await client.configmaps.delete("async-2")
            status = await client.admin.cluster_status()
            assert len(status.masters) == 3
            ok, _ = await client.kv.cas(b"/async/x", 0, b"1")
            assert ok
            assert len(await client.configmaps.list(label_selector="test=async")) == 0
            return seen

    assert asyncio.run(scenario()) == ["ADDED:async-1", "MODIFIED:async-1", "DELETED:async-1"]


def test_watch_relists_after_compaction() -> None:
    with (MasterCluster(3, store_overrides={"history_max_revisions": 20}) as small,
          client_for(small) as client, client_for(small) as writer):
        for name in ("keep", "change", "drop"):
            writer.create(config_map(name, "compact"))
        watch = client.configmaps.watch(label_selector="test=compact")
        initial = [next(watch) for _ in range(3)]
        assert sorted(e.object.metadata.name for e in initial) == ["change", "drop", "keep"]
        victim = index_of(small, client.current_master)
        # Far more revisions than the history keeps, while the watch is not reading.
        for i in range(40):
            writer.kv.put(b"/filler", str(i).encode())
        writer.configmaps.patch("change", {"data": {"v": "new"}})
        writer.configmaps.delete("drop")
        writer.create(config_map("new", "compact"))
        for i in range(40):
            writer.kv.put(b"/filler", str(i).encode())
        # The watch stream opens lazily, on the next read: on another master (this one
        # is dead), from a revision the history no longer holds.
        small.kill(victim)
        events = [next(watch) for _ in range(3)]
        watch.stop()
        assert sorted((e.type, e.object.metadata.name) for e in events) == [
            ("ADDED", "new"), ("DELETED", "drop"), ("MODIFIED", "change")]
        by_type = {e.type: int(e.resource_version) for e in events}
        # A relist reports a deletion at the list's revision, after the later writes;
        # a watch event would carry the revision of the delete itself.
        assert by_type["DELETED"] > by_type["ADDED"]


def test_client_namespace_option_applies_to_objects_without_one(cluster) -> None:
    with client_for(cluster) as admin:
        ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
        ns.metadata.name = "team"
        admin.create(ns)
    with client_for(cluster, namespace="team") as team:
        created = team.create(config_map("mine", "ns"))
        assert created.metadata.namespace == "team"
        assert team.configmaps.get("mine").metadata.uid == created.metadata.uid
        assert [o.metadata.name for o in team.configmaps.list()] == ["mine"]
        with pytest.raises(apierrors.NotFound):
            team.configmaps.get("mine", "default")


def test_slow_consumer_is_not_mistaken_for_a_dead_master(cluster) -> None:
    options = ClientOptions(watch_idle_timeout=2.0, linearizable_reads=True)
    client = Client.from_config(cluster.layout.admin_config, options=options)
    with client, client.configmaps.watch(label_selector="test=slow") as watch:
        # Nothing matches yet: the first event comes from the open stream.
        creator = threading.Timer(1.0, lambda: client.create(config_map("slow-0", "slow")))
        creator.start()
        first = next(watch)
        creator.join()
        master = client.current_master
        time.sleep(4.0)  # the consumer holds the event longer than the idle timeout
        client.create(config_map("slow-1", "slow"))
        second = next(watch)
        assert (first.object.metadata.name, second.object.metadata.name) == (
            "slow-0", "slow-1")
        assert client.current_master == master  # no failover was triggered
