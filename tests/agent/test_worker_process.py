"""`raftkube worker --config FILE` as a real process: runs pods, stops cleanly on SIGTERM
without killing them, and a new process adopts them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from raftkube.testing.agent_harness import REPO_ROOT, AgentHarness, condition, container_state
from raftkube.testing.worker_process import spawn_worker, stop_worker, write_worker_config
from raftkube.workers.runtime.podman_runtime import PodmanRuntime, PodmanRuntimeConfig

pytestmark = [pytest.mark.podman, pytest.mark.timeout(300)]


def test_worker_process_runs_pods_and_stops_without_killing_them(tmp_path: Path) -> None:
    harness = AgentHarness.start(workers=("w1",))
    process, data_dir = None, None
    try:
        config, log = tmp_path / "worker.yaml", tmp_path / "worker.log"
        data_dir = write_worker_config(
            harness, config, labels={"disk": "ssd"}, podCIDR="10.244.77.0/24",
            taints=[{"key": "dedicated", "value": "test", "effect": "NoSchedule"}])
        process = spawn_worker(config, log)
        ns = harness.namespace()
        pod = harness.create(harness.pod("p", ns))
        running = harness.wait_pod(pod, lambda p: condition(p, "Ready") == "True",
                                   what="Ready", timeout=90)
        node = harness.admin.nodes.get("w1")
        assert node.metadata.labels["disk"] == "ssd"
        assert node.spec.pod_cidr == "10.244.77.0/24", "a configured podCIDR is kept"
        assert [(t.key, t.effect) for t in node.spec.taints] == [("dedicated", "NoSchedule")]
        cid = container_state(running, "main").container_id
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()[-2000:]
        rt = PodmanRuntime(PodmanRuntimeConfig(
            node="w1", socket_path=str(harness.podman.store.socket_path)))  # type: ignore[union-attr]
        assert [c.state.value for c in rt.list_containers(running.metadata.uid)] == ["running"]
        process = spawn_worker(config, log)
        time.sleep(3)
        after = harness.wait_pod(pod, lambda p: condition(p, "Ready") == "True", what="Ready")
        assert container_state(after, "main").container_id == cid
        assert container_state(after, "main").restart_count == 0
        harness.admin.pods.delete("p", ns, grace_period_seconds=1)
        harness.wait_gone(after, timeout=30)
        deadline = time.monotonic() + 20
        while rt.list_containers(running.metadata.uid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rt.list_containers(running.metadata.uid) == []
    finally:
        stop_worker(process, data_dir)
        harness.close()


def test_bad_config_is_refused_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("nodeName: w1\nclientConfig: c.yaml\nruntime: {kind: docker}\n")
    result = subprocess.run([sys.executable, "-m", "raftkube.cli.raftkube_main", "worker",
                             "--config", str(config)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=60)
    assert result.returncode == 2
    assert "runtime.kind" in result.stderr and "docker" in result.stderr


def test_a_joined_worker_gets_pods_scheduled_on_it(tmp_path: Path) -> None:
    """The seed's "add a new node server": a token from raftkubectl, `raftkube join` on the
    new machine, `raftkube worker`, and the scheduler places a Deployment's pods there.
    The node agent got its serving certificate at join, so the pods' logs, exec and the
    node's usage reach it through the masters as on any other worker."""
    harness = AgentHarness.start(workers=())
    process = None
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def cli(module: str, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", f"raftkube.cli.{module}", *args],
                                capture_output=True, text=True, env=env, timeout=120,
                                cwd=str(REPO_ROOT))
        assert result.returncode == 0, result.stderr
        return result.stdout

    try:
        admin = ["--config", str(harness.cluster.layout.admin_config)]
        token = cli("raftkubectl_main", "token", "create", "--ttl", "10m", *admin).strip()
        machine = tmp_path / "new-machine"
        cli("raftkube_main", "join", "--token", token, "--name", "joined-1",
            "--master", harness.cluster.members[0].api_address,
            "--ca-file", str(harness.cluster.layout.ca_cert), "--dir", str(machine),
            "--node-ip", "127.0.0.1", "--node-agent-port", "0")
        config_path = machine / "worker.yaml"
        config = yaml.safe_load(config_path.read_text())
        assert config["nodeName"] == "joined-1"
        assert config["nodeAgent"]["listen"] == "127.0.0.1:0"
        assert harness.podman is not None  # this machine's Podman, as an operator sets it
        config.update(dataDir=str(machine / "agent"), leaseIntervalSeconds=0.5,
                      statsIntervalSeconds=1,
                      runtime={"kind": "podman", "startService": False,
                               "podmanSocket": str(harness.podman.store.socket_path),
                               "network": harness.podman.network})
        config_path.write_text(yaml.safe_dump(config))
        process = spawn_worker(config_path, tmp_path / "worker.log")
        ns = harness.namespace()
        manifest = tmp_path / "web.yaml"
        manifest.write_text(f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: localhost/busybox:latest
        command: [sh, -c, "echo hello from the joined node; sleep 3600"]
""")
        cli("raftkubectl_main", "apply", "-f", str(manifest), *admin)
        deadline = time.monotonic() + 120
        while True:
            pods = harness.admin.pods.list(ns, label_selector="app=web")
            placed = [p for p in pods if p.spec.node_name == "joined-1"
                      and condition(p, "Ready") == "True"]
            if len(placed) == 2:
                break
            assert time.monotonic() < deadline, [(p.spec.node_name, p.status.phase)
                                                 for p in pods]
            time.sleep(0.5)
        node = harness.admin.nodes.get("joined-1")
        assert condition(node, "Ready") == "True" and node.spec.pod_cidr
        pod = placed[0].metadata.name
        logs = cli("raftkubectl_main", "logs", pod, "-n", ns, *admin)
        assert "hello from the joined node" in logs
        session = harness.admin.pod_exec(pod, ["sh", "-c", "echo out; echo err >&2; exit 7"],
                                         ns)
        output = list(session.output())
        assert ("stdout", b"out\n") in output and ("stderr", b"err\n") in output
        assert session.exit_code == 7
        assert harness.admin.node_stats("joined-1").node == "joined-1"
        harness.admin.resource("Deployment").delete("web", ns)
    finally:
        stop_worker(process, tmp_path / "new-machine" / "agent")
        harness.close()
