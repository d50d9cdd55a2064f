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
    `leader_timeout` seconds."""
    by_name = {m.name: m.index for m in cluster.members}

    def pid_of(name: str) -> int:
        member = cluster.members[by_name[name]]
        if member.process is None:
            raise FaultError(f"master {name} has no process")
        return member.pid

    def restart(name: str) -> str:
        cluster.respawn(by_name[name])
        return f"respawned {name} as pid {cluster.members[by_name[name]].pid}"

    def leader() -> str | None:
        try:
            return cluster.members[cluster.leader_index(timeout=leader_timeout)].name
        except TimeoutError:
            return None

    def lose_unsynced(name: str) -> str:
        return f"{name} crashed, {cluster.power_loss(by_name[name])} unsynced bytes dropped"

    hosts = cluster.hosts() if hasattr(cluster, "hosts") else None
    audited = bool(cluster.store_overrides.get("fsync_audit"))
    return ClusterHooks(members=lambda: list(by_name), pid_of=pid_of, restart=restart,
                        leader=leader, hosts=hosts,
                        lose_unsynced=lose_unsynced if audited else None)
