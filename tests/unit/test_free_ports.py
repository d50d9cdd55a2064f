"""raftkube.testing.ports: ports for test servers, out of connect()'s reach."""

from __future__ import annotations

import itertools
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
        # the random draw offers the busy port twice, then ports from 21000 up
        draws = itertools.chain([busy - 10000] * 2, range(11000, 12000))
        monkeypatch.setattr(ports, "ephemeral_range_start", lambda: 65536)
        monkeypatch.setattr(ports.secrets, "randbelow", lambda _n: next(draws))
        picked = ports.free_port()
        assert picked != busy
        assert 21000 <= picked < 22000


def test_the_ephemeral_range_is_read_from_the_kernel() -> None:
    with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
        assert ports.ephemeral_range_start() == int(f.read().split()[0])
