"""The multi-host harness itself: addresses, reachability, partition, cleanup."""

from __future__ import annotations

import subprocess
import sys

import pytest

from raftkube.testing.netns import (
    DelayUnsupportedError,
    NetnsCluster,
    NetnsConfig,
    netem_available,
    reap_orphaned_runs,
)

pytestmark = pytest.mark.netns

CONNECT = (
    "import socket,sys\n"
    "s=socket.socket(); s.settimeout(float(sys.argv[3]))\n"
    "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('ok')\n"
    "except OSError as e:\n    print('fail', type(e).__name__)\n"
)


def _listen(cluster: NetnsCluster, netns: str, port: int) -> subprocess.Popen:
    return cluster.start_echo_http(netns, port, f"{netns}:{port}")


def _connect(cluster: NetnsCluster, netns: str, ip: str, port: int, timeout: float = 2) -> str:
    return cluster.run(netns, [sys.executable, "-c", CONNECT, ip, str(port),
                               str(timeout)]).stdout.strip()


def _wait_connect(cluster: NetnsCluster, netns: str, ip: str, port: int) -> str:
    for _ in range(50):
        out = _connect(cluster, netns, ip, port, 1)
        if out == "ok":
            return out
    return out


def test_hosts_reach_each_other_and_partition_heals(netns_cluster: NetnsCluster) -> None:
    h0, h1, h2 = netns_cluster.hosts
    assert len({h.address for h in netns_cluster.hosts}) == 3
    _listen(netns_cluster, h1.netns, 7000)
    assert _wait_connect(netns_cluster, h0.netns, h1.address, 7000) == "ok"
    netns_cluster.partition(h0, [h1.address])
    assert _connect(netns_cluster, h0.netns, h1.address, 7000, 1).startswith("fail")
    _listen(netns_cluster, h2.netns, 7000)
    assert _wait_connect(netns_cluster, h0.netns, h2.address, 7000) == "ok"
    netns_cluster.heal(h0)
    assert _wait_connect(netns_cluster, h0.netns, h1.address, 7000) == "ok"


def test_pod_reaches_its_own_host_and_teardown_removes_everything() -> None:
    cluster = NetnsCluster(NetnsConfig(hosts=1)).setup()
    try:
        host = cluster.hosts[0]
        pod = cluster.add_pod(host)
        _listen(cluster, pod.netns, 7001)
        assert _wait_connect(cluster, host.netns, pod.ip, 7001) == "ok"
        names = [host.netns, pod.netns]
        bridge = cluster.bridge
    finally:
        cluster.teardown()
    cluster.teardown()  # idempotent
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert bridge not in links


def test_delay_either_works_or_says_netem_is_missing(netns_cluster: NetnsCluster) -> None:
    host = netns_cluster.hosts[0]
    if netem_available():
        netns_cluster.add_delay(host, 5)
        out = netns_cluster.run(host.netns, ["tc", "qdisc", "show", "dev", "eth0"]).stdout
        assert "netem" in out
        netns_cluster.clear_delay(host)
    else:
        with pytest.raises(DelayUnsupportedError, match="netem"):
            netns_cluster.add_delay(host, 5)


def test_orphaned_run_of_a_killed_process_is_reaped() -> None:
    code = ("import os,sys;sys.path.insert(0,'.');"
            "from raftkube.testing.netns import NetnsCluster,NetnsConfig;"
            "c=NetnsCluster(NetnsConfig(hosts=1)).setup();print(c.prefix,c.bridge,flush=True);"
            "os.kill(os.getpid(),9)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -9
    prefix, bridge = proc.stdout.strip().splitlines()[-1].split()
    assert prefix in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                    text=True).stdout
    assert prefix.removeprefix("rk-") in reap_orphaned_runs()
    assert prefix not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                        text=True).stdout
    assert bridge not in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                        text=True).stdout
