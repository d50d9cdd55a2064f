"""Usage figures end to end: real Podman containers, the agent's sampler, the masters'
NodeAgent.Stats proxy, the SDK's top_nodes/top_pods, `raftkubectl top` and the worker's
Prometheus metrics."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request

import pytest

from raftkube import apierrors
from raftkube.client import Client
from raftkube.client.usage import PodTop, top_nodes, top_pods
from raftkube.testing.agent_harness import REPO_ROOT, AgentHarness, condition, container

pytestmark = [pytest.mark.podman, pytest.mark.timeout(300)]

BURN = ["sh", "-c", "trap 'exit 0' TERM; while true; do :; done"]
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def wait_for_pods(client: Client, namespace: str, names: set[str],
                  timeout: float = 60.0) -> dict[str, PodTop]:
    deadline = time.monotonic() + timeout
    while True:
        found = {p.name: p for p in top_pods(client, namespace).pods}
        if names <= set(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no figures for {names - set(found)} after {timeout} s")
        time.sleep(0.5)


def kubectl(harness: AgentHarness, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftkube.cli.raftkubectl_main", *args,
         "--config", str(harness.cluster.layout.admin_config)],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def test_top_and_metrics_show_a_busy_pod(harness: AgentHarness) -> None:
    agent = harness.start_agent("w1", node_agent=harness.serving_config("w1"),
                                stats_interval_seconds=1.0, metrics_address="127.0.0.1:0")
    ns = harness.namespace()
    burner = harness.pod("burner", ns, containers=[container("burn", BURN)])
    burner.spec.termination_grace_period_seconds = 1
    sleeper = harness.pod("sleeper", ns, containers=[container("nap", SLEEP)])
    sleeper.spec.termination_grace_period_seconds = 1
    created = [harness.create(burner), harness.create(sleeper)]
    try:
        for pod in created:
            harness.wait_pod(pod, lambda p: condition(p, "Ready") == "True", what="Ready")
        pods = wait_for_pods(harness.admin, ns, {"burner", "sleeper"})
        busy, idle = pods["burner"], pods["sleeper"]
        assert busy.node == "w1" and [c.name for c in busy.containers] == ["burn"]
        assert busy.cpu_millicores >= 200, f"a spinning shell shows {busy.cpu_millicores}m"
        assert idle.cpu_millicores < busy.cpu_millicores / 2
        assert busy.memory_bytes > 0 and idle.memory_bytes > 0

        (node,) = top_nodes(harness.admin, ["w1"])
        assert not node.error
        assert node.cpu_millicores >= busy.cpu_millicores * 0.5
        assert node.memory_bytes > 0
        assert node.cpu_allocatable_millicores > 0 and node.memory_allocatable_bytes > 0

        out = kubectl(harness, "top", "pod", "-n", ns, "--containers", "--sort-by", "cpu")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
        assert lines[1].split()[:2] == ["burner", "burn"], "sorted by CPU, busiest first"
        assert re.fullmatch(r"\d+m", lines[1].split()[2]) and lines[1].split()[3].endswith("Mi")
        out = kubectl(harness, "top", "node", "w1")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[0].split() == [
            "NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
        assert re.fullmatch(r"w1\s+\d+m\s+\d+%\s+\d+Mi\s+\d+%", out.stdout.splitlines()[1])

        text = urllib.request.urlopen(
            f"http://127.0.0.1:{agent.metrics_port}/metrics", timeout=10).read().decode()
        match = re.search(r'raftkube_container_cpu_usage_cores\{container="burn",'
                          rf'namespace="{ns}",pod="burner"\}} (\S+)', text)
        assert match and float(match.group(1)) > 0.1, text[-2000:]
        assert re.search(r'raftkube_agent_pods\{node="w1"\} [2-9]', text)
        assert 'raftkube_node_memory_usage_bytes{node="w1"}' in text
        assert 'raftkube_agent_fenced{node="w1"} 0.0' in text
    finally:
        for pod in created:
            harness.admin.pods.delete(pod.metadata.name, ns)
        for pod in created:
            harness.wait_gone(pod)


def test_stats_are_authorized_and_name_the_node(harness: AgentHarness) -> None:
    if "w1" not in harness.agents:
        harness.start_agent("w1", node_agent=harness.serving_config("w1"),
                            stats_interval_seconds=1.0)
    with pytest.raises(apierrors.NotFound, match="no-such-node"):
        harness.admin.node_stats("no-such-node")
    with Client.from_config(harness.cluster.layout.worker_config("w2")) as node_client, \
            pytest.raises(apierrors.Forbidden, match="nodes/stats"):
        node_client.node_stats("w1")
    out = kubectl(harness, "top", "pod", "-n", "no-such-namespace-here")
    assert out.returncode == 1
    assert "metrics not available yet" in out.stderr
