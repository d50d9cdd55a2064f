"""UDP through a ClusterIP: DNS behind a service, and stale UDP flows moved on update."""

from __future__ import annotations

import json
import os
import secrets
import select
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from raftkube.testing.netns import NetnsCluster
from raftkube.workers.network.model import Endpoint, ProxyModel, Service, ServicePort
from raftkube.workers.network.nft_rules import RulesConfig
from raftkube.workers.network.service_proxy import ServiceProxy, ServiceProxyConfig

pytestmark = [pytest.mark.netns, pytest.mark.slow]

ROOT = str(Path(__file__).resolve().parents[2])
UDP_NAME_SERVER = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',5353))\n"
    "print('ready',flush=True)\n"
    "while True:\n    d,a=s.recvfrom(100);s.sendto(sys.argv[1].encode(),a)\n"
)
# one UDP socket, fixed source port: asks, waits for a line on stdin, asks again
UDP_CLIENT = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(1)\n"
    "for _ in range(3):\n"
    "    s.sendto(b'?',(sys.argv[1],53))\n"
    "    try: print(s.recvfrom(100)[0].decode(),flush=True)\n"
    "    except OSError as e: print('timeout',flush=True)\n"
    "    sys.stdin.readline()\n"
)


def _ready(proc: subprocess.Popen) -> None:
    assert proc.stdout is not None
    assert select.select([proc.stdout], [], [], 20)[0]
    assert proc.stdout.readline().startswith(b"ready")


def test_udp_service_moves_existing_flows_when_endpoint_goes(
        make_netns_cluster, tmp_path: Path) -> None:
    c: NetnsCluster = make_netns_cluster(hosts=1)
    host = c.hosts[0]
    pod_a, pod_b, client = c.add_pod(host), c.add_pod(host), c.add_pod(host)
    for pod, name in ((pod_a, "A"), (pod_b, "B")):
        _ready(c.popen(pod.netns, [sys.executable, "-c", UDP_NAME_SERVER, name],
                       stdout=subprocess.PIPE))
    proxy = ServiceProxy(ServiceProxyConfig(netns=host.netns, rules=RulesConfig(
        table=f"raftkube_{secrets.token_hex(3)}", cluster_cidr=str(c.pod_cluster_cidr))))

    def model(*pods) -> ProxyModel:
        return ProxyModel((Service("default", "names", "10.96.0.53",
                                   ports=(ServicePort(53, 5353, "UDP", "dns"),),
                                   endpoints=tuple(Endpoint(p.ip) for p in pods)),))

    try:
        proxy.sync(model())
        asker = c.popen(client.netns, [sys.executable, "-c", UDP_CLIENT, "10.96.0.53"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert asker.stdout is not None and asker.stdin is not None
        assert asker.stdout.readline().strip() == b"timeout"  # no endpoint: rejected
        proxy.sync(model(pod_a))  # rejected packets left no flow: same socket reaches A
        asker.stdin.write(b"\n")
        asker.stdin.flush()
        assert asker.stdout.readline().strip() == b"A"
        proxy.sync(model(pod_b))  # A leaves: its conntrack flow is deleted
        asker.stdin.write(b"\n")
        asker.stdin.flush()
        assert asker.stdout.readline().strip() == b"B"
    finally:
        proxy.close()


def test_dns_server_behind_a_udp_cluster_ip(make_netns_cluster, tmp_path: Path) -> None:
    c: NetnsCluster = make_netns_cluster(hosts=1)
    host = c.hosts[0]
    dns_pod, client = c.add_pod(host), c.add_pod(host)
    (tmp_path / "records.json").write_text(json.dumps([
        {"namespace": "default", "name": "web", "cluster_ip": "10.96.0.10",
         "ports": [{"name": "http", "port": 80}], "endpoints": []}]))
    _ready(c.popen(dns_pod.netns, [
        sys.executable, "-m", "raftkube.workers.network.dns_server", "--port", "53",
        "--records", str(tmp_path / "records.json")], stdout=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=ROOT)))
    proxy = ServiceProxy(ServiceProxyConfig(netns=host.netns, rules=RulesConfig(
        table=f"raftkube_{secrets.token_hex(3)}", cluster_cidr=str(c.pod_cluster_cidr))))
    try:
        proxy.sync(ProxyModel((Service(
            "kube-system", "dns", "10.96.0.53",
            ports=(ServicePort(53, 53, "UDP", "dns"), ServicePort(53, 53, "TCP", "dns-tcp")),
            endpoints=(Endpoint(dns_pod.ip),)),)))
        for tcp in ("False", "True"):
            out = c.run(client.netns, [sys.executable, "-c", (
                "import sys;from dnslib import DNSRecord;"
                "r=DNSRecord.parse(DNSRecord.question('web.default.svc.cluster.local')"
                ".send('10.96.0.53',53,tcp=" + tcp + ",timeout=3));print(r.rr[0].rdata)")],
                check=False)
            assert out.stdout.strip() == "10.96.0.10", (tcp, out.stderr)
    finally:
        proxy.close()


def test_run_loop_applies_on_notify_and_removes_table_on_stop(make_netns_cluster) -> None:
    c: NetnsCluster = make_netns_cluster(hosts=1, with_pod_bridge=False)
    host = c.hosts[0]
    proxy = ServiceProxy(ServiceProxyConfig(netns=host.netns, resync_interval_s=0.2,
                                            rules=RulesConfig(
                                                table=f"raftkube_{secrets.token_hex(3)}")))
    current = [ProxyModel(())]
    stop = threading.Event()
    thread = threading.Thread(target=proxy.run, args=(lambda: current[0], stop))
    thread.start()
    try:
        current[0] = ProxyModel((Service("default", "web", "10.96.0.10",
                                         ports=(ServicePort(80, 8080),),
                                         endpoints=(Endpoint("10.1.2.3"),)),))
        proxy.notify()
        for _ in range(100):
            listing = c.run(host.netns, ["nft", "list", "table", "ip", proxy.table],
                            check=False).stdout
            if "10.1.2.3:8080" in listing:
                break
            threading.Event().wait(0.05)
        assert "10.1.2.3:8080" in listing
        c.run(host.netns, ["nft", "delete", "table", "ip", proxy.table])
        for _ in range(100):  # the periodic round notices and rebuilds
            if proxy.table_present():
                break
            threading.Event().wait(0.05)
        assert proxy.table_present()
    finally:
        stop.set()
        proxy.notify()
        thread.join(10)
    assert not thread.is_alive()
    assert not proxy.table_present()
