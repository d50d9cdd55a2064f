"""raftkube.testing.ports: ports for test servers, out of connect()'s reach."""

from __future__ import annotations

import socket

import pytest

from raftkube.testing import ports


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    picked = ports.free_ports(30)
    assert len(set(picked)) == 30
    start = ports.ephemeral_range_start()
    assert all(10000 <= p < start for p in picked)
    for p in picked:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        candidates = iter([busy - 10000, busy - 10000, 21000 - 10000])
        monkeypatch.setattr(ports, "ephemeral_range_start", lambda: 65000)
        monkeypatch.setattr(ports.secrets, "randbelow", lambda _n: next(candidates))
        if busy >= 65000:
            pytest.skip("the kernel picked a port above the patched range")
        # 21000 itself might be taken on this machine: then the fallback (port 0) runs
        assert ports.free_port() != busy


def test_the_ephemeral_range_is_read_from_the_kernel() -> None:
    with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
        assert ports.ephemeral_range_start() == int(f.read().split()[0])
