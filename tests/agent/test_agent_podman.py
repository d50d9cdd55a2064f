"""The agent on real Podman with real masters: what a user of pods checks."""

from __future__ import annotations

import pytest

from raftkube.api.v1 import pod_pb2
from raftkube.testing.agent_harness import AgentHarness, condition, container_state

pytestmark = [pytest.mark.podman, pytest.mark.timeout(300)]


def test_node_registered_and_pod_runs(harness: AgentHarness, agent) -> None:
    node = harness.admin.nodes.get("w1")
    assert node.metadata.labels["kubernetes.io/hostname"] == "w1"
    assert int(node.status.capacity["pods"]) == 110
    assert condition(node, "Ready") == "True"
    ns = harness.namespace()
    pod = harness.create(harness.pod("sleeper", ns))
    running = harness.wait_pod(pod, lambda p: condition(p, "Ready") == "True", what="Ready")
    assert running.status.phase == "Running"
    assert running.status.pod_ip
    state = container_state(running, "main")
    assert state is not None and state.state.running.started_at
    assert isinstance(running, pod_pb2.Pod)
