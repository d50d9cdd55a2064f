"""`raftkube up --demo` then `raftkube down`, for real: 3 master processes, 2 worker hosts
in their own namespaces with their own Podman, the demo app reachable through its NodePort
from outside the cluster, through its ClusterIP and DNS from inside, through the Ingress;
and `down` leaves no process, namespace, bridge, mount or file behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from raftkube.client import Client
from raftkube.cluster.demo import deploy_demo
from raftkube.cluster.local_cluster import LocalClusterConfig, LocalClusterState, down
from raftkube.testing.local_cluster_run import local_cluster

pytestmark = [pytest.mark.slow, pytest.mark.podman, pytest.mark.netns,
              pytest.mark.timeout(1200)]


def fetch(url: str, host: str | None = None, timeout: float = 3.0) -> str:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read().decode()


def in_host(netns: str, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", *argv],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture()
def cluster():
    if os.geteuid() != 0:
        pytest.skip("raftkube up needs root")
    with local_cluster(masters=3, workers=2) as config:
        yield config


def test_up_demo_serves_and_down_cleans_everything(cluster: LocalClusterConfig) -> None:
    deploy_demo(cluster, timeout=300, progress=print)
    state = LocalClusterState.load(cluster.state_dir)
    assert state is not None and state.hosts is not None
    workers = state.hosts.hosts
    with Client.from_config(cluster.client_config) as client:
        nodes = {n.metadata.name for n in client.nodes.list()}
        assert nodes == {"w1", "w2"}
        pods = client.pods.list("demo", label_selector="app=web")
        assert len(pods) == 3 and all(p.status.pod_ip for p in pods)
        web_ip = client.services.get("web", "demo").spec.cluster_ip

    for host in workers:  # NodePort on every node, from outside the cluster
        assert "It works" in fetch(f"http://{host.address}:30080/")
    assert "It works" in fetch(f"http://{workers[0].address}/", host="web.demo.example")
    inside = in_host(workers[1].netns, ["curl", "-s", "-m", "5", f"http://{web_ip}/"])
    assert "It works" in inside.stdout, inside.stderr
    from dnslib import DNSRecord
    query = DNSRecord.question("web.demo.svc.cluster.local", "A")
    answer = in_host(workers[0].netns, [
        "python3", "-c",
        "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);"
        f"s.sendto(bytes.fromhex('{query.pack().hex()}'),('{workers[0].address}',53));"
        "print(s.recv(512).hex())"])
    assert [str(r.rdata) for r in DNSRecord.parse(bytes.fromhex(answer.stdout.strip())).rr] \
        == [web_ip]

    # Pod to pod across nodes, with the source pod's own address (not masqueraded).
    with Client.from_config(cluster.client_config) as client:
        pods = client.pods.list("demo", label_selector="app=web")
    by_node: dict[str, list] = {}
    for pod in pods:
        by_node.setdefault(pod.spec.node_name, []).append(pod)
    assert len(by_node) == 2, "the scheduler spreads the replicas over both nodes"
    (node_a, _), (_, pods_b) = sorted(by_node.items())
    host_a = next(h for h in workers if h.name == node_a)
    got = in_host(host_a.netns, ["curl", "-s", "-m", "5",
                                 f"http://{pods_b[0].status.pod_ip}:8080/"])
    assert "It works" in got.stdout, got.stderr

    # Logs and exec through the masters (which proxy to the pod's node).
    _logs_and_exec(cluster)
    # Usage: `top` through the masters, Prometheus metrics straight from a worker.
    _top_and_metrics(cluster, workers)

    # The Service keeps answering while every web pod is deleted and replaced.
    failures, total = _requests_while_replacing_pods(cluster, workers[0].address)
    print(f"requests through the NodePort while every pod was replaced: {failures} of "
          f"{total} failed")
    assert total >= 20 and failures <= 2, (failures, total)

    names = {h.netns for h in workers}
    pids = [p.pid for p in state.processes]
    assert down(cluster.state_dir, progress=print)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)
    assert subprocess.run(["ip", "link", "show", cluster.prefix],
                          capture_output=True).returncode != 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie_or_other(pid)
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        assert str(cluster.state_dir) not in fh.read()
    assert not cluster.state_dir.exists()
    time.sleep(0.1)


def _is_zombie_or_other(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _requests_while_replacing_pods(cluster: LocalClusterConfig, node_address: str
                                   ) -> tuple[int, int]:
    """Delete the web pods one at a time (each after its replacement is Ready) while a
    client keeps fetching through the NodePort; returns (failed, total) requests."""
    import threading

    stop = threading.Event()
    counts = {"failed": 0, "total": 0}

    def client_loop() -> None:
        for _ in range(2000):
            if stop.is_set():
                return
            try:
                fetch(f"http://{node_address}:30080/", timeout=2)
            except OSError:
                counts["failed"] += 1
            counts["total"] += 1
            time.sleep(0.05)

    thread = threading.Thread(target=client_loop)
    thread.start()
    try:
        with Client.from_config(cluster.client_config) as client:
            for old in client.pods.list("demo", label_selector="app=web"):
                client.pods.delete(old.metadata.name, "demo")
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    pods = client.pods.list("demo", label_selector="app=web")
                    ready = [p for p in pods if not p.metadata.deletion_timestamp and any(
                        c.type == "Ready" and c.status == "True" for c in p.status.conditions)]
                    if len(ready) >= 3 and all(p.metadata.name != old.metadata.name
                                               for p in pods):
                        break
                    time.sleep(0.5)
                else:
                    raise AssertionError(f"no ready replacement for {old.metadata.name}")
    finally:
        stop.set()
        thread.join(30)
    return counts["failed"], counts["total"]


def _logs_and_exec(cluster: LocalClusterConfig) -> None:
    from raftkube.api.v1 import pod_pb2
    from raftkube.cli import raftkubectl_main

    with Client.from_config(cluster.client_config) as client:
        pod = pod_pb2.Pod(api_version="v1", kind="Pod")
        pod.metadata.name = "talker"
        container = pod.spec.containers.add(name="main", image="localhost/busybox:latest")
        container.command.extend(["sh", "-c", "echo hello from talker; sleep 3600"])
        client.create(pod)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            current = client.pods.get("talker")
            if current.status.phase == "Running":
                break
            time.sleep(0.5)
        logs = b"".join(client.pod_logs("talker"))
        assert b"hello from talker" in logs
        session = client.pod_exec("talker", ["sh", "-c", "echo out; echo err >&2; exit 7"])
        output = list(session.output())
        assert ("stdout", b"out\n") in output and ("stderr", b"err\n") in output
        assert session.exit_code == 7
        session = client.pod_exec("talker", ["cat"], stdin=True)
        session.send(b"piped through stdin")
        session.close_stdin()
        assert b"".join(d for _, d in session.output()) == b"piped through stdin"
        assert session.exit_code == 0
        # port-forward: one relayed TCP connection to a web pod's HTTP port
        web = client.pods.list("demo", label_selector="app=web")[0]
        stream = client.pod_port_forward(web.metadata.name, 8080, "demo")
        stream.send(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        reply = b"".join(stream.received())
        assert b"200 OK" in reply and b"It works" in reply
    _port_forward_cli(cluster, web.metadata.name)
    config = ["--config", str(cluster.client_config)]
    assert raftkubectl_main.main(["logs", "talker", *config]) == 0
    assert raftkubectl_main.main(["exec", "talker", *config, "--", "true"]) == 0
    assert raftkubectl_main.main(["exec", "talker", *config, "--", "false"]) == 1


def _top_and_metrics(cluster: LocalClusterConfig, workers) -> None:
    from raftkube.client.usage import top_nodes, top_pods

    with Client.from_config(cluster.client_config) as client:
        deadline = time.monotonic() + 60
        while True:
            nodes = top_nodes(client)
            web = [p for p in top_pods(client, "demo").pods if p.name.startswith("web-")]
            if len(web) == 3 and not any(n.error for n in nodes):
                break
            assert time.monotonic() < deadline, (nodes, web)
            time.sleep(1)
    assert sorted(n.name for n in nodes) == ["w1", "w2"]
    assert all(n.cpu_millicores > 0 and n.memory_bytes > 0 for n in nodes)
    assert all(p.memory_bytes > 0 and p.containers for p in web)
    top = subprocess.run(
        [sys.executable, "-m", "raftkube.cli.raftkubectl_main", "top", "pod", "-n", "demo",
         "--config", str(cluster.client_config)], capture_output=True, text=True, timeout=60)
    assert top.returncode == 0 and top.stdout.split()[:3] == [
        "NAME", "CPU(cores)", "MEMORY(bytes)"], top.stderr
    metrics = fetch(f"http://{workers[0].address}:9102/metrics", timeout=10)
    assert f'raftkube_agent_pods{{node="{workers[0].name}"}}' in metrics
    assert "raftkube_container_memory_usage_bytes{" in metrics


def _port_forward_cli(cluster: LocalClusterConfig, pod: str) -> None:
    """`raftkubectl port-forward` as a user runs it, then a plain HTTP client on it."""
    import socket
    import sys as _sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [_sys.executable, "-m", "raftkube.cli.raftkubectl_main", "port-forward", pod,
         f"{port}:8080", "-n", "demo", "--max-connections", "1", "--config",
         str(cluster.client_config)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Forwarding from 127.0.0.1:")
        assert "It works" in fetch(f"http://127.0.0.1:{port}/", timeout=10)
    finally:
        proc.terminate()
        proc.wait(10)
