"""Pure plans of the StatefulSet and volume controllers."""

from __future__ import annotations

from raftkube.api.v1 import apps_pb2, storage_pb2
from raftkube.masters.controllers.statefulset import (
    REVISION_LABEL,
    plan_stateful_set,
    pod_for,
    update_revision,
)
from raftkube.masters.controllers.volumes import VolumeConfig, plan_volumes
from tests.unit.controller_factories import NOW, pod


def stateful_set(replicas: int, parallel: bool = False, partition: int | None = None,
                 args=("v1",)) -> apps_pb2.StatefulSet:
    sts = apps_pb2.StatefulSet(api_version="apps/v1", kind="StatefulSet")
    sts.metadata.name, sts.metadata.namespace, sts.metadata.uid = "db", "default", "uid-db"
    sts.spec.replicas = replicas
    sts.spec.service_name = "db-headless"
    sts.spec.selector.match_labels["app"] = "db"
    sts.spec.template.metadata.labels["app"] = "db"
    sts.spec.template.spec.containers.add(name="c", image="img", args=list(args))
    claim = sts.spec.volume_claim_templates.add()
    claim.metadata.name = "data"
    claim.spec.access_modes.append("ReadWriteOnce")
    claim.spec.resources.requests["storage"] = "1Gi"
    if parallel:
        sts.spec.pod_management_policy = "Parallel"
    sts.spec.update_strategy.type = "RollingUpdate"
    if partition is not None:
        sts.spec.update_strategy.rolling_update.partition = partition
    return sts


def member(sts, ordinal: int, ready: bool = True, revision: str | None = None):
    p = pod_for(sts, ordinal)
    p.metadata.uid = f"uid-{p.metadata.name}"
    p.spec.node_name = "n"
    if revision is not None:
        p.metadata.labels[REVISION_LABEL] = revision
    if ready:
        p.status.phase = "Running"
        p.status.conditions.add(type="Ready", status="True",
                                last_transition_time="2027-01-15T07:00:00Z")
    else:
        p.status.phase = "Pending"
    return p


def test_first_pod_with_identity_and_claim() -> None:
    sts = stateful_set(3)
    plan = plan_stateful_set(sts, [], [], NOW)
    assert [p.metadata.name for p in plan.create] == ["db-0"]
    assert [c.metadata.name for c in plan.create_claims] == ["data-db-0"]
    first = plan.create[0]
    assert first.spec.hostname == "db-0" and first.spec.subdomain == "db-headless"
    assert first.spec.volumes[0].persistent_volume_claim.claim_name == "data-db-0"


def test_ordered_ready_waits_for_the_previous_pod() -> None:
    sts = stateful_set(3)
    waiting = plan_stateful_set(sts, [member(sts, 0, ready=False)], ["data-db-0"], NOW)
    assert not waiting.create and not waiting.delete
    going = plan_stateful_set(sts, [member(sts, 0)], ["data-db-0"], NOW)
    assert [p.metadata.name for p in going.create] == ["db-1"]


def test_parallel_creates_all() -> None:
    sts = stateful_set(3, parallel=True)
    plan = plan_stateful_set(sts, [], [], NOW)
    assert [p.metadata.name for p in plan.create] == ["db-0", "db-1", "db-2"]


def test_scale_down_removes_highest_first_and_keeps_claims() -> None:
    sts = stateful_set(1)
    pods = [member(sts, i) for i in range(3)]
    plan = plan_stateful_set(sts, pods, ["data-db-0", "data-db-1", "data-db-2"], NOW)
    assert [p.metadata.name for p in plan.delete] == ["db-2"]
    assert not plan.create_claims


def test_scale_up_reuses_the_existing_claim() -> None:
    sts = stateful_set(2)
    plan = plan_stateful_set(sts, [member(sts, 0)], ["data-db-0", "data-db-1"], NOW)
    assert [p.metadata.name for p in plan.create] == ["db-1"] and not plan.create_claims


def test_rolling_update_goes_in_reverse_and_honours_partition() -> None:
    old = stateful_set(3)
    old_revision = update_revision(old)
    new = stateful_set(3, partition=1, args=("v2",))
    pods = [member(new, i, revision=old_revision) for i in range(3)]
    plan = plan_stateful_set(new, pods, [], NOW)
    assert [p.metadata.name for p in plan.delete] == ["db-2"]
    pods[2] = member(new, 2)  # recreated at the new revision
    plan = plan_stateful_set(new, pods, [], NOW)
    assert [p.metadata.name for p in plan.delete] == ["db-1"]
    pods[1] = member(new, 1)
    plan = plan_stateful_set(new, pods, [], NOW)
    assert not plan.delete, "ordinal 0 is below the partition"
    assert plan.status.updated_replicas == 2 and plan.status.ready_replicas == 3


def test_failed_pod_is_replaced() -> None:
    sts = stateful_set(1)
    failed = member(sts, 0)
    failed.status.phase = "Failed"
    plan = plan_stateful_set(sts, [failed], ["data-db-0"], NOW)
    assert [p.metadata.name for p in plan.delete] == ["db-0"]


# -- volumes ------------------------------------------------------------------------------
def claim(name: str, size: str = "1Gi", cls: str | None = None):
    c = storage_pb2.PersistentVolumeClaim()
    c.metadata.name, c.metadata.namespace, c.metadata.uid = name, "default", f"uid-{name}"
    c.spec.access_modes.append("ReadWriteOnce")
    c.spec.resources.requests["storage"] = size
    if cls is not None:
        c.spec.storage_class_name = cls
    return c


def volume(name: str, size: str, cls: str = "", modes=("ReadWriteOnce",)):
    v = storage_pb2.PersistentVolume()
    v.metadata.name = name
    v.spec.capacity["storage"] = size
    v.spec.access_modes.extend(modes)
    v.spec.storage_class_name = cls
    v.spec.host_path.path = f"/srv/{name}"
    return v


def test_claim_binds_the_smallest_fitting_volume() -> None:
    volumes = [volume("big", "10Gi"), volume("small", "2Gi"), volume("tiny", "500Mi"),
               volume("other-class", "2Gi", cls="fast"),
               volume("rox", "2Gi", modes=("ReadOnlyMany",))]
    plan = plan_volumes([claim("data")], volumes, [], VolumeConfig())
    assert plan.bind == [("small", ("default", "data"))]
    assert not plan.provision


def test_claim_of_a_scheduled_pod_gets_a_local_volume_on_its_node() -> None:
    c = claim("data", size="3Gi")
    consumer = pod("app", node_name="n7")
    consumer.spec.volumes.add(name="d").persistent_volume_claim.claim_name = "data"
    waiting = plan_volumes([c], [], [pod("unbound-user")], VolumeConfig())
    assert not waiting.provision and not waiting.bind
    plan = plan_volumes([c], [], [consumer], VolumeConfig(base_path="/vols"))
    pv = plan.provision[0]
    assert pv.metadata.name == "pvc-uid-data"
    assert pv.spec.local.path == "/vols/default-data"
    assert pv.spec.capacity["storage"] == "3Gi"
    assert pv.spec.claim_ref.name == "data"
    expr = pv.spec.node_affinity.required.node_selector_terms[0].match_expressions[0]
    assert (expr.key, expr.operator, list(expr.values)) == (
        "kubernetes.io/hostname", "In", ["n7"])
    assert plan.bind == [("pvc-uid-data", ("default", "data"))]


def test_volume_of_a_deleted_claim_is_released() -> None:
    v = volume("pv", "1Gi")
    v.spec.claim_ref.name, v.spec.claim_ref.namespace, v.spec.claim_ref.uid = "gone", "default", "x"
    v.status.phase = "Bound"
    assert plan_volumes([], [v], [], VolumeConfig()).release == ["pv"]
