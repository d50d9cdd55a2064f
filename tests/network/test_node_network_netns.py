"""Whole node data path (routes + nft proxy + DNS + ingress) running inside two node
namespaces as `python -m raftkube.workers.network.node_network`, driven by a state file."""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from raftkube.testing.netns import Host, NetnsCluster, Pod

pytestmark = [pytest.mark.netns, pytest.mark.slow]

ROOT = str(Path(__file__).resolve().parents[2])
VIP = "10.96.0.10"


def _line(proc: subprocess.Popen, timeout: float = 20) -> str:
    assert proc.stdout is not None
    assert select.select([proc.stdout], [], [], timeout)[0], "no output from node_network"
    return proc.stdout.readline().decode().strip()


def _state(hosts: list[Host], pods: list[Pod]) -> dict:
    return {
        "nodes": [{"name": h.name, "address": h.address, "pod_cidr": h.pod_cidr}
                  for h in hosts],
        "services": [
            {"namespace": "default", "name": "web", "cluster_ip": VIP, "type": "NodePort",
             "ports": [{"name": "http", "port": 80, "target_port": 8080,
                        "node_port": 30080}],
             "endpoints": [{"ip": p.ip} for p in pods]},
            {"namespace": "default", "name": "db", "cluster_ip": None,
             "ports": [{"name": "pg", "port": 5432}],
             "endpoints": [{"ip": pods[0].ip, "hostname": "db-0"}]}],
        "ingresses": [{"namespace": "default", "name": "site", "rules": [
            {"host": "shop.example", "paths": [{"path": "/", "path_type": "Prefix",
                                                "backend": {"namespace": "default",
                                                            "service": "web",
                                                            "port": "http"}}]}]}],
    }


def test_node_network_end_to_end(netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    h0, h1, outside = c.hosts
    pod_a, pod_b = c.add_pod(h0), c.add_pod(h1)
    c.start_echo_http(pod_a.netns, 8080, "A")
    c.start_echo_http(pod_b.netns, 8080, "B")
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(_state([h0, h1], [pod_a, pod_b])))
    table = f"raftkube_{secrets.token_hex(3)}"
    procs = {}
    for h in (h0, h1):
        procs[h.name] = c.popen(h.netns, [
            sys.executable, "-m", "raftkube.workers.network.node_network",
            "--node-name", h.name, "--node-address", h.address,
            "--cluster-cidr", str(c.pod_cluster_cidr), "--table", table,
            "--state", str(state_file)],
            stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))
    for name, proc in procs.items():
        assert _line(proc) == "ready", name

    # DNS on the node address answers the pod; ClusterIP spreads over both nodes' pods
    out = c.run(pod_a.netns, [sys.executable, "-c", (
        "from dnslib import DNSRecord;import sys;"
        "r=DNSRecord.parse(DNSRecord.question(sys.argv[1]).send(sys.argv[2],53,timeout=3));"
        "print(' '.join(str(x.rdata) for x in r.rr))"),
        "db-0.db.default.svc.cluster.local", h0.address])
    assert out.stdout.strip() == pod_a.ip
    web = c.http_probe(pod_a.netns, f"http://{VIP}/", count=30)
    assert web["fail"] == 0 and set(web["pods"]) == {"A", "B"}, web
    # NodePort and Ingress from outside the cluster
    np = c.http_probe(outside.netns, f"http://{h1.address}:30080/", count=20)
    assert np["fail"] == 0 and set(np["pods"]) == {"A", "B"}, np
    ing = c.http_probe(outside.netns, f"http://{h0.address}/", count=20,
                       host_header="shop.example", keepalive=True)
    assert ing["fail"] == 0 and set(ing["pods"]) == {"A", "B"}, ing

    # pod B goes away: new state, SIGHUP, only A answers everywhere
    state_file.write_text(json.dumps(_state([h0, h1], [pod_a])))
    for proc in procs.values():
        proc.send_signal(signal.SIGHUP)
    for name, proc in procs.items():
        assert _line(proc) == "applied 2", name
    web = c.http_probe(pod_b.netns, f"http://{VIP}/", count=10)
    assert web["pods"] == {"A": 10}, web
    ing = c.http_probe(outside.netns, f"http://{h0.address}/", count=5,
                       host_header="shop.example")
    assert ing["pods"] == {"A": 5}, ing

    # SIGTERM: everything it made is gone
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    for h in (h0, h1):
        tables = c.run(h.netns, ["nft", "list", "tables"]).stdout
        assert table not in tables
        routes = c.run(h.netns, ["ip", "-4", "route", "show", "proto", "200"]).stdout
        assert routes.strip() == ""


def test_one_bad_part_does_not_stop_the_others(make_netns_cluster) -> None:
    from raftkube.workers.network.ingress_routes import (
        BackendRef,
        Ingress,
        IngressPath,
        IngressRule,
    )
    from raftkube.workers.network.model import Endpoint, Service, ServicePort
    from raftkube.workers.network.node_network import (
        ClusterNetworkState,
        NetworkUpdateError,
        NodeNetwork,
        NodeNetworkConfig,
    )

    c: NetnsCluster = make_netns_cluster(hosts=1, with_pod_bridge=False)
    host = c.hosts[0]
    network = NodeNetwork(NodeNetworkConfig(
        node_name=host.name, node_address="127.0.0.1", dns_port=None, ingress_port=0,
        ingress_address="127.0.0.1",
        proxy_table=f"raftkube_{secrets.token_hex(3)}", masquerade_exception=False,
        netns=host.netns)).start()
    try:
        bad_ingress = Ingress("default", "bad", rules=(IngressRule("", (IngressPath(
            "/", "Regex", BackendRef("default", "web", 80)),)),))
        state = ClusterNetworkState(
            services=(Service("default", "web", VIP, ports=(ServicePort(80, 8080),),
                              endpoints=(Endpoint("10.1.2.3"),)),),
            ingresses=(bad_ingress,))
        with pytest.raises(NetworkUpdateError, match=r"ingress: .*pathType") as err:
            network.update(state)
        assert set(err.value.failures) == {"ingress"}
        listing = c.run(host.netns, ["nft", "list", "table", "ip", network.proxy.table]).stdout
        assert "10.1.2.3:8080" in listing
    finally:
        network.close()
        network.close()
    assert not network.proxy.table_present()
