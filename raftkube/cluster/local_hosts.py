"""Worker "hosts" on one machine for `raftkube up`: a network namespace per host on a
bridge in the root namespace, persistent until `destroy_hosts`.

```
 root namespace:  bridge rkupN  (GATEWAY = .1 of the cluster's host subnet)
                    masters listen on GATEWAY:ports; raftkubectl reaches everything
                      |             |
                 veth rkupNhw1  veth rkupNhw2
                      |             |
 namespaces:     rkupN-w1       rkupN-w2      eth0 = .11, .12 ...; default route GATEWAY
```

Contract: `create_hosts` either creates everything or removes what it made and raises;
`destroy_hosts` is idempotent and removes only what the state names. Traffic stays on
this machine: the subnet is private and nothing routes it elsewhere.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass


class HostsError(RuntimeError):
    """A namespace or link command failed; the message names it and its stderr."""


@dataclass(frozen=True)
class LocalHost:
    """One worker host: its namespace, address and the root side of its veth."""

    name: str
    netns: str
    address: str
    root_veth: str


@dataclass(frozen=True)
class LocalHosts:
    """What `create_hosts` made (persisted in the cluster state file)."""

    bridge: str
    subnet: str
    gateway: str
    hosts: tuple[LocalHost, ...]

    def to_dict(self) -> dict:
        return {**asdict(self), "hosts": [asdict(h) for h in self.hosts]}

    @classmethod
    def from_dict(cls, data: dict) -> LocalHosts:
        return cls(data["bridge"], data["subnet"], data["gateway"],
                   tuple(LocalHost(**h) for h in data["hosts"]))


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise HostsError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network routed or addressed on this machine."""
    out = []
    for args in (["ip", "-j", "-4", "route", "show", "table", "all"],
                 ["ip", "-j", "-4", "addr"]):
        for item in json.loads(_run(args).stdout or "[]"):
            if "addr_info" in item:
                for a in item["addr_info"]:
                    out.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}",
                                                    strict=False))
            elif item.get("dst") not in (None, "default"):
                try:
                    out.append(ipaddress.ip_network(item["dst"], strict=False))
                except ValueError:
                    continue
    return out


def pick_subnet(avoid: Sequence[ipaddress.IPv4Network] = ()) -> ipaddress.IPv4Network:
    """A /24 in 172.31.0.0/16 that overlaps nothing on this machine."""
    taken = [*used_networks(), *avoid]
    for third in range(200, 256):
        candidate = ipaddress.ip_network(f"172.31.{third}.0/24")
        if not any(candidate.overlaps(n) for n in taken):
            return candidate
    raise HostsError("no free 172.31.200-255.0/24 subnet for the cluster's hosts")


def create_hosts(prefix: str, names: Sequence[str],
                 subnet: ipaddress.IPv4Network | None = None) -> LocalHosts:
    """A bridge `prefix` and one namespace per name (`prefix-NAME`) on it."""
    net = subnet or pick_subnet()
    gateway = str(net.network_address + 1)
    made = LocalHosts(prefix, str(net), gateway, ())
    try:
        _run(["ip", "link", "add", prefix, "type", "bridge"])
        _run(["ip", "addr", "add", f"{gateway}/{net.prefixlen}", "dev", prefix])
        _run(["ip", "link", "set", prefix, "up"])
        hosts = []
        for i, name in enumerate(names):
            host = LocalHost(name, f"{prefix}-{name}", str(net.network_address + 11 + i),
                             f"{prefix}h{i}")
            hosts.append(host)
            made = LocalHosts(prefix, str(net), gateway, tuple(hosts))
            _add_host(host, gateway, net.prefixlen)
        return made
    except BaseException:
        destroy_hosts(made)
        raise


def _add_host(host: LocalHost, gateway: str, prefixlen: int) -> None:
    _run(["ip", "netns", "add", host.netns])
    peer = f"{host.root_veth}p"
    _run(["ip", "link", "add", host.root_veth, "type", "veth", "peer", "name", peer])
    _run(["ip", "link", "set", peer, "netns", host.netns])
    _run(["ip", "link", "set", host.root_veth, "master", _bridge_of(host), "up"])
    ns = ["ip", "-n", host.netns]
    _run([*ns, "link", "set", peer, "name", "eth0"])
    _run([*ns, "addr", "add", f"{host.address}/{prefixlen}", "dev", "eth0"])
    _run([*ns, "link", "set", "eth0", "up"])
    _run([*ns, "link", "set", "lo", "up"])
    _run([*ns, "route", "add", "default", "via", gateway])
    _run(["nsenter", f"--net=/run/netns/{host.netns}", "sysctl", "-qw",
          "net.ipv4.ip_forward=1"])


def _bridge_of(host: LocalHost) -> str:
    return host.netns[: -(len(host.name) + 1)]


def destroy_hosts(hosts: LocalHosts) -> None:
    """Delete the namespaces, veths and the bridge named in `hosts`. Idempotent."""
    for host in hosts.hosts:
        _run(["ip", "netns", "del", host.netns], check=False)
        _run(["ip", "link", "del", host.root_veth], check=False)
    _run(["ip", "link", "del", hosts.bridge], check=False)
