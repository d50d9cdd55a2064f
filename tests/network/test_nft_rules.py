"""Pure tests of the rendered nftables table, plus nft's own syntax check (nft -c)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from raftkube.workers.network.model import (
    Endpoint,
    ModelError,
    ProxyModel,
    Service,
    ServicePort,
)
from raftkube.workers.network.nft_rules import (
    RenderedTable,
    RulesConfig,
    full_script,
    render_table,
    update_steps,
)

CFG = RulesConfig(table="raftkube_t1", cluster_cidr="10.244.0.0/16",
                  service_cidr="10.96.0.0/16")


def web(endpoints: tuple[Endpoint, ...], **kw: object) -> Service:
    return Service(namespace="default", name="web", cluster_ip="10.96.0.10",
                   ports=(ServicePort(port=80, target_port=8080, name="http",
                                      node_port=30080),),
                   endpoints=endpoints, type="NodePort", **kw)  # type: ignore[arg-type]


EPS = (Endpoint("10.244.1.2"), Endpoint("10.244.2.3", ports=(("http", 9090),)))


def test_service_with_two_endpoints_gets_vmap_numgen_and_dnat_per_endpoint() -> None:
    body = render_table(ProxyModel((web(EPS),)), CFG).body
    assert "10.96.0.10 . tcp . 80 : goto svc_default_web_http_TCP_" in body
    assert "numgen random mod 2 vmap { 0 : goto ep_" in body
    assert "meta l4proto tcp dnat to 10.244.1.2:8080" in body
    assert "meta l4proto tcp dnat to 10.244.2.3:9090" in body  # named port override
    assert "ip saddr 10.244.1.2 jump mark_for_masquerade" in body  # hairpin
    assert "tcp . 30080 : goto ext_default_web_http_TCP_" in body
    assert "ip saddr != 10.244.0.0/16 jump mark_for_masquerade" in body
    assert "type nat hook output priority -100" in body
    assert "type nat hook prerouting priority dstnat" in body
    assert "ip daddr 10.96.0.0/16 goto reject_unserved" in body


def test_no_endpoints_means_no_dnat_and_rejection_of_ip_and_node_port() -> None:
    body = render_table(ProxyModel((web(()),)), CFG).body
    assert "dnat" not in body
    assert "elements = { 10.96.0.10 }" in body  # cluster_ips set -> reject
    assert "elements = { tcp . 30080 }" in body  # no_endpoint_node_ports
    assert "reject with tcp reset" in body


def test_client_ip_affinity_uses_timed_sets() -> None:
    body = render_table(ProxyModel((web(EPS, session_affinity="ClientIP",
                                        affinity_timeout_s=60),)), CFG).body
    assert body.count("flags dynamic,timeout; timeout 60s;") == 2
    assert body.count("update @aff_") == 2
    assert "ip saddr @aff_" in body


def test_render_is_deterministic_and_order_independent() -> None:
    other = Service(namespace="kube-system", name="dns", cluster_ip="10.96.0.53",
                    ports=(ServicePort(53, 53, "UDP", "dns"),), endpoints=(Endpoint("10.244.1.9"),))
    a = render_table(ProxyModel((web(EPS), other)), CFG)
    b = render_table(ProxyModel((other, web(tuple(reversed(EPS))))), CFG)
    assert a == b
    assert "meta l4proto udp dnat to 10.244.1.9:53" in a.body


def test_headless_service_is_not_programmed() -> None:
    svc = Service(namespace="default", name="db", cluster_ip=None,
                  ports=(ServicePort(5432, 5432),), endpoints=(Endpoint("10.244.1.4"),))
    body = render_table(ProxyModel((svc,)), CFG).body
    assert "10.244.1.4" not in body


def update_script(previous: RenderedTable, new: RenderedTable) -> str:
    """All steps as one text, for assertions on what an update touches."""
    return "".join(update_steps(previous, new))


def test_update_touches_only_what_changed() -> None:
    other = Service("default", "api", "10.96.0.20", ports=(ServicePort(80, 8080),),
                    endpoints=(Endpoint("10.244.3.3"),))
    old = render_table(ProxyModel((web(EPS, session_affinity="ClientIP"), other)), CFG)
    new = render_table(ProxyModel((web(EPS[:1], session_affinity="ClientIP"), other)), CFG)
    script = update_script(old, new)
    assert "flush table" not in script
    assert "10.244.3.3" not in script  # the unchanged service is not touched
    gone = set(old.affinity_sets) - set(new.affinity_sets)
    assert len(gone) == 1
    assert script.rstrip().endswith(f"delete set ip raftkube_t1 {next(iter(gone))}")
    kept = next(iter(new.affinity_sets))
    assert kept not in script.split("delete set")[0].split("add rule")[0]
    assert "delete chain ip raftkube_t1 ep_" in script
    old_svc = next(c for c in old.chains if c.startswith("svc_default_web"))
    new_svc = next(c for c in new.chains if c.startswith("svc_default_web"))
    assert old_svc != new_svc  # named by content: replaced, never flushed and refilled
    assert f"flush chain ip raftkube_t1 {new_svc}" not in script
    assert update_script(new, new) == ""
    # endpoints back: the chain of the new endpoint is added before rules refer to it
    back = update_script(new, old)
    assert back.index("add chain ip raftkube_t1 ep_") < back.index("numgen")
    # no endpoints any more: the map element goes, the cluster IP stays in the reject set
    empty = render_table(ProxyModel((web(()), other)), CFG)
    script = update_script(new, empty)
    assert "delete element ip raftkube_t1 service_ips { 10.96.0.10 . tcp . 80 }" in script
    assert "add element ip raftkube_t1 no_endpoint_node_ports { tcp . 30080 }" in script


def _lines(step: str) -> list[str]:
    return [line for line in step.splitlines() if line]


@pytest.mark.parametrize(("before", "after"), [
    (EPS, EPS[:1]), (EPS[:1], EPS), (EPS, EPS[1:]), (EPS[:1], EPS[1:]), (EPS, ()), ((), EPS)])
def test_update_steps_add_then_switch_then_remove(before, after) -> None:
    """A packet classified while a step commits may see the rules of one generation and
    the set elements of the other; each step is built so that both lead to a DNAT."""
    for affinity in ("None", "ClientIP"):
        old = render_table(ProxyModel((web(before, session_affinity=affinity),)), CFG)
        new = render_table(ProxyModel((web(after, session_affinity=affinity),)), CFG)
        steps = update_steps(old, new)
        kinds = []
        for step in steps:
            lines = _lines(step)
            if all(line.startswith(("add chain", "add set", "add rule")) for line in lines):
                # only what does not exist yet, and nothing that exists refers to it yet
                assert all(line.split()[3] not in old.chains and
                           line.split()[3] not in old.affinity_sets for line in lines)
                kinds.append("add")
            elif all(line.startswith(("flush chain", "delete chain", "delete set"))
                     for line in lines):
                assert all(line.split()[3] not in new.chains and
                           line.split()[3] not in new.affinity_sets for line in lines)
                kinds.append("remove")
            else:
                kinds.append("switch")
                # no balancing rule (numgen ... vmap) is ever rewritten in place
                flushed = [line.split()[3] for line in lines if line.startswith("flush")]
                assert not any("vmap" in rule for c in flushed for rule in new.chains[c])
                assert not any(line.startswith(("add chain", "delete chain"))
                               for line in lines)
        assert kinds == sorted(kinds, key=["add", "switch", "remove"].index)
        assert len(kinds) == len(set(kinds))


def test_a_service_chain_is_named_by_its_rules() -> None:
    one = render_table(ProxyModel((web(EPS),)), CFG)
    two = render_table(ProxyModel((web(EPS),)), CFG)
    other = render_table(ProxyModel((web(EPS[:1]),)), CFG)
    names = {c for c in one.chains if c.startswith(("svc_", "ext_"))}
    assert names == {c for c in two.chains if c.startswith(("svc_", "ext_"))}
    assert len(names) == 2
    assert names.isdisjoint(c for c in other.chains if c.startswith(("svc_", "ext_")))


@pytest.mark.parametrize(("svc", "message"), [
    (Service("default", "a", "10.96.0.300", (ServicePort(80, 80),)),
     r"services\[default/a\]\.cluster_ip: '10.96.0.300' is not an IPv4 address"),
    (Service("default", "a", "10.96.0.3", (ServicePort(70000, 80),)),
     r"services\[default/a\]\.ports\[0\]\.port: 70000"),
    (Service("default", "a", "10.96.0.3", (ServicePort(80, 80, "ICMP"),)),
     r"services\[default/a\]\.ports\[0\]\.protocol"),
    (Service("default", "a", "10.96.0.3", (ServicePort(80, 80, node_port=30001),)),
     r"node_port: set on a ClusterIP service"),
    (Service("default", "a", "10.96.0.3", (ServicePort(80, 80),),
             endpoints=(Endpoint("pod-a"),)),
     r"services\[default/a\]\.endpoints\[0\]\.ip"),
])
def test_bad_input_names_the_field(svc: Service, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        render_table(ProxyModel((svc,)), CFG)


def test_two_services_on_one_vip_port_is_an_error() -> None:
    a = Service("default", "a", "10.96.0.3", (ServicePort(80, 80),))
    b = Service("default", "b", "10.96.0.3", (ServicePort(80, 81),))
    with pytest.raises(ModelError, match=r"already used by services\[default/a\]"):
        render_table(ProxyModel((a, b)), CFG)


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed")
def test_nft_accepts_the_scripts() -> None:
    """nft -c parses and validates the scripts without applying them."""
    m1 = ProxyModel((web(EPS, session_affinity="ClientIP"),))
    m2 = ProxyModel((web(EPS[:1]),))
    r1, r2 = render_table(m1, CFG), render_table(m2, CFG)
    local = RulesConfig(table="raftkube_t2", node_ports_on_localhost=True,
                        node_port_addresses=("192.168.1.5",), balancing="round_robin")
    for script in (full_script(r1), full_script(render_table(ProxyModel(()), CFG)),
                   full_script(render_table(m1, local))):
        proc = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
    assert "flush table" not in update_script(r1, r2)


def test_stale_udp_flows_are_those_of_removed_endpoints() -> None:
    from raftkube.workers.network.service_proxy import stale_udp_flows

    def dns(*ips: str) -> ProxyModel:
        return ProxyModel((Service("kube-system", "dns", "10.96.0.53",
                                   ports=(ServicePort(53, 53, "UDP", "dns"),
                                          ServicePort(53, 53, "TCP", "tcp")),
                                   endpoints=tuple(Endpoint(ip) for ip in ips)),))

    assert stale_udp_flows(None, dns("10.244.1.2")) == []
    assert stale_udp_flows(dns(), dns("10.244.1.2")) == []
    assert stale_udp_flows(dns("10.244.1.2", "10.244.1.3"), dns("10.244.1.3")) == [
        ("10.96.0.53", 53, "10.244.1.2")]
    assert stale_udp_flows(dns("10.244.1.2"), dns("10.244.1.2")) == []
    assert stale_udp_flows(dns("10.244.1.2"), ProxyModel(())) == [
        ("10.96.0.53", 53, "10.244.1.2")]
