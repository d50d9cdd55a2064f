"""Pod routes: the pure plan, then real routes between hosts' pod subnets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from raftkube.testing.netns import NetnsCluster
from raftkube.workers.network.pod_routes import (
    NodeRoute,
    PodmanNetworkSpec,
    RouteConfig,
    RouteError,
    RouteSyncer,
    desired_routes,
    ensure_podman_network,
    parse_routes,
    plan_routes,
)

NODES = [NodeRoute("n1", "192.168.5.11", "10.244.1.0/24"),
         NodeRoute("n2", "192.168.5.12", "10.244.2.0/24"),
         NodeRoute("n3", "192.168.5.13", ""),
         NodeRoute("n4", "192.168.5.14", "10.244.4.0/24")]


def test_desired_routes_skip_self_and_nodes_without_cidr() -> None:
    assert desired_routes(NODES, "n1") == {"10.244.2.0/24": "192.168.5.12",
                                           "10.244.4.0/24": "192.168.5.14"}


def test_bad_or_overlapping_node_data_names_the_node() -> None:
    with pytest.raises(ValueError, match=r"nodes\[n9\]\.pod_cidr: '10.244.1.0/33'"):
        desired_routes([NodeRoute("n9", "1.2.3.4", "10.244.1.0/33")], "n1")
    with pytest.raises(ValueError, match=r"nodes\[n2\]\.pod_cidr: 10.244.1.0/24 overlaps "
                                         r"nodes\[n1\]"):
        desired_routes([NodeRoute("n1", "1.2.3.4", "10.244.0.0/16"),
                        NodeRoute("n2", "1.2.3.5", "10.244.1.0/24")], "n3")


def test_plan_changes_only_what_differs() -> None:
    plan = plan_routes({"10.244.2.0/24": "192.168.5.12", "10.244.9.0/24": "192.168.5.19",
                        "10.244.4.0/24": "192.168.5.99"},
                       {"10.244.2.0/24": "192.168.5.12", "10.244.4.0/24": "192.168.5.14"})
    assert plan.replace == (("10.244.4.0/24", "192.168.5.14"),)
    assert plan.delete == ("10.244.9.0/24",)
    assert plan_routes({"a": "b"}, {"a": "b"}).empty


def test_parse_routes_reads_ip_json() -> None:
    data = json.dumps([{"dst": "10.244.2.0/24", "gateway": "192.168.5.12"},
                       {"dst": "default", "gateway": "192.168.5.1"},
                       {"dst": "192.168.5.0/24", "dev": "eth0"}])
    assert parse_routes(data) == {"10.244.2.0/24": "192.168.5.12"}


@pytest.mark.netns
@pytest.mark.slow
def test_pods_on_different_hosts_reach_each_other_and_routes_follow_nodes(
        netns_cluster: NetnsCluster) -> None:
    c = netns_cluster
    pods = [c.add_pod(h) for h in c.hosts]
    for i, pod in enumerate(pods):
        c.start_echo_http(pod.netns, 8080, f"pod{i}")
    nodes = [NodeRoute(h.name, h.address, h.pod_cidr) for h in c.hosts]
    syncers = [RouteSyncer(RouteConfig(node_name=h.name, netns=h.netns)) for h in c.hosts]
    before = c.http_probe(pods[0].netns, f"http://{pods[1].ip}:8080/", count=1, timeout=1)
    assert before["fail"] == 1  # no route yet
    for s in syncers:
        assert not s.sync(nodes).empty
        assert s.sync(nodes).empty  # idempotent
    for src in pods:
        for dst in pods:
            r = c.http_probe(src.netns, f"http://{dst.ip}:8080/", count=1)
            assert r["ok"] == 1, (src.ip, dst.ip, r["errors"])
    # a route the syncer does not own is left alone
    c.run(c.hosts[0].netns, ["ip", "route", "add", "10.250.0.0/24", "via", c.hosts[1].address])
    plan = syncers[0].sync(nodes[:2])  # node h2 left the cluster
    assert plan.delete == (c.hosts[2].pod_cidr,)
    routes = c.run(c.hosts[0].netns, ["ip", "-4", "route"]).stdout
    assert c.hosts[2].pod_cidr not in routes and "10.250.0.0/24" in routes
    assert c.hosts[1].pod_cidr in routes
    syncers[0].clear()
    routes = c.run(c.hosts[0].netns, ["ip", "-4", "route"]).stdout
    assert c.hosts[1].pod_cidr not in routes


@pytest.mark.podman
@pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed")
def test_podman_network_is_created_once_and_mismatch_is_an_error(tmp_path: Path) -> None:
    netdir = tmp_path / "networks"
    netdir.mkdir()
    conf = tmp_path / "containers.conf"
    conf.write_text(f'[network]\nnetwork_backend = "netavark"\n'
                    f'network_config_dir = "{netdir}"\n')
    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    name = f"rk-{os.getpid()}-pods"
    spec = PodmanNetworkSpec(name=name, subnet="10.244.77.0/24")
    try:
        assert ensure_podman_network(spec, env=env) is True
        assert ensure_podman_network(spec, env=env) is False
        info = json.loads(subprocess.run(["podman", "network", "inspect", name], env=env,
                                         capture_output=True, text=True).stdout)[0]
        assert info["subnets"][0] == {"subnet": "10.244.77.0/24", "gateway": "10.244.77.1"}
        assert info["dns_enabled"] is False
        with pytest.raises(RouteError, match="exists with subnets"):
            ensure_podman_network(PodmanNetworkSpec(name, "10.244.78.0/24"), env=env)
    finally:
        subprocess.run(["podman", "network", "rm", "-f", name], env=env, capture_output=True)
