"""Translation of API objects into the node networking models."""

from __future__ import annotations

from raftkube.api.v1 import core_pb2, networking_pb2
from raftkube.workers.network.api_model import ingress_model, node_routes, services_model


def service(name: str, cluster_ip: str, target: int | str = 8080, node_port: int = 0):
    svc = core_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name, svc.metadata.namespace = name, "default"
    svc.spec.cluster_ip = cluster_ip
    svc.spec.type = "NodePort" if node_port else "ClusterIP"
    port = svc.spec.ports.add(name="http", port=80, protocol="TCP", node_port=node_port)
    if isinstance(target, int):
        port.target_port.int_val = target
    else:
        port.target_port.str_val = target
    return svc


def endpoints(name: str, ready: list[str], not_ready: list[str] = (), port: int = 8080):
    ep = core_pb2.Endpoints(api_version="v1", kind="Endpoints")
    ep.metadata.name, ep.metadata.namespace = name, "default"
    subset = ep.subsets.add()
    for ip in ready:
        subset.addresses.add(ip=ip, hostname=f"h-{ip[-1]}")
    for ip in not_ready:
        subset.not_ready_addresses.add(ip=ip)
    subset.ports.add(name="http", port=port, protocol="TCP")
    return ep


def test_ready_endpoints_only_and_named_target_ports_resolved_per_endpoint() -> None:
    (web,) = services_model([service("web", "10.96.0.5", target="http", node_port=30080)],
                            [endpoints("web", ["10.244.1.2", "10.244.1.3"], ["10.244.1.9"],
                                       port=9090)])
    assert web.cluster_ip == "10.96.0.5" and web.type == "NodePort"
    assert [e.ip for e in web.endpoints] == ["10.244.1.2", "10.244.1.3"]
    assert [e.port_for(web.ports[0]) for e in web.endpoints] == [9090, 9090]
    assert web.ports[0].node_port == 30080


def test_headless_and_unallocated_services() -> None:
    out = services_model([service("db", "None"), service("new", "")],
                         [endpoints("db", ["10.244.2.4"])])
    assert [(s.name, s.cluster_ip, s.headless) for s in out] == [("db", None, True)]
    assert out[0].endpoints[0].hostname == "h-4"


def test_service_without_endpoints_has_none() -> None:
    (svc,) = services_model([service("lonely", "10.96.0.9")], [])
    assert svc.endpoints == ()


def test_ingress_rules_and_default_backend() -> None:
    ing = networking_pb2.Ingress(api_version="networking.k8s.io/v1", kind="Ingress")
    ing.metadata.name, ing.metadata.namespace = "site", "default"
    rule = ing.spec.rules.add(host="shop.example")
    path = rule.http.paths.add(path="/api", path_type="Prefix")
    path.backend.service.name = "api"
    path.backend.service.port.number = 80
    ing.spec.default_backend.service.name = "web"
    ing.spec.default_backend.service.port.name = "http"
    (model,) = ingress_model([ing])
    assert model.rules[0].host == "shop.example"
    assert str(model.rules[0].paths[0].backend) == "default/api:80"
    assert str(model.default_backend) == "default/web:http"


def test_node_routes_need_an_address_and_a_pod_cidr() -> None:
    nodes = []
    for name, ip, cidr in (("w1", "172.20.0.10", "10.244.1.0/24"), ("w2", "", "10.244.2.0/24"),
                           ("w3", "172.20.0.12", "")):
        n = core_pb2.Node(api_version="v1", kind="Node")
        n.metadata.name = name
        n.spec.pod_cidr = cidr
        if ip:
            n.status.addresses.add(type="InternalIP", address=ip)
        nodes.append(n)
    assert [(r.name, r.address, r.pod_cidr) for r in node_routes(nodes)] == [
        ("w1", "172.20.0.10", "10.244.1.0/24")]
