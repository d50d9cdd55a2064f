"""A MasterCluster whose masters each run in their own network namespace.

    root namespace (test process, clients): bridge rkb<run>, gateway .1 of a free /24
        |                |                |
    rk-<run>-h0      rk-<run>-h1      rk-<run>-h2      one master each, eth0 = .10, .11, ...

The namespaces and the bridge come from `NetnsCluster` (random names, a /24 checked
against `ip route`, recorded for `reap_orphaned_runs`); the masters, credentials and
clients come from `MasterCluster`. Each master binds the API, node and Raft ports of its own
address, so an nft table inside its namespace cuts it off from its peers for real while the
test's clients (in the root namespace, on the bridge) still reach every master.

Contract: `close()` (also on a failed start, and from `with`) stops every master, removes
the temp dir, the namespaces (with any nft table in them) and the bridge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raftkube.security.cluster_init import MasterSpec
from raftkube.testing.chaos.nemesis import Host
from raftkube.testing.master_cluster import MasterCluster, MasterProcess
from raftkube.testing.netns import NetnsCluster, NetnsConfig, netns_prefix


class NetnsMasterCluster(MasterCluster):
    """`size` masters m1..mN, master i in namespace `netns.hosts[i]` at its address;
    `spare` more namespaces wait for masters added later (add_master)."""

    def __init__(self, size: int = 3, spare: int = 0, **kwargs: Any) -> None:
        self.netns = NetnsCluster(NetnsConfig(hosts=size + spare,
                                              with_pod_bridge=False)).setup()
        self.initial_size = size
        try:
            super().__init__(size, host=self.netns.gateway, **kwargs)
        except BaseException:
            self.netns.teardown()
            raise

    def _specs(self, size: int) -> Sequence[MasterSpec]:
        # Every master has a namespace of its own: the default ports are free in each.
        return [MasterSpec(f"m{i + 1}", h.address)
                for i, h in enumerate(self.netns.hosts[:size])]

    def _new_master_spec(self, index: int) -> MasterSpec:
        if index >= len(self.netns.hosts):
            raise RuntimeError(f"no spare namespace for master m{index + 1} (make the "
                               f"cluster with spare=N)")
        return MasterSpec(f"m{index + 1}", self.netns.hosts[index].address)

    def _command_prefix(self, member: MasterProcess) -> list[str]:
        return netns_prefix(self.netns.hosts[member.index].netns)

    def hosts(self) -> dict[str, Host]:
        """Master name -> its namespace and address, as the partition faults need; the
        spare namespaces too, under the names their masters will have."""
        return {f"m{i + 1}": Host(h.netns, (h.address,))
                for i, h in enumerate(self.netns.hosts)}

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.netns.teardown()
