"""A throw-away lab of hosts in network namespaces for the chaos tests.

One "switch" namespace holds a bridge; each host namespace has one veth into it and an
address 10.231.0.N/24 (private, and only inside these namespaces: the root namespace is
never touched). Names carry a random prefix per lab; everything is deleted on exit, also
when the test fails.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Iterator

from raftkube.testing.chaos.nemesis import Host, run_in_netns


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@contextlib.contextmanager
def netns_lab(count: int) -> Iterator[dict[str, Host]]:
    """`count` hosts n1..nN on 10.231.0.0/24 behind a bridge; all removed on exit."""
    prefix = f"rk-{secrets.token_hex(3)}"
    created: list[str] = []
    try:
        switch = f"{prefix}-sw"
        _ip("netns", "add", switch)
        created.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        hosts = {}
        for i in range(1, count + 1):
            ns = f"{prefix}-n{i}"
            _ip("netns", "add", ns)
            created.append(ns)
            _ip("-n", switch, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            _ip("-n", switch, "link", "set", f"p{i}", "master", "br0")
            _ip("-n", switch, "link", "set", f"p{i}", "up")
            _ip("-n", ns, "addr", "add", f"10.231.0.{i}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            hosts[f"n{i}"] = Host(ns, (f"10.231.0.{i}",))
        yield hosts
    finally:
        for ns in reversed(created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert prefix not in left, f"namespaces left behind: {left}"


def can_ping(src: Host, dst: Host, timeout_s: int = 1) -> bool:
    proc = run_in_netns(src.netns, ["busybox", "ping", "-c", "1", "-W", str(timeout_s),
                                    dst.addresses[0]], check=False)
    return proc.returncode == 0


def reachability(hosts: dict[str, Host]) -> set[tuple[str, str]]:
    return {(a, b) for a in hosts for b in hosts if a != b and can_ping(hosts[a], hosts[b])}


def wait_reachable(hosts: dict[str, Host], deadline_s: float = 10) -> None:
    end = time.monotonic() + deadline_s
    everything = {(a, b) for a in hosts for b in hosts if a != b}
    while reachability(hosts) != everything:
        assert time.monotonic() < end, "lab hosts never reached each other"
        time.sleep(0.2)


