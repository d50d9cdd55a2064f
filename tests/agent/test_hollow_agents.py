"""Hollow nodes running the real agent on fake runtimes against real masters."""

from __future__ import annotations

import time

import pytest

from raftkube.api.v1 import pod_pb2
from raftkube.testing.agent_harness import AgentHarness, condition, container, container_state
from raftkube.testing.hollow_agents import HollowFleet, HollowFleetConfig

pytestmark = [pytest.mark.timeout(300)]


def test_hollow_fleet_registers_renews_and_runs_pods() -> None:
    harness = AgentHarness.start(workers=(), podman=False)
    fleet = HollowFleet(HollowFleetConfig(count=20, client_config=harness.cluster.layout
                                          .admin_config, lease_interval_seconds=1.0,
                                          relist_interval_seconds=0.5))
    try:
        fleet.start()
        nodes = {n.metadata.name: n for n in harness.admin.nodes.list()}
        assert set(fleet.names) <= set(nodes)
        assert all(condition(nodes[n], "Ready") == "True" for n in fleet.names)
        leases = harness.admin.resource("Lease")
        first = leases.get("hollow-7", "raftkube-node-lease").spec.renew_time
        ns = harness.namespace()
        pods = []
        for i in range(10):
            pod = harness.pod(f"p{i}", ns, node=f"hollow-{i}")
            pods.append(harness.create(pod))
        crasher = harness.pod("crasher", ns, node="hollow-3", containers=[container(
            "c", ["sleep", "1"], env=[pod_pb2.EnvVar(name="RAFTKUBE_FAKE_EXIT_AFTER_SECONDS",
                                                     value="0.2"),
                                      pod_pb2.EnvVar(name="RAFTKUBE_FAKE_EXIT_CODE",
                                                     value="2")])])
        crasher = harness.create(crasher)
        for pod in pods:
            running = harness.wait_pod(pod, lambda p: condition(p, "Ready") == "True",
                                       what="Ready")
            assert running.status.pod_ip and running.status.phase == "Running"
        restarted = harness.wait_pod(crasher,
                                     lambda p: container_state(p, "c").restart_count >= 1,
                                     what="a restart")
        assert container_state(restarted, "c").last_state.terminated.exit_code == 2
        limited = harness.pod("limited", ns, node="hollow-5")
        limited.spec.active_deadline_seconds = 2
        limited = harness.create(limited)
        failed = harness.wait_pod(limited, lambda p: p.status.phase == "Failed",
                                  what="DeadlineExceeded")
        assert failed.status.reason == "DeadlineExceeded"
        assert container_state(failed, "main").state.terminated.finished_at
        harness.admin.pods.delete("p0", ns)
        harness.wait_gone(pods[0], timeout=30)
        time.sleep(1.5)
        assert leases.get("hollow-7", "raftkube-node-lease").spec.renew_time > first
        fleet.kill("hollow-7")
        time.sleep(1.5)
        silent = leases.get("hollow-7", "raftkube-node-lease").spec.renew_time
        time.sleep(2.0)
        assert leases.get("hollow-7", "raftkube-node-lease").spec.renew_time == silent
        fleet.revive("hollow-7")
        time.sleep(1.5)
        assert leases.get("hollow-7", "raftkube-node-lease").spec.renew_time > silent
    finally:
        fleet.stop()
        harness.close()


def test_a_restarted_agent_renews_its_lease_before_it_reports_ready() -> None:
    """A node the masters marked NotReady (its agent gone past the grace period) is Ready
    again when its agent starts again, and stays Ready: the agent renews its Lease before
    it writes Ready, so the masters never see its Ready beside the old Lease (they marked
    such a node NotReady again, and it stayed so until the next status write, 60 s)."""
    harness = AgentHarness.start(workers=(), podman=False)
    fleet = HollowFleet(HollowFleetConfig(count=2, client_config=harness.cluster.layout
                                          .admin_config, lease_interval_seconds=1.0,
                                          relist_interval_seconds=0.5))
    nodes, leases = harness.admin.nodes, harness.admin.resource("Lease")
    try:
        fleet.start()
        fleet.kill("hollow-1")
        deadline = time.monotonic() + 30
        while condition(nodes.get("hollow-1"), "Ready") != "Unknown":
            assert time.monotonic() < deadline, "the masters did not mark the node NotReady"
            time.sleep(0.2)
        old = leases.get("hollow-1", "raftkube-node-lease")
        fleet.agents["hollow-1"].heartbeat.register()  # what a restarted agent does first
        lease = leases.get("hollow-1", "raftkube-node-lease")
        node = nodes.get("hollow-1")
        assert condition(node, "Ready") == "True"
        assert lease.spec.renew_time > old.spec.renew_time
        assert int(lease.metadata.resource_version) < int(node.metadata.resource_version), \
            "Ready was written before the Lease was renewed"
        fleet.revive("hollow-1")  # and then its heartbeats go on
        until = time.monotonic() + 4.0  # the masters look every 0.5 s
        while time.monotonic() < until:
            assert condition(nodes.get("hollow-1"), "Ready") == "True", \
                "the masters marked the restarted node NotReady again"
            time.sleep(0.2)
    finally:
        fleet.stop()
        harness.close()
