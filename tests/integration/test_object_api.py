"""The object API's semantics against a real (one-member) store."""

from __future__ import annotations

import contextlib
import threading

import pytest

from raftkube import apierrors
from raftkube.api.v1 import apps_pb2, core_pb2, pod_pb2
from raftkube.masters.gatekeeper import Gatekeeper
from raftkube.masters.object_api import ObjectApi
from raftkube.masters.object_store import ObjectStore
from raftkube.security.grpc_auth import acting_as
from raftkube.security.principal import MASTERS_GROUP, Principal
from raftkube.security.rbac import Authorizer, Policy, bind
from raftkube.testing.single_store import single_member_store

ADMIN = Principal("admin", (MASTERS_GROUP,))
VIEWER = Principal("vera", ("viewers",))


@pytest.fixture(scope="module")
def api():
    with single_member_store() as store:
        policy = Policy().with_bindings(bind("viewers-view", "view", groups=["viewers"]))
        gate = Gatekeeper(Authorizer(policy_source=lambda: policy))
        yield ObjectApi(ObjectStore(store), gate)


def config_map(name: str, **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.data.update(data)
    return cm


def deployment(name: str, replicas: int = 2) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = name
    d.metadata.labels["app"] = name
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name="web", image="localhost/busybox:latest")
    return d


def test_create_get_update_conflict_delete(api: ObjectApi) -> None:
    with acting_as(ADMIN):
        created = api.create(config_map("settings", url="http://db"))
        assert created.metadata.uid and created.metadata.creation_timestamp
        assert created.metadata.namespace == "default"
        assert created.metadata.generation == 1
        rv = created.metadata.resource_version
        got = api.get("cm", "default", "settings")
        assert got.data["url"] == "http://db" and got.metadata.resource_version == rv

        with pytest.raises(apierrors.AlreadyExists, match='configmaps "settings" already exists'):
            api.create(config_map("settings"))

        got.data["url"] = "http://db2"
        updated = api.update(got)
        assert int(updated.metadata.resource_version) > int(rv)
        assert updated.metadata.generation == 2

        stale = config_map("settings", url="stale")
        stale.metadata.resource_version = rv
        with pytest.raises(apierrors.Conflict) as conflict:
            api.update(stale)
        assert conflict.value.details == {"given": rv,
                                          "current": updated.metadata.resource_version}

        obj, gone = api.delete("ConfigMap", "default", "settings")
        assert gone and obj.data["url"] == "http://db2"
        with pytest.raises(apierrors.NotFound, match='configmaps "settings" not found'):
            api.get("configmap", "default", "settings")


def test_create_many_is_all_or_none(api: ObjectApi) -> None:
    names = ("many-taken", "many-a", "many-b", "many-twice")
    with acting_as(ADMIN):
        api.create(config_map("many-taken"))
        try:
            with pytest.raises(apierrors.AlreadyExists,
                               match='configmaps "many-twice" in namespace "default" is '
                                     'given twice in one create'):
                api.create_many([config_map("many-a"), config_map("many-twice"),
                                 config_map("many-twice")])
            with pytest.raises(apierrors.AlreadyExists, match='"many-taken" already exists'):
                api.create_many([config_map("many-a"), config_map("many-taken")])
            for refused in ("many-a", "many-twice"):
                with pytest.raises(apierrors.NotFound):
                    api.get("cm", "default", refused)
            created = api.create_many([config_map("many-a"), config_map("many-b")])
            assert [c.metadata.name for c in created] == ["many-a", "many-b"]
            assert created[0].metadata.resource_version == created[1].metadata.resource_version
            assert api.get("cm", "default", "many-b").metadata.uid == created[1].metadata.uid
        finally:  # the store is shared by this module's tests, which list ConfigMaps
            for name in names:
                with contextlib.suppress(apierrors.NotFound):
                    api.delete("cm", "default", name)


def test_invalid_objects_are_rejected_with_field_paths(api: ObjectApi) -> None:
    d = deployment("bad")
    d.spec.template.spec.containers[0].ports.add(container_port=70000)
    with acting_as(ADMIN), pytest.raises(apierrors.Invalid) as raised:
        api.create(d)
    paths = [e.path for e in raised.value.field_errors]
    assert "spec.template.spec.containers[0].ports[0].containerPort" in paths
    with acting_as(ADMIN), pytest.raises(apierrors.NotFound):
        api.get("deploy", "default", "bad")


def test_generation_moves_only_on_spec_change_and_status_is_separate(api: ObjectApi) -> None:
    with acting_as(ADMIN):
        d = api.create(deployment("gen"))
        d.metadata.labels["team"] = "a"
        d = api.update(d)
        assert d.metadata.generation == 1
        d.spec.replicas = 3
        d.status.replicas = 99  # ignored by a spec update
        d = api.update(d)
        assert d.metadata.generation == 2 and d.status.replicas == 0
        d.status.ready_replicas = 3
        d.spec.replicas = 7  # ignored by a status update
        s = api.update_status(d)
        assert s.status.ready_replicas == 3 and s.spec.replicas == 3
        assert s.metadata.generation == 2
        api.delete("deploy", "default", "gen")


def test_list_selectors_and_paging(api: ObjectApi) -> None:
    with acting_as(ADMIN):
        for i in range(7):
            cm = config_map(f"page-{i}")
            cm.metadata.labels["tier"] = "db" if i % 2 else "web"
            api.create(cm)
        items, _, token = api.list("cm", "default", label_selector="tier=web")
        assert sorted(i.metadata.name for i in items) == ["page-0", "page-2", "page-4", "page-6"]
        assert token == ""
        seen: list[str] = []
        token = ""
        while True:
            items, _, token = api.list("cm", "default", label_selector="tier!=web", limit=2,
                                       continue_token=token)
            seen += [i.metadata.name for i in items]
            if not token:
                break
        assert seen == ["page-1", "page-3", "page-5"]
        items, _, _ = api.list("cm", "default", field_selector="metadata.name=page-3")
        assert [i.metadata.name for i in items] == ["page-3"]
        with pytest.raises(apierrors.Invalid, match="fieldSelector"):
            api.list("cm", "default", field_selector="spec.nothing=1")
        for i in range(7):
            api.delete("cm", "default", f"page-{i}")


def test_rbac_viewer_can_read_but_not_write_or_read_secrets(api: ObjectApi) -> None:
    with acting_as(ADMIN):
        api.create(config_map("visible"))
    with acting_as(VIEWER):
        assert api.get("cm", "default", "visible").metadata.name == "visible"
        with pytest.raises(apierrors.Forbidden, match='user "vera" cannot delete configmaps'):
            api.delete("cm", "default", "visible")
        with pytest.raises(apierrors.Forbidden, match="secrets"):
            api.list("secrets", "default")
    with acting_as(ADMIN):
        api.delete("cm", "default", "visible")


def test_apply_is_idempotent(api: ObjectApi) -> None:
    with acting_as(ADMIN):
        obj, action = api.apply(deployment("applied"))
        assert action == "created"
        obj, action = api.apply(deployment("applied"))
        assert action == "unchanged"
        obj, action = api.apply(deployment("applied", replicas=5))
        assert action == "configured" and obj.spec.replicas == 5
        assert obj.metadata.generation == 2
        api.delete("deploy", "default", "applied")


def test_merge_patch(api: ObjectApi) -> None:
    with acting_as(ADMIN):
        api.create(deployment("patched"))
        out = api.patch("deployments", "default", "patched",
                        '{"spec": {"replicas": 4}, "metadata": {"labels": {"x": "y"}}}')
        assert out.spec.replicas == 4 and out.metadata.labels["x"] == "y"
        with pytest.raises(apierrors.Invalid, match="replicas"):
            api.patch("deployments", "default", "patched", '{"spec": {"replicas": "many"}}')
        api.delete("deploy", "default", "patched")


def test_finalizers_and_graceful_pod_deletion(api: ObjectApi) -> None:
    with acting_as(ADMIN):
        cm = config_map("guarded")
        cm.metadata.finalizers.append("example.com/hold")
        api.create(cm)
        obj, gone = api.delete("cm", "default", "guarded")
        assert not gone and obj.metadata.deletion_timestamp
        obj.metadata.ClearField("finalizers")
        api.update(obj)
        with pytest.raises(apierrors.NotFound):
            api.get("cm", "default", "guarded")

        pod = pod_pb2.Pod(api_version="v1", kind="Pod")
        pod.metadata.name = "p1"
        pod.spec.containers.add(name="c", image="localhost/busybox:latest")
        pod = api.create(pod)
        api.bind_pods([("default", "p1", pod.metadata.resource_version, "w1")])
        bound = api.get("pod", "default", "p1")
        assert bound.spec.node_name == "w1"
        obj, gone = api.delete("pod", "default", "p1")
        assert not gone and obj.metadata.deletion_grace_period_seconds == 30
        obj, gone = api.delete("pod", "default", "p1", grace_period_seconds=0)
        assert gone


def test_watch_delivers_changes_in_order_and_resumes(api: ObjectApi) -> None:
    with acting_as(ADMIN):
        first = api.create(config_map("w-a"))
        start_rv = first.metadata.resource_version
        stop = threading.Event()
        events: list[tuple[str, str]] = []
        done = threading.Event()

        def consume() -> None:
            with acting_as(ADMIN):
                for item in api.watch("cm", "default", "", "", start_rv, stop):
                    events.append((item.type, item.obj.metadata.name))
                    if len(events) == 3:
                        done.set()
                        return

        thread = threading.Thread(target=consume)
        thread.start()
        b = api.create(config_map("w-b"))
        b.data["k"] = "v"
        api.update(b)
        api.delete("cm", "default", "w-b")
        assert done.wait(10)
        stop.set()
        thread.join(5)
        assert events == [("ADDED", "w-b"), ("MODIFIED", "w-b"), ("DELETED", "w-b")]
        api.delete("cm", "default", "w-a")


def test_idle_watch_sends_bookmarks_with_the_current_revision(api: ObjectApi) -> None:
    from raftkube.masters.object_api import ApiConfig

    fast = ObjectApi(api.objects, Gatekeeper(Authorizer()), ApiConfig(bookmark_interval=0.2))
    with acting_as(ADMIN):
        latest = fast.create(config_map("bookmark-probe"))
        stop = threading.Event()
        items = []
        for item in fast.watch("cm", "default", "", "", latest.metadata.resource_version,
                               stop, allow_bookmarks=True):
            items.append(item)
            if item.type == "BOOKMARK":
                stop.set()
        assert items[-1].type == "BOOKMARK"
        assert items[-1].resource_version >= int(latest.metadata.resource_version)
        fast.delete("cm", "default", "bookmark-probe")


class LaggingReplica:
    """A real store whose local (non-linearizable) reads under `prefix` answer from a
    frozen earlier view, like a follower that has not applied the latest entries yet."""

    def __init__(self, store, prefix: bytes) -> None:
        self._store = store
        self._prefix = prefix
        self._frozen: dict[tuple, object] = {}
        self.frozen = False

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def range(self, key: bytes, range_end: bytes | None = None, limit: int = 0,
              linearizable: bool = False):
        if linearizable or not key.startswith(self._prefix):
            return self._store.range(key, range_end, limit=limit, linearizable=linearizable)
        args = (key, range_end, limit)
        if not self.frozen or args not in self._frozen:
            self._frozen[args] = self._store.range(key, range_end, limit=limit)
        return self._frozen[args]


def test_a_release_acknowledged_elsewhere_frees_the_value_on_a_lagging_replica(
        api: ObjectApi) -> None:
    from raftkube.masters import service_allocator

    lagging = LaggingReplica(api.objects._store, service_allocator.ALLOCATIONS_PREFIX)
    behind = ObjectApi(ObjectStore(lagging), Gatekeeper(Authorizer()))
    service = core_pb2.Service(api_version="v1", kind="Service")
    service.metadata.name = "lag-a"
    service.spec.selector["app"] = "lag"
    service.spec.cluster_ip = "10.96.9.9"
    service.spec.ports.add(port=80)
    with acting_as(ADMIN):
        api.create(service)
        other = core_pb2.Service()
        other.CopyFrom(service)
        other.metadata.name = "lag-b"
        with pytest.raises(apierrors.Invalid, match="already allocated"):
            behind.create(other)  # its replica saw the claim: refused
        lagging.frozen = True
        api.delete("Service", "default", "lag-a")
        key = service_allocator.IP_PREFIX + b"10.96.9.9"
        assert key in behind.objects.claimed(service_allocator.ALLOCATIONS_PREFIX)
        assert key not in behind.objects.claimed(service_allocator.ALLOCATIONS_PREFIX,
                                                 linearizable=True)
        created = behind.create(other)
        assert created.spec.cluster_ip == "10.96.9.9"
        api.delete("Service", "default", "lag-b")
