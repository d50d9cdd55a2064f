"""Pure plans of the ReplicaSet, Deployment, node lifecycle and Endpoints controllers."""

from __future__ import annotations

from raftkube.api.v1 import core_pb2
from raftkube.masters.controllers.deployment import (
    HASH_LABEL,
    REVISION,
    plan_deployment,
    template_hash,
)
from raftkube.masters.controllers.endpoints import plan_endpoints
from raftkube.masters.controllers.node_lifecycle import (
    NodeLifecycleConfig,
    plan_node_lifecycle,
)
from raftkube.masters.controllers.replicaset import plan_replica_set
from tests.unit.controller_factories import (
    NOW,
    STAMP,
    deployment,
    node,
    pod,
    replica_set,
)


# -- ReplicaSet ---------------------------------------------------------------------------
def test_replica_set_creates_missing_and_replaces_failed() -> None:
    rs = replica_set("web", 3)
    pods = [pod("a", labels={"app": "web"}, owner="web", ready=True),
            pod("b", labels={"app": "web"}, owner="web", phase="Failed")]
    result = plan_replica_set(rs, pods, NOW)
    assert result.create == 2
    assert [p.metadata.name for p in result.delete] == ["b"]
    assert result.status.replicas == 1 and result.status.ready_replicas == 1


def test_replica_set_deletes_unscheduled_then_unready_then_newest() -> None:
    rs = replica_set("web", 1)
    labels = {"app": "web"}
    pods = [pod("ready-old", labels=labels, owner="web", node_name="n", ready=True,
                ready_since="2027-01-15T07:00:00Z"),
            pod("ready-new", labels=labels, owner="web", node_name="n", ready=True),
            pod("unready", labels=labels, owner="web", node_name="n", phase="Running"),
            pod("unscheduled", labels=labels, owner="web")]
    result = plan_replica_set(rs, pods, NOW)
    assert [p.metadata.name for p in result.delete] == ["unscheduled", "unready", "ready-new"]


def test_replica_set_adopts_orphans_and_releases_mismatches() -> None:
    rs = replica_set("web", 2)
    pods = [pod("orphan", labels={"app": "web"}),
            pod("mine", labels={"app": "web"}, owner="web"),
            pod("moved", labels={"app": "other"}, owner="web"),
            pod("foreign", labels={"app": "web"}, owner="else")]
    result = plan_replica_set(rs, pods, NOW)
    assert [p.metadata.name for p in result.adopt] == ["orphan"]
    assert [p.metadata.name for p in result.release] == ["moved"]
    assert result.create == 0 and not result.delete


def test_replica_set_availability_waits_for_min_ready_seconds() -> None:
    rs = replica_set("web", 1)
    rs.spec.min_ready_seconds = 30
    just_ready = pod("a", labels={"app": "web"}, owner="web", ready=True,
                     ready_since="2027-01-15T07:59:50Z")
    result = plan_replica_set(rs, [just_ready], NOW)
    assert result.status.ready_replicas == 1 and result.status.available_replicas == 0
    assert 19 <= result.recheck_after <= 21


# -- Deployment ---------------------------------------------------------------------------
def owned_rs(d, replicas: int, available: int, revision: str, args=()):
    rs = replica_set(f"{d.metadata.name}-{revision}", replicas, owner=d.metadata.name,
                     revision=revision, labels={"app": d.metadata.name}, template_args=args)
    rs.status.replicas = replicas
    rs.status.ready_replicas = rs.status.available_replicas = available
    return rs


def test_new_deployment_creates_a_hashed_replica_set() -> None:
    d = deployment("web", 3)
    result = plan_deployment(d, [], NOW)
    h = template_hash(d.spec.template)
    assert result.create.metadata.name == f"web-{h}"
    assert result.create.spec.replicas == 3
    assert result.create.spec.selector.match_labels[HASH_LABEL] == h
    assert result.create.metadata.annotations[REVISION] == "1"
    assert result.revision == "1"


def test_rolling_update_respects_surge_and_unavailable() -> None:
    d = deployment("web", 4, surge=1, unavailable=0, args=("v2",))
    old = owned_rs(d, 4, 4, "1", args=("v1",))
    first = plan_deployment(d, [old], NOW)
    assert first.create.spec.replicas == 1          # 4 + maxSurge 1 = 5 pods at most
    assert old.metadata.name not in first.scale      # maxUnavailable 0: keep all old
    new = first.create
    new.metadata.uid = "uid-new"
    new.status.replicas = 1
    new.status.available_replicas = 1                # the new pod became available
    second = plan_deployment(d, [old, new], NOW)
    assert second.scale[old.metadata.name][0] == 3
    assert second.status.updated_replicas == 1


def test_rolling_update_scales_unhealthy_old_first() -> None:
    d = deployment("web", 4, surge=0, unavailable=1, args=("v2",))
    old = owned_rs(d, 4, 2, "1", args=("v1",))
    result = plan_deployment(d, [old], NOW)
    # budget = 4 - 3 - 0 = 1 unhealthy replica; healthy budget 2 - 3 < 0
    assert result.scale[old.metadata.name][0] == 3
    assert result.create.spec.replicas == 0


def test_rollback_reuses_the_old_replica_set_with_a_new_revision() -> None:
    d = deployment("web", 2, args=("v1",))
    v1 = owned_rs(d, 0, 0, "1", args=("v1",))
    v1.spec.template.metadata.labels[HASH_LABEL] = "whatever"
    v2 = owned_rs(d, 2, 2, "2", args=("v2",))
    result = plan_deployment(d, [v1, v2], NOW)
    assert result.create is None
    replicas, revision = result.scale[v1.metadata.name]
    assert revision == 3 and replicas >= 1
    assert result.revision == "3"


def test_history_limit_deletes_oldest_idle_replica_sets() -> None:
    d = deployment("web", 1, args=("v9",))
    d.spec.revision_history_limit = 1
    sets = [owned_rs(d, 0, 0, str(i), args=(f"v{i}",)) for i in range(1, 4)]
    current = owned_rs(d, 1, 1, "9", args=("v9",))
    result = plan_deployment(d, [*sets, current], NOW)
    assert result.delete == [sets[0].metadata.name, sets[1].metadata.name]


def test_paused_deployment_changes_nothing_but_status() -> None:
    d = deployment("web", 5, args=("v2",))
    d.spec.paused = True
    old = owned_rs(d, 3, 3, "1", args=("v1",))
    result = plan_deployment(d, [old], NOW)
    assert result.create is None and not result.scale
    reasons = {c.type: c.reason for c in result.status.conditions}
    assert reasons["Progressing"] == "DeploymentPaused"


def test_progress_deadline_exceeded() -> None:
    d = deployment("web", 2, args=("v2",))
    d.spec.progress_deadline_seconds = 60
    new_rs = owned_rs(d, 2, 0, "1", args=("v2",))
    new_rs.status.replicas = 2
    d.status.replicas = d.status.updated_replicas = 2
    d.status.conditions.add(type="Progressing", status="True", reason="ReplicaSetUpdated",
                            last_update_time="2027-01-15T07:58:00Z")
    result = plan_deployment(d, [new_rs], NOW)
    progressing = next(c for c in result.status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")


def test_complete_deployment_reports_new_replica_set_available() -> None:
    d = deployment("web", 2)
    rs = owned_rs(d, 2, 2, "1")
    result = plan_deployment(d, [rs], NOW)
    conditions = {c.type: (c.status, c.reason) for c in result.status.conditions}
    assert conditions["Progressing"] == ("True", "NewReplicaSetAvailable")
    assert conditions["Available"] == ("True", "MinimumReplicasAvailable")
    assert result.status.available_replicas == 2


# -- node lifecycle -----------------------------------------------------------------------
def test_stale_node_goes_not_ready_then_pods_are_evicted_and_fenced() -> None:
    config = NodeLifecycleConfig(node_monitor_grace_seconds=6, eviction_toleration_seconds=2,
                                 fencing_timeout_seconds=6, fencing_margin_seconds=1)
    nodes = [node("dead"), node("live")]
    plain = pod("web-1", node_name="dead", owner="web", ready=True)
    stateful = pod("db-0", node_name="dead", owner="db", owner_kind="StatefulSet", ready=True)
    tolerant = pod("patient", node_name="dead", ready=True)
    tolerant.spec.tolerations.add(key="node.kubernetes.io/unreachable", operator="Exists",
                                  effect="NoExecute", toleration_seconds=60)
    pods = [plain, stateful, tolerant, pod("ok", node_name="live", ready=True)]
    fresh = plan_node_lifecycle(nodes, pods, {"dead": 5.9, "live": 0.5}, config)
    assert not fresh.not_ready and not fresh.mark_not_ready
    early = plan_node_lifecycle(nodes, pods, {"dead": 6.5, "live": 0.5}, config)
    assert early.not_ready == ("dead",) and early.taint == ("dead",)
    assert not early.evict and not early.force_delete
    # out of their Services at once (Kubernetes' MarkPodsNotReady), the live node's not
    assert sorted(p.metadata.name for p in early.mark_not_ready) == ["db-0", "patient",
                                                                     "web-1"]
    later = plan_node_lifecycle(nodes, pods, {"dead": 8.0, "live": 0.5}, config)
    assert [p.metadata.name for p in later.evict] == ["web-1"]
    assert [p.metadata.name for p in later.force_delete] == ["db-0"]  # 8 >= 6 + 1


def test_statefulset_pod_waits_for_the_fencing_timeout() -> None:
    config = NodeLifecycleConfig(node_monitor_grace_seconds=2, eviction_toleration_seconds=0,
                                 fencing_timeout_seconds=10, fencing_margin_seconds=1)
    stateful = pod("db-0", node_name="dead", owner="db", owner_kind="StatefulSet", ready=True)
    before = plan_node_lifecycle([node("dead")], [stateful], {"dead": 10.5}, config)
    assert not before.force_delete and not before.evict
    after = plan_node_lifecycle([node("dead")], [stateful], {"dead": 11.0}, config)
    assert [p.metadata.name for p in after.force_delete] == ["db-0"]


def test_terminating_pods_of_gone_nodes_are_force_deleted() -> None:
    config = NodeLifecycleConfig()
    stuck = pod("stuck", node_name="vanished", ready=True)
    stuck.metadata.deletion_timestamp = STAMP
    plan = plan_node_lifecycle([], [stuck], {"vanished": config.force_after}, config)
    assert [p.metadata.name for p in plan.force_delete] == ["stuck"]


def test_renewed_node_is_untainted() -> None:
    tainted = node("back", taints=[("node.kubernetes.io/unreachable", "", "NoExecute")])
    plan = plan_node_lifecycle([tainted], [], {"back": 0.2}, NodeLifecycleConfig())
    assert plan.untaint == ("back",)


# -- Endpoints ----------------------------------------------------------------------------
def test_endpoints_split_ready_and_not_ready_and_resolve_named_ports() -> None:
    svc = core_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = "web", "default"
    svc.spec.selector["app"] = "web"
    port = svc.spec.ports.add(name="http", port=80, protocol="TCP")
    port.target_port.str_val = "web"
    ready = pod("a", labels={"app": "web"}, node_name="n1", ready=True)
    unready = pod("b", labels={"app": "web"}, node_name="n2", phase="Running")
    other = pod("c", labels={"app": "db"}, node_name="n1", ready=True)
    for i, p in enumerate((ready, unready, other)):
        p.status.pod_ip = f"10.0.0.{i + 1}"
        p.spec.containers[0].ports.add(name="web", container_port=8080)
    ep = plan_endpoints(svc, [ready, unready, other])
    assert len(ep.subsets) == 1
    subset = ep.subsets[0]
    assert [(a.ip, a.node_name, a.target_ref.name) for a in subset.addresses] == [
        ("10.0.0.1", "n1", "a")]
    assert [a.ip for a in subset.not_ready_addresses] == ["10.0.0.2"]
    assert [(p.name, p.port) for p in subset.ports] == [("http", 8080)]
    svc.ClearField("spec")
    assert plan_endpoints(svc, [ready]) is None
