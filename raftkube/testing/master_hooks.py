"""`ClusterHooks` for a `MasterCluster`, so `cluster_faults()` can hurt real masters.

members are the master names (m1..mN); pid_of is the master process' PID; restart starts
a killed master again without waiting for it to serve (after kill-all no master can serve
alone: all are restarted, then the run goes on); leader asks every live master's Admin
LocalStatus. hosts (what the partition faults need) is set when the cluster has a
`hosts()` method, as `NetnsMasterCluster` does; lose_unsynced (crash and drop what was
never fsynced) when the cluster runs with store_overrides={"fsync_audit": True}.
"""

from __future__ import annotations

from raftkube.testing.chaos.cluster_faults import ClusterHooks
from raftkube.testing.chaos.nemesis import FaultError
from raftkube.testing.master_cluster import MasterCluster


def master_cluster_hooks(cluster: MasterCluster, leader_timeout: float = 5.0) -> ClusterHooks:
    """Hooks over `cluster`; `leader()` gives up (None: no leader now) after
    `leader_timeout` seconds. The members faults choose from are the masters the cluster
    started with; a master added by membership-change is found by name too."""
    initial = [m.name for m in cluster.members]

    def index_of(name: str) -> int:
        for member in cluster.members:
            if member.name == name:
                return member.index
        raise FaultError(f"no master named {name}")

    def pid_of(name: str) -> int:
        member = cluster.members[index_of(name)]
        if member.process is None:
            raise FaultError(f"master {name} has no process")
        return member.pid

    def restart(name: str) -> str:
        index = index_of(name)
        cluster.respawn(index)
        return f"respawned {name} as pid {cluster.members[index].pid}"

    def leader() -> str | None:
        try:
            return cluster.members[cluster.leader_index(timeout=leader_timeout)].name
        except TimeoutError:
            return None

    def lose_unsynced(name: str) -> str:
        return f"{name} crashed, {cluster.power_loss(index_of(name))} unsynced bytes dropped"

    def add_member() -> str:
        return cluster.members[cluster.add_master()].name

    def remove_member(name: str) -> None:
        cluster.remove_master(index_of(name))

    hosts = cluster.hosts() if hasattr(cluster, "hosts") else None
    audited = bool(cluster.store_overrides.get("fsync_audit"))
    return ClusterHooks(members=lambda: list(initial), pid_of=pid_of, restart=restart,
                        leader=leader, hosts=hosts,
                        lose_unsynced=lose_unsynced if audited else None,
                        add_member=add_member, remove_member=remove_member)
