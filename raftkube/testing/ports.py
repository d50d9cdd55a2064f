"""Free TCP ports for test servers, picked where no outgoing connection can take them.

A port found by binding port 0 comes from the kernel's ephemeral range, the same range
every outgoing connection on the machine draws its local port from. Between closing the
probe socket and the server binding the port, any connect() may take it ("Address
already in use"). The ports here are picked at random below that range, which connect()
never uses, and checked by binding them; only another test picking the same port in the
same moment could collide, and the random choice makes that unlikely.
"""

from __future__ import annotations

import secrets
import socket

_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_LOWEST = 10000  # above the well-known ports and most registered service ports


def ephemeral_range_start() -> int:
    """The first port of the kernel's ephemeral range (32768 when it cannot be read)."""
    try:
        with open(_RANGE_FILE, encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports free on `host` now, below the ephemeral range. The
    probe sockets stay open until all are picked, so no port is handed out twice. Falls
    back to kernel-picked ports only when the range below is exhausted (it never is in
    practice); raises OSError when `host` cannot be bound at all."""
    top = ephemeral_range_start()
    span = max(top - _LOWEST, 1)
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        attempts = 0
        while len(ports) < count:
            attempts += 1
            probe = socket.socket()
            held.append(probe)
            if attempts > 50 * count:
                probe.bind((host, 0))
            else:
                port = _LOWEST + secrets.randbelow(span)
                try:
                    probe.bind((host, port))
                except OSError:
                    continue
            ports.append(int(probe.getsockname()[1]))
        return ports
    finally:
        for probe in held:
            probe.close()


def free_port(host: str = "127.0.0.1") -> int:
    """One TCP port free on `host` now, below the ephemeral range (see free_ports)."""
    return free_ports(1, host)[0]
