"""Property tests: any valid model renders a table nft accepts; route matching agrees with
a brute-force reading of the Ingress rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkube.testing.netns import NetnsCluster, NetnsConfig, reap_orphaned_runs
from raftkube.workers.network.ingress_routes import (
    BackendRef,
    Ingress,
    IngressPath,
    IngressRule,
    build_route_table,
    match_route,
)
from raftkube.workers.network.model import Endpoint, ProxyModel, Service, ServicePort
from raftkube.workers.network.nft_rules import (
    RulesConfig,
    full_script,
    render_table,
    update_steps,
)

names = st.from_regex(r"[a-z]([-a-z0-9]{0,40}[a-z0-9])?", fullmatch=True)
ips = st.tuples(*[st.integers(0, 255)] * 3).map(lambda t: f"10.{t[0]}.{t[1]}.{t[2]}")


@st.composite
def services(draw: st.DrawFn) -> ProxyModel:
    out = []
    node_port = 30000
    for i in range(draw(st.integers(0, 4))):
        ports = []
        for j in range(draw(st.integers(1, 3))):
            proto = draw(st.sampled_from(["TCP", "UDP", "SCTP"]))
            np = 0
            if draw(st.booleans()):
                node_port += 1
                np = node_port
            ports.append(ServicePort(port=1000 + j, target_port=draw(st.integers(1, 65535)),
                                     protocol=proto, name=f"p{j}", node_port=np))
        eps = tuple(Endpoint(ip) for ip in draw(st.lists(ips, max_size=4, unique=True)))
        headless = draw(st.integers(0, 5)) == 0
        out.append(Service(
            namespace=draw(names), name=f"{draw(names)}-{i}",
            cluster_ip=None if headless else f"10.96.{i + 1}.{i + 1}", ports=tuple(ports),
            endpoints=eps, type="NodePort",
            session_affinity=draw(st.sampled_from(["None", "ClientIP"])),
            affinity_timeout_s=draw(st.integers(1, 86400))))
    return ProxyModel(tuple(out))


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(services())
def test_every_valid_model_renders_a_script_nft_accepts(model: ProxyModel) -> None:
    script = full_script(render_table(model, RulesConfig(table="raftkube_prop")))
    proc = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr + script


def _listing(cluster: NetnsCluster, netns: str, table: str) -> tuple[list, dict]:
    """The table's content without handles, names and declaration order: (sorted chains
    and sets with their elements, rules per chain in order)."""
    data = json.loads(cluster.run(netns, ["nft", "-j", "list", "table", "ip", table]).stdout)
    objects, rules = [], {}
    for item in data["nftables"]:
        ((kind, body),) = item.items()
        if kind in ("metainfo", "table"):
            continue
        body = {k: v for k, v in body.items() if k not in ("handle", "table", "name")
                or (k == "name" and kind != "table")}
        if kind == "rule":
            rules.setdefault(body["chain"], []).append(json.dumps(body["expr"],
                                                                  sort_keys=True))
        else:
            objects.append(json.dumps([kind, body], sort_keys=True))
    return sorted(objects), rules


@pytest.fixture(scope="module")
def nft_host() -> Iterator[tuple[NetnsCluster, str]]:
    """One namespace for all examples (nft tables there are private to it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    reap_orphaned_runs()
    cluster = NetnsCluster(NetnsConfig(hosts=1, with_pod_bridge=False)).setup()
    try:
        yield cluster, cluster.hosts[0].netns
    finally:
        cluster.teardown()


@pytest.mark.netns
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(services(), services())
def test_update_from_any_model_to_any_model_equals_a_fresh_table(
        nft_host: tuple[NetnsCluster, str], first: ProxyModel, second: ProxyModel) -> None:
    cluster, netns = nft_host
    cfg_a, cfg_b = RulesConfig(table="raftkube_pa"), RulesConfig(table="raftkube_pb")
    a1, a2 = render_table(first, cfg_a), render_table(second, cfg_a)
    cluster.run(netns, ["nft", "-f", "-"], input=full_script(a1))
    for step in update_steps(a1, a2):  # applied apart, as the service proxy does
        cluster.run(netns, ["nft", "-f", "-"], input=step)
    cluster.run(netns, ["nft", "-f", "-"], input=full_script(render_table(second, cfg_b)))
    assert _listing(cluster, netns, "raftkube_pa") == _listing(cluster, netns, "raftkube_pb")


paths = st.lists(st.sampled_from(["a", "b", "ab", "c"]), max_size=3).map(
    lambda parts: "/" + "/".join(parts))


def _brute_force(ingresses: list[Ingress], host: str, path: str) -> BackendRef | None:
    def host_rank(rule_host: str) -> int | None:
        if rule_host == host:
            return 0
        if rule_host.startswith("*.") and "." in host and host.split(".", 1)[1] == \
                rule_host[2:]:
            return 1
        if rule_host == "":
            return 2
        return None

    best: tuple[int, int, int] | None = None
    found = None
    for ing in sorted(ingresses, key=lambda i: (i.namespace, i.name)):
        for rule in ing.rules:
            rank = host_rank(rule.host)
            if rank is None:
                continue
            for p in rule.paths:
                exact = p.path_type == "Exact"
                if exact:
                    ok, length = path == p.path, len(p.path)
                else:
                    pre = [x for x in p.path.split("/") if x]
                    got = [x for x in path.split("/") if x]
                    ok, length = got[:len(pre)] == pre, len(p.path.rstrip("/"))
                if ok:
                    key = (rank, -length, 0 if exact else 1)
                    if best is None or key < best:
                        best, found = key, p.backend
    if found is not None:
        return found
    for ing in sorted(ingresses, key=lambda i: (i.namespace, i.name)):
        if ing.default_backend is not None:
            return ing.default_backend
    return None


@st.composite
def ingress_sets(draw: st.DrawFn) -> list[Ingress]:
    out = []
    counter = 0
    for i in range(draw(st.integers(1, 3))):
        rules = []
        for _ in range(draw(st.integers(0, 3))):
            host = draw(st.sampled_from(["", "x.test", "*.test", "y.x.test", "*.x.test"]))
            ipaths = []
            for _ in range(draw(st.integers(1, 3))):
                counter += 1
                ipaths.append(IngressPath(draw(paths), draw(st.sampled_from(
                    ["Prefix", "Exact"])), BackendRef("d", f"s{counter}", 80)))
            rules.append(IngressRule(host, tuple(ipaths)))
        default = BackendRef("d", f"default{i}", 80) if draw(st.booleans()) else None
        out.append(Ingress("d", f"ing{i}", tuple(rules), default))
    return out


@settings(max_examples=300, deadline=None)
@given(ingress_sets(), st.sampled_from(["x.test", "y.x.test", "z.test", "other"]), paths)
def test_route_matching_agrees_with_brute_force(ingresses: list[Ingress], host: str,
                                                path: str) -> None:
    # ties (same host rank, length and type) go to the first rule in (namespace, name,
    # rule, path) order in both readings
    assert match_route(build_route_table(ingresses), host, path) == _brute_force(
        ingresses, host, path)
