"""The scheduler's pure decision: filters, reasons, scores, batch accounting."""

from __future__ import annotations

from raftkube.api.v1 import pod_pb2, storage_pb2
from raftkube.masters.controllers.scheduling import (
    SchedulerConfig,
    build_node_states,
    pod_needs,
    schedule,
)
from tests.unit.controller_factories import node, pod

CONFIG = SchedulerConfig()


def plan(pods, nodes, bound=(), claims=None, volumes=None, config=CONFIG):
    states = build_node_states(nodes, [(p.spec.node_name, pod_needs(p, {}, {})) for p in bound])
    needs = [pod_needs(p, claims or {}, volumes or {}) for p in pods]
    return schedule(needs, states, config)


def test_binds_when_resources_fit_and_counts_the_batch() -> None:
    nodes = [node("a", cpu="1"), node("b", cpu="1")]
    pods = [pod(f"p{i}", cpu="600m") for i in range(3)]
    result = plan(pods, nodes)
    assert sorted(n for _, _, n in result.bindings) == ["a", "b"]
    assert result.failures == {("default", "p2"): "0/2 nodes are available: 2 Insufficient cpu."}


def test_counts_pods_already_bound() -> None:
    nodes = [node("a", memory="1Gi")]
    bound = [pod("old", memory="800Mi", node_name="a", phase="Running")]
    result = plan([pod("new", memory="300Mi")], nodes, bound)
    assert result.failures[("default", "new")] == \
        "0/1 nodes are available: 1 Insufficient memory."


def test_failure_message_lists_every_filter_by_count() -> None:
    nodes = [node("a", memory="1Gi"), node("b", memory="1Gi"), node("c", unschedulable=True),
             node("d", ready=False)]
    result = plan([pod("p", memory="2Gi")], nodes)
    assert result.failures[("default", "p")] == (
        "0/4 nodes are available: 2 Insufficient memory, 1 node(s) were not ready, "
        "1 node(s) were unschedulable.")


def test_pod_count_limit() -> None:
    result = plan([pod("p1"), pod("p2")], [node("a", pods="1")])
    assert len(result.bindings) == 1
    assert "1 Too many pods" in result.failures[("default", "p2")]


def test_node_selector_and_required_affinity() -> None:
    nodes = [node("ssd", labels={"disk": "ssd", "zone": "z1"}), node("hdd", labels={"disk": "hdd"})]
    p = pod("p")
    p.spec.node_selector["disk"] = "ssd"
    assert plan([p], nodes).bindings == (("default", "p", "ssd"),)
    q = pod("q")
    term = q.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
        .node_selector_terms.add()
    term.match_expressions.add(key="zone", operator="NotIn", values=["z1"])
    assert plan([q], nodes).bindings == (("default", "q", "hdd"),)
    r = pod("r")
    term = r.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
        .node_selector_terms.add()
    term.match_expressions.add(key="gpu", operator="Exists")
    assert plan([r], nodes).failures[("default", "r")] == (
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")


def test_pods_with_different_selectors_in_one_batch_are_filtered_each_by_its_own() -> None:
    """The batch shares fixed filter answers between pods with the same selector,
    affinity, tolerations and volume terms only; capacity is checked per pod."""
    nodes = [node("ssd", labels={"disk": "ssd"}, pods="1"), node("hdd", labels={"disk": "hdd"}),
             node("t", labels={"disk": "ssd"}, taints=[("dedicated", "db", "NoSchedule")])]
    on_ssd, tolerating, also_on_ssd, plain = pod("a"), pod("b"), pod("c"), pod("d")
    for p in (on_ssd, tolerating, also_on_ssd):
        p.spec.node_selector["disk"] = "ssd"
    tolerating.spec.tolerations.add(key="dedicated", operator="Exists")
    result = plan([on_ssd, tolerating, also_on_ssd, plain], nodes)
    assert result.bindings == (("default", "a", "ssd"), ("default", "b", "t"),
                               ("default", "d", "hdd"))
    assert result.failures == {("default", "c"): (
        "0/3 nodes are available: 1 Too many pods, 1 node(s) didn't match Pod's node "
        "affinity/selector, 1 node(s) had untolerated taint {dedicated: db}.")}


def test_preferred_affinity_wins_the_score() -> None:
    nodes = [node(f"n{i}", labels={"zone": f"z{i}"}) for i in range(5)]
    p = pod("p")
    pref = p.spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution.add(
        weight=50)
    pref.preference.match_expressions.add(key="zone", operator="In", values=["z3"])
    assert plan([p], nodes).bindings == (("default", "p", "n3"),)


def test_taints_need_tolerations() -> None:
    nodes = [node("t", taints=[("dedicated", "db", "NoSchedule")])]
    result = plan([pod("p")], nodes)
    assert result.failures[("default", "p")] == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: db}.")
    q = pod("q")
    q.spec.tolerations.add(key="dedicated", operator="Equal", value="db", effect="NoSchedule")
    assert plan([q], nodes).bindings == (("default", "q", "t"),)
    r = pod("r")
    r.spec.tolerations.add(operator="Exists")
    assert plan([r], nodes).bindings == (("default", "r", "t"),)


def test_host_ports_must_be_free() -> None:
    def with_port(name):
        p = pod(name)
        p.spec.containers[0].ports.add(container_port=80, host_port=8080, protocol="TCP")
        return p

    result = plan([with_port("a"), with_port("b")], [node("n")])
    assert len(result.bindings) == 1
    assert "free ports" in result.failures[("default", "b")]


def test_volume_topology_follows_the_local_volume() -> None:
    nodes = [node("n1", labels={"kubernetes.io/hostname": "n1"}),
             node("n2", labels={"kubernetes.io/hostname": "n2"})]
    claim = storage_pb2.PersistentVolumeClaim()
    claim.metadata.name, claim.metadata.namespace = "data", "default"
    claim.spec.volume_name = "pv-1"
    pv = storage_pb2.PersistentVolume()
    pv.metadata.name = "pv-1"
    term = pv.spec.node_affinity.required.node_selector_terms.add()
    term.match_expressions.add(key="kubernetes.io/hostname", operator="In", values=["n2"])
    p = pod("p")
    p.spec.volumes.add(name="d", persistent_volume_claim=pod_pb2.PersistentVolumeClaimVolumeSource(
        claim_name="data"))
    result = plan([p], nodes, claims={("default", "data"): claim}, volumes={"pv-1": pv})
    assert result.bindings == (("default", "p", "n2"),)
    missing = pod("m")
    missing.spec.volumes.add(name="d", persistent_volume_claim=pod_pb2
                             .PersistentVolumeClaimVolumeSource(claim_name="nope"))
    result = plan([missing], nodes, claims={("default", "data"): claim}, volumes={"pv-1": pv})
    assert result.failures[("default", "m")] == \
        '0/2 nodes are available: persistentvolumeclaim "nope" not found.'


def test_replicas_of_one_owner_spread() -> None:
    nodes = [node(f"n{i}") for i in range(3)]
    pods = [pod(f"p{i}", owner="rs") for i in range(6)]
    result = plan(pods, nodes)
    per_node = {}
    for _, _, n in result.bindings:
        per_node[n] = per_node.get(n, 0) + 1
    assert per_node == {"n0": 2, "n1": 2, "n2": 2}


def test_least_and_most_allocated() -> None:
    nodes = [node("busy", cpu="4"), node("idle", cpu="4")]
    bound = [pod("x", cpu="3", node_name="busy", phase="Running")]
    least = plan([pod("p", cpu="500m")], nodes, bound)
    assert least.bindings == (("default", "p", "idle"),)
    most = plan([pod("p", cpu="500m")], nodes, bound,
                config=SchedulerConfig(scoring="MostAllocated", spread_weight=0))
    assert most.bindings == (("default", "p", "busy"),)


def test_image_locality_breaks_ties() -> None:
    nodes = [node("a"), node("b", images=("special",))]
    assert plan([pod("p", image="special")], nodes).bindings == (("default", "p", "b"),)


def test_config_rejects_unknown_fields() -> None:
    import pytest
    with pytest.raises(ValueError, match=r"controllers\.scheduler\.bogus"):
        SchedulerConfig.from_options({"bogus": 1})
    with pytest.raises(ValueError, match="scoring"):
        SchedulerConfig.from_options({"scoring": "Random"})


def test_node_state_memo_reuses_unchanged_nodes_and_never_leaks_placements() -> None:
    memo: dict = {}
    a, b = node("a", cpu="2"), node("b", cpu="2")
    a.metadata.resource_version, b.metadata.resource_version = "5", "6"
    first = build_node_states([a, b], [("a", pod_needs(pod("x", cpu="1"), {}, {}))], memo)
    assert first["a"].used_cpu == 1000 and first["a"].pods == 1
    second = build_node_states([a, b], [], memo)
    assert second["a"].used_cpu == 0 and second["a"].pods == 0 and not second["a"].owners
    assert second["a"] is not first["a"]
    grown = node("a", cpu="4")
    grown.metadata.resource_version = "9"  # the node changed: read again
    third = build_node_states([grown], [], memo)
    assert third["a"].cpu == 4000
    assert set(memo) == {"a"}  # b is gone from the cluster and from the memo
    assert plan([pod("p", cpu="3")], [grown]).bindings == (("default", "p", "a"),)
