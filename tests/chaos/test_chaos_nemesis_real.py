"""Nemesis faults against real processes and real network namespaces.

The lab (tests/chaos/netns_lab.py) creates and always deletes its own namespaces.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from raftkube.testing.chaos.history import History
from raftkube.testing.chaos.nemesis import (
    FaultError,
    Host,
    KillProcess,
    LinkDelay,
    LinkRateLimit,
    Nemesis,
    NemesisConfig,
    Partition,
    PauseProcess,
    bridge,
    isolate,
    netem_available,
    pids_in_netns,
    process_tree,
    remove_partition_tables,
    run_in_netns,
)
from tests.chaos.netns_lab import can_ping, netns_lab, reachability, wait_reachable

pytestmark = pytest.mark.netns


def nft_tables(host: Host) -> str:
    return run_in_netns(host.netns, ["nft", "list", "tables"]).stdout


def test_partition_isolate_and_heal() -> None:
    with netns_lab(3) as hosts:
        wait_reachable(hosts)
        history = History()
        fault = Partition("isolate-n1", hosts, isolate("n1", sorted(hosts)))
        nemesis = Nemesis(history, {"isolate-n1": lambda rng: fault},
                          announce=lambda _: None)
        fid = nemesis.start_fault("isolate-n1")
        assert fid is not None
        try:
            assert reachability(hosts) == {("n2", "n3"), ("n3", "n2")}
            assert fault.table in nft_tables(hosts["n1"])
        finally:
            nemesis.stop_fault(fid)
        for host in hosts.values():
            assert fault.table not in nft_tables(host)
        wait_reachable(hosts)
        [interval] = history.faults()
        assert interval.name == "isolate-n1" and interval.stop is not None
        assert interval.detail["groups"] == [["n1"], ["n2", "n3"]]


def test_bridge_partition_one_node_sees_both_sides() -> None:
    with netns_lab(5) as hosts:
        wait_reachable(hosts)
        groups = bridge(sorted(hosts), random.Random(3))
        middle = (set(groups[0]) & set(groups[1])).pop()
        fault = Partition("bridge", hosts, groups)
        fault.start()
        try:
            seen = reachability(hosts)
        finally:
            fault.stop()
        side_a, side_b = set(groups[0]) - {middle}, set(groups[1]) - {middle}
        for other in set(hosts) - {middle}:
            assert (middle, other) in seen and (other, middle) in seen
        for a in side_a:
            for b in side_b:
                assert (a, b) not in seen and (b, a) not in seen
        wait_reachable(hosts)


def test_partition_tables_removed_when_start_fails_half_way() -> None:
    with netns_lab(2) as hosts:
        broken = dict(hosts)
        broken["n2"] = Host("rk-does-not-exist-ns", hosts["n2"].addresses)
        fault = Partition("broken", broken, [["n1"], ["n2"]])
        with pytest.raises(FaultError, match="rk-does-not-exist-ns"):
            fault.start()
        assert fault.table not in nft_tables(hosts["n1"])


def test_link_delay_uses_netem_or_says_it_is_missing() -> None:
    with netns_lab(2) as hosts:
        n1 = hosts["n1"]
        fault = LinkDelay("delay", n1.netns, "eth0", delay_ms=200)
        if netem_available(n1.netns, "eth0"):
            fault.start()
            try:
                started = time.monotonic()
                assert can_ping(n1, hosts["n2"], timeout_s=2)
                assert time.monotonic() - started >= 0.2
            finally:
                fault.stop()
        else:
            with pytest.raises(FaultError, match=r"netem|qdisc kind is unknown"):
                fault.start()
            fault.stop()


def _transfer_seconds(src: Host, dst: Host, size: int) -> float:
    receiver = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{dst.netns}", sys.executable, "-c",
         "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
         f"s.bind(('{dst.addresses[0]}',7777));s.listen(1);print('ready',flush=True);"
         "c,_=s.accept();n=0\nwhile (b:=c.recv(65536)): n+=len(b)\nprint(n)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"
        started = time.monotonic()
        run_in_netns(src.netns, [sys.executable, "-c",
                                 "import socket;s=socket.create_connection("
                                 f"('{dst.addresses[0]}',7777));s.sendall(b'x'*{size});"
                                 "s.close()"], timeout=60)
        received = int(receiver.stdout.readline())
        elapsed = time.monotonic() - started
        assert received == size
        return elapsed
    finally:
        receiver.kill()
        receiver.wait()


def test_link_rate_limit_slows_transfers_and_heals() -> None:
    with netns_lab(2) as hosts:
        n1, n2 = hosts["n1"], hosts["n2"]
        wait_reachable(hosts)
        fault = LinkRateLimit("slow", n1.netns, "eth0", rate_kbit=1000)
        fault.start()
        try:
            slow = _transfer_seconds(n1, n2, 150_000)  # 1.2 Mbit at 1 Mbit/s
        finally:
            fault.stop()
        fast = _transfer_seconds(n1, n2, 150_000)
        assert slow > 0.8
        assert fast < slow / 2
        assert "tbf" not in run_in_netns(n1.netns, ["tc", "qdisc", "show", "dev", "eth0"]).stdout


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield child
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGCONT)
            child.kill()
        child.wait()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_kill_process_with_sigkill_and_restart(sleeper: subprocess.Popen[bytes]) -> None:
    restarted: list[subprocess.Popen[bytes]] = []

    def restart() -> int:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        restarted.append(child)
        return child.pid

    fault = KillProcess("kill", lambda: sleeper.pid, restart=restart)
    try:
        detail = fault.start()
        assert detail["signalled"] == [sleeper.pid]
        assert sleeper.wait(timeout=10) == -signal.SIGKILL
        fault.stop()
        fault.stop()  # idempotent: restarts once
        assert len(restarted) == 1 and restarted[0].poll() is None
    finally:
        for child in restarted:
            child.kill()
            child.wait()


def test_pause_and_resume_process(sleeper: subprocess.Popen[bytes]) -> None:
    fault = PauseProcess("pause", sleeper.pid)
    fault.start()
    deadline = time.monotonic() + 5
    while _state(sleeper.pid) != "T":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    fault.stop()
    deadline = time.monotonic() + 5
    while _state(sleeper.pid) == "T":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert sleeper.poll() is None


def test_random_nemesis_on_real_partitions_heals_everything() -> None:
    with netns_lab(3) as hosts:
        wait_reachable(hosts)
        names = sorted(hosts)
        history = History()
        factories = {
            "isolate": lambda rng: Partition("isolate", hosts, isolate(rng.choice(names), names)),
            "halves": lambda rng: Partition("halves", hosts, [names[:1], names[1:]]),
        }
        nemesis = Nemesis(history, factories, NemesisConfig(seed=11, quiet=(0.05, 0.1),
                                                            active=(0.1, 0.2)),
                          announce=lambda _: None)
        stop = threading.Event()
        count = nemesis.run_random(stop, max_faults=4)
        assert count == 4 and not nemesis.errors
        faults = history.faults()
        assert len(faults) == 4 and all(f.stop is not None for f in faults)
        for host in hosts.values():
            assert "raftkube_chaos_" not in nft_tables(host)
        wait_reachable(hosts)


def _sleeper_in(netns: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c",
                             "import time; time.sleep(120)"])


def test_kill_whole_host_by_network_namespace() -> None:
    with netns_lab(2) as hosts:
        procs = [_sleeper_in(hosts["n1"].netns), _sleeper_in(hosts["n1"].netns),
                 _sleeper_in(hosts["n2"].netns)]
        try:
            deadline = time.monotonic() + 10
            while len(pids_in_netns(hosts["n1"].netns)) < 2:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert pids_in_netns(hosts["n1"].netns) == sorted(p.pid for p in procs[:2])
            fault = KillProcess("kill-host", lambda: pids_in_netns(hosts["n1"].netns))
            fault.start()
            assert procs[0].wait(timeout=10) == -signal.SIGKILL
            assert procs[1].wait(timeout=10) == -signal.SIGKILL
            assert procs[2].poll() is None
        finally:
            for p in procs:
                p.kill()
                p.wait()
        with pytest.raises(FaultError, match="not found"):
            pids_in_netns("rk-no-such-namespace")


def test_process_tree_lists_descendants() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess,sys,time;"
         "c=subprocess.Popen([sys.executable,'-c','import time; time.sleep(120)']);"
         "print(c.pid,flush=True);time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert process_tree(parent.pid) == [parent.pid, child]
        KillProcess("kill-tree", lambda: process_tree(parent.pid)).start()
        assert parent.wait(timeout=10) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{child}") and _state(child) != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()
    assert process_tree(parent.pid) == []


def test_leftover_partition_tables_can_be_removed() -> None:
    with netns_lab(2) as hosts:
        fault = Partition("left-behind", hosts, [["n1"], ["n2"]])
        fault.start()
        for host in hosts.values():
            assert remove_partition_tables(host.netns) == [fault.table]
            assert remove_partition_tables(host.netns) == []
        fault.stop()
        wait_reachable(hosts)
