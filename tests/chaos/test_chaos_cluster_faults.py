"""The issue's fault kinds against a stand-in cluster of real processes in namespaces.

Members m1..m3 are real sleeping processes, each started inside its own lab namespace;
"the leader" is whatever the test says. The faults must hit the right processes, restart
or resume them on heal, record everything, and partition the right hosts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from raftkube.testing.chaos.cluster_faults import ClusterHooks, cluster_faults
from raftkube.testing.chaos.history import History
from raftkube.testing.chaos.nemesis import Host, Nemesis, NemesisConfig
from tests.chaos.netns_lab import netns_lab, reachability, wait_reachable

pytestmark = pytest.mark.netns


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@dataclass
class StandIn:
    hosts: dict[str, Host]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    leader_name: str | None = "m2"
    restarts: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    def start(self, name: str) -> int:
        self.procs[name] = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.hosts[name].netns}", sys.executable, "-c",
             "import time; time.sleep(120)"])
        return self.procs[name].pid

    def restart(self, name: str) -> int:
        self.procs[name].wait(timeout=10)
        self.restarts.append(name)
        return self.start(name)

    def lose(self, name: str) -> str:
        self.procs[name].kill()
        self.lost.append(name)
        return "dropped unsynced"

    def hooks(self) -> ClusterHooks:
        return ClusterHooks(members=lambda: sorted(self.hosts),
                            pid_of=lambda n: self.procs[n].pid, restart=self.restart,
                            leader=lambda: self.leader_name, hosts=self.hosts,
                            lose_unsynced=self.lose)


@pytest.fixture
def cluster() -> Iterator[StandIn]:
    with netns_lab(3) as lab:
        hosts = {f"m{i}": lab[f"n{i}"] for i in (1, 2, 3)}
        stand_in = StandIn(hosts)
        try:
            for name in hosts:
                stand_in.start(name)
            wait_reachable(lab)
            yield stand_in
        finally:
            for proc in stand_in.procs.values():
                proc.kill()
                proc.wait()


def nemesis_for(cluster: StandIn, seed: int = 1) -> tuple[Nemesis, History]:
    history = History()
    nemesis = Nemesis(history, cluster_faults(cluster.hooks()), NemesisConfig(seed=seed),
                      announce=lambda _: None)
    return nemesis, history


def test_kill_leader_restarts_the_same_member(cluster: StandIn) -> None:
    nemesis, history = nemesis_for(cluster)
    old = cluster.procs["m2"]
    fid = nemesis.start_fault("kill-leader")
    assert fid is not None
    assert old.wait(timeout=10) == -9
    cluster.leader_name = "m1"  # a new leader is elected meanwhile
    nemesis.stop_fault(fid)
    assert cluster.restarts == ["m2"]
    assert cluster.procs["m2"].poll() is None
    [fault] = history.faults()
    assert fault.detail["members"] == ["m2"] and fault.stop is not None


def test_kill_all_and_pause_leader(cluster: StandIn) -> None:
    nemesis, _ = nemesis_for(cluster)
    fid = nemesis.start_fault("kill-all")
    assert fid is not None
    nemesis.stop_fault(fid)
    assert sorted(cluster.restarts) == ["m1", "m2", "m3"]
    fid = nemesis.start_fault("pause-leader")
    assert fid is not None
    pid = cluster.procs["m2"].pid
    wait_for(lambda: _state(pid) == "T")
    nemesis.stop_fault(fid)
    wait_for(lambda: _state(pid) != "T")


def test_no_leader_is_recorded_as_failed_fault(cluster: StandIn) -> None:
    cluster.leader_name = None
    nemesis, history = nemesis_for(cluster)
    assert nemesis.start_fault("kill-leader") is None
    [fault] = history.faults()
    assert "no leader" in fault.detail["error"]
    assert all(p.poll() is None for p in cluster.procs.values())


def test_partition_leader_and_bridge(cluster: StandIn) -> None:
    nemesis, _ = nemesis_for(cluster, seed=3)
    lab = {f"n{i}": cluster.hosts[f"m{i}"] for i in (1, 2, 3)}
    fid = nemesis.start_fault("partition-leader")
    assert fid is not None
    try:
        assert reachability(lab) == {("n1", "n3"), ("n3", "n1")}
    finally:
        nemesis.stop_fault(fid)
    wait_reachable(lab)
    fid = nemesis.start_fault("partition-bridge")
    assert fid is not None
    try:
        seen = reachability(lab)
    finally:
        nemesis.stop_fault(fid)
    # with 3 members the bridge is one member seeing both others, who do not see each other
    assert len(seen) == 4
    wait_reachable(lab)


def test_lose_unsynced_and_kind_selection(cluster: StandIn) -> None:
    nemesis, _ = nemesis_for(cluster, seed=4)
    fid = nemesis.start_fault("lose-unsynced-random")
    assert fid is not None
    nemesis.stop_fault(fid)
    assert len(cluster.lost) == 1 and cluster.restarts == cluster.lost
    chosen = cluster_faults(cluster.hooks(), kinds=["kill-leader", "partition-bridge"])
    assert sorted(chosen) == ["kill-leader", "partition-bridge"]
    no_net = ClusterHooks(members=lambda: ["a"], pid_of=lambda n: 1, restart=lambda n: None,
                          leader=lambda: None)
    with pytest.raises(ValueError, match="partition-bridge"):
        cluster_faults(no_net, kinds=["partition-bridge"])
