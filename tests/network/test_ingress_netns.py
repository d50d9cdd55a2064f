"""The ingress proxy on a node namespace routing to pods on two nodes."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from raftkube.testing.netns import NetnsCluster
from raftkube.workers.network.pod_routes import NodeRoute, RouteConfig, RouteSyncer

pytestmark = [pytest.mark.netns, pytest.mark.slow]

ROOT = str(Path(__file__).resolve().parents[2])


def test_ingress_on_a_node_routes_by_host_and_path_to_pods_on_both_nodes(
        netns_cluster: NetnsCluster, tmp_path: Path) -> None:
    c = netns_cluster
    h0, h1, outside = c.hosts
    shop, blog = c.add_pod(h0), c.add_pod(h1)
    c.start_echo_http(shop.netns, 8080, "shop")
    c.start_echo_http(blog.netns, 8080, "blog")
    nodes = [NodeRoute(h.name, h.address, h.pod_cidr) for h in (h0, h1)]
    for h in (h0, h1):
        RouteSyncer(RouteConfig(node_name=h.name, netns=h.netns)).sync(nodes)

    def svc(name: str, ip: str | None) -> dict:
        return {"namespace": "default", "name": name, "cluster_ip": "10.96.0.20",
                "ports": [{"name": "http", "port": 80, "target_port": 8080}],
                "endpoints": [{"ip": ip}] if ip else []}

    def backend(name: str) -> dict:
        return {"namespace": "default", "service": name, "port": "http"}

    routes = {"ingresses": [{"namespace": "default", "name": "site", "rules": [
        {"host": "shop.example", "paths": [{"path": "/", "path_type": "Prefix",
                                            "backend": backend("shop")}]},
        {"host": "", "paths": [{"path": "/blog", "path_type": "Prefix",
                                "backend": backend("blog")},
                               {"path": "/soon", "path_type": "Exact",
                                "backend": backend("soon")}]}]}],
        "services": [svc("shop", shop.ip), svc("blog", blog.ip), svc("soon", None)]}
    (tmp_path / "routes.json").write_text(json.dumps(routes))
    proc = c.popen(h0.netns, [sys.executable, "-m", "raftkube.workers.network.ingress_proxy",
                              "--listen", h0.address, "--port", "80",
                              "--routes", str(tmp_path / "routes.json")],
                   stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.stdout is not None
    assert select.select([proc.stdout], [], [], 20)[0]
    assert proc.stdout.readline().startswith(b"ready")

    base = f"http://{h0.address}"
    shop_r = c.http_probe(outside.netns, base + "/cart", count=20, keepalive=True,
                          host_header="shop.example")
    assert shop_r["pods"] == {"shop": 20}, shop_r
    blog_r = c.http_probe(outside.netns, base + "/blog/post/1", count=5,
                          host_header="anything")
    assert blog_r["pods"] == {"blog": 5}, blog_r
    soon = c.http_probe(outside.netns, base + "/soon", count=1)
    assert soon["statuses"] == {"503": 1}
    assert "service default/soon:http has no ready endpoint" in soon["errors"][0]
