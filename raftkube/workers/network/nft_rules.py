"""Pure: the nftables table that implements Services on one node (kube-proxy nftables idea).

`render_table(model, config)` returns a `RenderedTable`: the table body plus the names of
its chains, maps and sets. `full_script` turns it into one `nft -f` transaction that
replaces the table; `update_script` turns (previous, new) into one transaction that
rewrites every rule and map but keeps the ClientIP affinity sets that still exist, so
clients stay on their endpoint across updates.

Packet path (all inside `table ip <name>`)::

    prerouting (dstnat) --+
                          +--> services: daddr.proto.dport vmap @service_ips --> svc_*
    output (-100) --------+              local daddr: proto.dport vmap @node_ports --> ext_*
    ext_*: mark for masquerade, goto svc_*
    svc_*: [non-cluster source: mark] [affinity: saddr in @aff_* -> goto ep_*]
           numgen random|inc mod N vmap {i: goto ep_*}
    ep_*:  [saddr == endpoint: mark (hairpin)] [update @aff_*] dnat to IP:PORT
    postrouting (srcnat): marked -> masquerade
    filter input/forward (-110), output (-90, after output dnat), new connections only:
           still addressed to a cluster IP / the service range / a node port without
           endpoints -> reject (tcp reset, else icmp port unreachable)
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

from raftkube.workers.network.model import (
    ProxyModel,
    Service,
    ServicePort,
    validate_services,
)

_NFT_PROTO = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True)
class RulesConfig:
    """Node-wide settings of the rendered table.

    table: nft table name (family ip); unique per proxy instance.
    masquerade_mark: the packet mark bit that asks postrouting to masquerade.
    cluster_cidr: pod range; cluster-IP traffic from outside it is masqueraded so replies
        come back through this node. "" = never masquerade cluster-IP traffic by source.
    service_cidr: service range; traffic to an unassigned address in it is rejected.
        "" = no range-wide reject (assigned cluster IPs are always rejected when unserved).
    node_port_addresses: addresses NodePorts answer on; empty = every local address
        except 127.0.0.0/8 (`fib daddr type local`).
    balancing: "random" (numgen random) or "round_robin" (numgen inc).
    node_ports_on_localhost: also answer NodePorts on 127.0.0.1 for processes of the node
        itself (output hook only; needs net.ipv4.conf.all.route_localnet=1, which
        ServiceProxy sets; the traffic is masqueraded so replies can come back).
    """

    table: str = "raftkube_proxy"
    masquerade_mark: int = 0x4000
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    node_port_addresses: tuple[str, ...] = ()
    balancing: str = "random"
    node_ports_on_localhost: bool = False


@dataclass(frozen=True)
class RenderedTable:
    """The rendered table: its body and the object names it declares."""

    table: str
    body: str
    chains: frozenset[str]
    maps: frozenset[str]
    sets: frozenset[str]
    affinity_sets: frozenset[str]


def _ident(*parts: str) -> str:
    """A readable nft identifier with a hash suffix (unique, <= 60 chars)."""
    raw = "_".join(parts)
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9_]", "_", raw)[:40]
    return f"{readable}_{digest}"


def _port_key(port: ServicePort) -> str:
    return port.name or str(port.port)


class _Builder:
    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        self.mark = f"0x{config.masquerade_mark:x}"
        self.sets: dict[str, list[str]] = {}
        self.maps: dict[str, list[str]] = {}
        self.chains: dict[str, list[str]] = {}
        self.affinity: dict[str, int] = {}
        self.service_ip_elems: list[str] = []
        self.node_port_elems: list[str] = []
        self.no_endpoint_node_ports: list[str] = []
        self.cluster_ips: set[str] = set()

    def add_service_port(self, svc: Service, port: ServicePort) -> None:
        proto = _NFT_PROTO[port.protocol]
        assert svc.cluster_ip is not None
        self.cluster_ips.add(svc.cluster_ip)
        if not svc.endpoints:
            if port.node_port:
                self.no_endpoint_node_ports.append(f"{proto} . {port.node_port}")
            return
        kind = f"{svc.namespace}_{svc.name}_{_port_key(port)}"
        svc_chain = "svc_" + _ident(kind, port.protocol)
        ep_chains: list[str] = []
        affinity_rules: list[str] = []
        for ep in sorted(svc.endpoints, key=lambda e: (e.ip, e.port_for(port))):
            target = ep.port_for(port)
            ep_chain = "ep_" + _ident(kind, port.protocol, ep.ip, str(target))
            rules = [f"ip saddr {ep.ip} jump mark_for_masquerade"]
            if svc.session_affinity == "ClientIP":
                aff = "aff_" + _ident(kind, port.protocol, ep.ip, str(target),
                                      str(svc.affinity_timeout_s))
                self.affinity[aff] = svc.affinity_timeout_s
                affinity_rules.append(f"ip saddr @{aff} goto {ep_chain}")
                rules.append(f"update @{aff} {{ ip saddr }}")
            rules.append(f"meta l4proto {proto} dnat to {ep.ip}:{target}")
            self.chains[ep_chain] = rules
            ep_chains.append(ep_chain)
        svc_rules: list[str] = []
        if self.config.cluster_cidr:
            svc_rules.append(
                f"ip saddr != {self.config.cluster_cidr} jump mark_for_masquerade")
        svc_rules.extend(affinity_rules)
        gen = "inc" if self.config.balancing == "round_robin" else "random"
        if len(ep_chains) == 1:
            svc_rules.append(f"goto {ep_chains[0]}")
        else:
            arms = ", ".join(f"{i} : goto {c}" for i, c in enumerate(ep_chains))
            svc_rules.append(f"numgen {gen} mod {len(ep_chains)} vmap {{ {arms} }}")
        self.chains[svc_chain] = svc_rules
        self.service_ip_elems.append(
            f"{svc.cluster_ip} . {proto} . {port.port} : goto {svc_chain}")
        if port.node_port:
            ext_chain = "ext_" + _ident(kind, port.protocol)
            self.chains[ext_chain] = ["jump mark_for_masquerade", f"goto {svc_chain}"]
            self.node_port_elems.append(f"{proto} . {port.node_port} : goto {ext_chain}")

    def finish(self) -> RenderedTable:
        cfg = self.config
        mark = self.mark
        local = ("ip daddr @node_port_ips" if cfg.node_port_addresses
                 else "fib daddr type local ip daddr != 127.0.0.0/8")
        self.maps["service_ips"] = [
            "type ipv4_addr . inet_proto . inet_service : verdict", *_elements(
                self.service_ip_elems)]
        self.maps["node_ports"] = [
            "type inet_proto . inet_service : verdict", *_elements(self.node_port_elems)]
        self.sets["cluster_ips"] = ["type ipv4_addr", *_elements(sorted(
            self.cluster_ips, key=ipaddress.IPv4Address))]
        self.sets["no_endpoint_node_ports"] = [
            "type inet_proto . inet_service", *_elements(sorted(self.no_endpoint_node_ports))]
        if cfg.node_port_addresses:
            self.sets["node_port_ips"] = ["type ipv4_addr", *_elements(
                list(cfg.node_port_addresses))]
        base = {
            "nat_prerouting": ["type nat hook prerouting priority dstnat; policy accept;",
                               "jump services"],
            "nat_output": ["type nat hook output priority -100; policy accept;",
                           "jump services", *(
                               ["ip daddr 127.0.0.1 meta l4proto . th dport vmap @node_ports"]
                               if cfg.node_ports_on_localhost else [])],
            "nat_postrouting": ["type nat hook postrouting priority srcnat; policy accept;",
                                "jump masquerading"],
            "filter_input": ["type filter hook input priority -110; policy accept;",
                             "ct state new jump node_port_check"],
            "filter_forward": ["type filter hook forward priority -110; policy accept;",
                               "ct state new jump service_check"],
            "filter_output": ["type filter hook output priority -90; policy accept;",
                              "ct state new jump service_check",
                              f"ct state new {local} jump node_port_check", *(
                                  ["ct state new ip daddr 127.0.0.1 jump node_port_check"]
                                  if cfg.node_ports_on_localhost else [])],
        }
        helpers = {
            "services": ["ip daddr . meta l4proto . th dport vmap @service_ips",
                         f"{local} meta l4proto . th dport vmap @node_ports"],
            "mark_for_masquerade": [f"meta mark set meta mark | {mark}"],
            "masquerading": [f"meta mark & {mark} == 0 return",
                             f"meta mark set meta mark ^ {mark}",
                             "masquerade fully-random"],
            "service_check": ["ip daddr @cluster_ips goto reject_unserved"],
            "node_port_check": [
                "meta l4proto . th dport @no_endpoint_node_ports goto reject_unserved"],
            "reject_unserved": ["meta l4proto tcp reject with tcp reset", "reject"],
        }
        if cfg.service_cidr:
            helpers["service_check"].append(f"ip daddr {cfg.service_cidr} goto reject_unserved")
        chains = {**base, **helpers, **dict(sorted(self.chains.items()))}
        lines = [f"table ip {cfg.table} {{"]
        for name, timeout in sorted(self.affinity.items()):
            lines += [f"  set {name} {{", "    type ipv4_addr; flags dynamic,timeout; "
                      f"timeout {timeout}s;", "  }"]
        for kind, objs in (("set", self.sets), ("map", self.maps)):
            for name, body in objs.items():
                lines += [f"  {kind} {name} {{", *(f"    {b}" for b in body), "  }"]
        for name, body in chains.items():
            lines += [f"  chain {name} {{", *(f"    {b}" for b in body), "  }"]
        lines.append("}")
        return RenderedTable(
            table=cfg.table, body="\n".join(lines) + "\n", chains=frozenset(chains),
            maps=frozenset(self.maps), sets=frozenset(self.sets),
            affinity_sets=frozenset(self.affinity))


def _elements(items: list[str]) -> list[str]:
    return [f"elements = {{ {', '.join(items)} }}"] if items else []


def render_table(model: ProxyModel, config: RulesConfig) -> RenderedTable:
    """The desired table for `model`. Deterministic: same input, same text.

    Raises ModelError (naming the field) for unusable input and ValueError for a bad
    config. Headless services and ports of services without ready endpoints produce no
    DNAT; their cluster IPs (and node ports) are rejected instead.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", config.table):
        raise ValueError(f"RulesConfig.table: {config.table!r} is not a plain nft name")
    if config.balancing not in ("random", "round_robin"):
        raise ValueError(f"RulesConfig.balancing: {config.balancing!r} is not "
                         "'random' or 'round_robin'")
    for field_name in ("cluster_cidr", "service_cidr"):
        value = getattr(config, field_name)
        if value:
            try:
                ipaddress.IPv4Network(value)
            except ValueError as exc:
                raise ValueError(f"RulesConfig.{field_name}: {value!r}: {exc}") from exc
    validate_services(model.services)
    builder = _Builder(config)
    for svc in sorted(model.services, key=lambda s: s.key):
        if svc.headless:
            continue
        for port in svc.ports:
            builder.add_service_port(svc, port)
    return builder.finish()


def full_script(new: RenderedTable) -> str:
    """One transaction that replaces the table (creating it if absent)."""
    return f"table ip {new.table} {{\n}}\ndelete table ip {new.table}\n{new.body}"


def update_script(previous: RenderedTable, new: RenderedTable) -> str:
    """One transaction from `previous` (what is in the kernel) to `new`.

    Rules, maps and plain sets are rewritten; affinity sets present in both are kept with
    their entries; objects only in `previous` are deleted.
    """
    if previous.table != new.table:
        raise ValueError("update_script: tables differ; use full_script")
    t = new.table
    lines = [f"flush table ip {t}"]
    lines += [f"flush map ip {t} {m}" for m in sorted(previous.maps & new.maps)]
    lines += [f"flush set ip {t} {s}" for s in sorted(previous.sets & new.sets)]
    lines += [f"delete map ip {t} {m}" for m in sorted(previous.maps - new.maps)]
    lines += [f"delete set ip {t} {s}" for s in sorted(previous.sets - new.sets)]
    lines += [f"delete chain ip {t} {c}" for c in sorted(previous.chains - new.chains)]
    lines += [f"delete set ip {t} {s}"
              for s in sorted(previous.affinity_sets - new.affinity_sets)]
    return "\n".join(lines) + "\n" + new.body
