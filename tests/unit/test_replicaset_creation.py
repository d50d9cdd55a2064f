"""The ReplicaSet controller's create waves: names and expectations (fake API and cache:
the code around the store, which the integration tests exercise for real)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from raftkube import apierrors
from raftkube.api.v1 import pod_pb2
from raftkube.masters.controllers import replicaset
from raftkube.masters.controllers.manager import ControllerContext
from raftkube.masters.controllers.replicaset import ReplicaSetController
from tests.unit.controller_factories import pod, replica_set


class Cache:
    def __init__(self, pods: list[pod_pb2.Pod]) -> None:
        self.pods = {(p.metadata.namespace, p.metadata.name): p for p in pods}

    def get(self, kind: str, namespace: str, name: str) -> pod_pb2.Pod | None:
        assert kind == "Pod"
        return self.pods.get((namespace, name))


class Api:
    def __init__(self, fail_with: BaseException | None = None) -> None:
        self.created: list[list[str]] = []
        self.fail_with = fail_with

    def create_many(self, pods: list[pod_pb2.Pod]) -> list[pod_pb2.Pod]:
        if self.fail_with is not None:
            raise self.fail_with
        self.created.append([p.metadata.name for p in pods])
        return pods


def controller(api: Api, taken: list[str]) -> ReplicaSetController:
    cache = Cache([pod(name) for name in taken])
    return ReplicaSetController(ControllerContext(api=api, cache=cache, term=1))  # type: ignore[arg-type]


@pytest.fixture
def scripted_suffixes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    script: list[str] = []
    monkeypatch.setattr(replicaset, "random_suffix", lambda: script.pop(0))
    yield script


def test_a_wave_never_repeats_a_name_nor_takes_one_in_use(scripted_suffixes) -> None:
    scripted_suffixes.extend(["aaaaa", "aaaaa", "taken", "bbbbb"])
    api = Api()
    rs = replica_set("web", 2)
    controller(api, taken=["web-taken"])._create_wave(("default", "web"), rs, 2)
    assert api.created == [["web-aaaaa", "web-bbbbb"]]
    assert scripted_suffixes == []


def test_a_wave_failing_any_way_is_not_waited_for(scripted_suffixes) -> None:
    """Expected names are forgotten whatever the failure, so the next sync does not wait
    for pods that will never appear."""
    key = ("default", "web")
    rs = replica_set("web", 2)
    for failure in (RuntimeError("store bug"), apierrors.Unavailable("no leader")):
        scripted_suffixes.extend(["ccccc", "ddddd"])
        ctl = controller(Api(fail_with=failure), taken=[])
        with pytest.raises(type(failure)):
            ctl._create_wave(key, rs, 2)
        assert ctl.expectations.satisfied(key, present=set(), gone_or_terminating=set())


def test_only_pod_changes_a_plan_reads_wake_the_replica_set() -> None:
    cache = Cache([pod("web-a", owner="web", labels={"app": "web"})])
    rs_controller = ReplicaSetController(ControllerContext(api=Api(), cache=cache, term=1))  # type: ignore[arg-type]

    def change(**fields) -> list:
        cache.pods[("default", "web-a")] = pod("web-a", owner="web", **fields)
        return list(rs_controller.keys_for("Pod", "default", "web-a"))

    assert list(rs_controller.keys_for("Pod", "default", "web-a")) == [("default", "web")]
    assert change(labels={"app": "web"}, node_name="n1") == []  # bound: nothing to plan
    assert change(labels={"app": "web"}, node_name="n1", phase="Running") == [
        ("default", "web")]
    assert change(labels={"app": "web"}, node_name="n1", ready=True) == [("default", "web")]
    assert change(labels={"app": "web"}, node_name="n1", ready=True,
                  ready_since="2026-01-01T00:00:09Z") == [("default", "web")]
    assert change(labels={"app": "web", "tier": "x"}, node_name="n1", ready=True,
                  ready_since="2026-01-01T00:00:09Z") == [("default", "web")]
    assert change(labels={"app": "web", "tier": "x"}, node_name="n2", ready=True,
                  ready_since="2026-01-01T00:00:09Z") == []
