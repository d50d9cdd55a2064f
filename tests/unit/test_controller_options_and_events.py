"""Controller options checked at config load; the event recorder aggregates repeats."""

from __future__ import annotations

import threading

import pytest

from raftkube import apierrors
from raftkube.api.v1 import pod_pb2
from raftkube.masters.config import MasterConfigError, parse_master_config
from raftkube.masters.controllers.events import EventRecorder


def doc(controllers):
    return {"name": "m1", "clusterFile": "/c.yaml", "dataDir": "/d",
            "controllers": controllers}


def test_good_options_load() -> None:
    config = parse_master_config(doc({"scheduler": {"scoring": "MostAllocated"},
                                      "nodeLifecycle": {"node_monitor_grace_seconds": 10}}),
                                 "m.yaml")
    assert config.controllers["scheduler"]["scoring"] == "MostAllocated"


@pytest.mark.parametrize(("controllers", "message"), [
    ({"schedular": {}}, "controllers.schedular: unknown section"),
    ({"scheduler": {"scoring": "Random"}}, "controllers.scheduler.scoring"),
    ({"nodeLifecycle": {"grace": 3}}, "controllers.nodeLifecycle.grace: unknown field"),
    ({"volumes": []}, "controllers.volumes: expected a mapping"),
])
def test_bad_options_name_the_field(controllers, message) -> None:
    with pytest.raises(MasterConfigError, match=r"m\.yaml") as info:
        parse_master_config(doc(controllers), "m.yaml")
    assert message in str(info.value)


class FakeApi:
    """Stores Events by name (the recorder's only dependency)."""

    def __init__(self) -> None:
        self.events: dict[str, object] = {}

    def create_many(self, objs):
        if any(o.metadata.name in self.events for o in objs):
            raise apierrors.AlreadyExists("exists")
        for o in objs:
            self.create(o)
        return objs

    def create(self, obj):
        if obj.metadata.name in self.events:
            raise apierrors.AlreadyExists("exists")
        self.events[obj.metadata.name] = obj
        return obj

    def get(self, kind, namespace, name):
        return self.events[name]

    def update(self, obj):
        self.events[obj.metadata.name] = obj
        return obj


def run_until(recorder: EventRecorder, done) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=recorder.run, args=(stop,))
    thread.start()
    for _ in range(500):
        if done():
            break
        threading.Event().wait(0.01)
    stop.set()
    thread.join(5)


def test_repeats_raise_the_count_of_one_event() -> None:
    api = FakeApi()
    recorder = EventRecorder(api)
    pod = pod_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "web-1", "default", "u1"
    for _ in range(3):
        recorder.record(pod, "Warning", "FailedScheduling", "0/1 nodes are available")
    recorder.record(pod, "Normal", "Scheduled", "assigned")
    run_until(recorder, lambda: len(api.events) == 2)
    assert len(api.events) == 2
    failed = next(e for e in api.events.values() if e.reason == "FailedScheduling")
    assert failed.count == 3 and failed.involved_object.name == "web-1"
    recorder.record(pod, "Warning", "FailedScheduling", "0/1 nodes are available")

    def counted():
        return any(e.reason == "FailedScheduling" and e.count == 4
                   for e in api.events.values())

    run_until(recorder, counted)
    assert len(api.events) == 2 and failed.count == 3, "the stored copy was not mutated"
    again = next(e for e in api.events.values() if e.reason == "FailedScheduling")
    assert again.count == 4


def test_similar_events_of_one_object_are_combined_after_ten() -> None:
    from raftkube.api.v1 import apps_pb2
    from raftkube.masters.controllers.events import COMBINED

    api = FakeApi()
    now = [0.0]
    recorder = EventRecorder(api, clock=lambda: now[0])
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name, rs.metadata.namespace, rs.metadata.uid = "web", "default", "u-rs"
    for i in range(25):
        recorder.record(rs, "Normal", "SuccessfulCreate", f"Created pod: web-{i}")
    run_until(recorder, lambda: len(api.events) == 11)
    messages = sorted(e.message for e in api.events.values()
                      if not e.message.startswith(COMBINED))
    assert messages == sorted(f"Created pod: web-{i}" for i in range(10))
    combined = [e for e in api.events.values() if e.message.startswith(COMBINED)]
    assert len(combined) == 1 and combined[0].count == 15
    assert combined[0].message == COMBINED + "Created pod: web-24"
    # Later similar events raise the combined one's count (an update, not a new Event).
    recorder.record(rs, "Normal", "SuccessfulCreate", "Created pod: web-99")
    run_until(recorder, lambda: any(e.count == 16 for e in api.events.values()))
    assert len(api.events) == 11
    assert any(e.count == 16 and e.message.endswith("web-99") for e in api.events.values())
    # A repeat of an early message still counts on its own Event; a new window starts over.
    now[0] = 601.0
    recorder.record(rs, "Normal", "SuccessfulCreate", "Created pod: web-100")
    run_until(recorder, lambda: len(api.events) == 12)
    assert len(api.events) == 12
