"""`ClusterHooks` over a cluster `raftkube up` brought up, so `cluster_faults()` can hurt its
real processes: the masters (kill, pause, restart; the leader found through each master's
Admin LocalStatus) or the worker agents (the `raftkube worker` process only: its
containers, its Podman service and its fencing watchdog run on, as when an agent crashes).

`WorkerHostKill` takes a whole worker host down (agent, watchdog, containers, Podman);
`ControlPlaneCut` cuts a worker host off the masters only.
Restart respawns the recorded command (`local_cluster.respawn`), so `raftkube down` still
stops everything afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from collections.abc import Callable
from typing import Any

from raftkube import apierrors
from raftkube.client import Client
from raftkube.cluster.local_cluster import (
    API_PORT_BASE,
    LocalClusterState,
    process_record,
    respawn,
    stop_processes_using,
)
from raftkube.testing.chaos.cluster_faults import ClusterHooks
from raftkube.testing.chaos.nemesis import Fault, run_in_netns
from raftkube.workers.agent.fence_stamp import fence_dir, watchdog_pid
from raftkube.workers.podman_setup import HostStoreConfig


def _pid_of(state: LocalClusterState):
    return lambda name: process_record(state, name).pid


def _restart(state: LocalClusterState):
    def restart(name: str) -> str:
        record = respawn(state, name)
        return f"respawned {name} as pid {record.pid}"

    return restart


def local_master_hooks(state: LocalClusterState, client: Client) -> ClusterHooks:
    """Hooks over the masters; `client` (an admin client of the cluster) asks each
    master's LocalStatus for the leader."""

    def leader() -> str | None:
        for address in client.masters:
            try:
                status = client.admin.local_status(address)
            except apierrors.ApiError:
                continue
            if status.role == "leader" and status.health == "ok":
                return status.name
        return None

    return ClusterHooks(members=lambda: list(state.masters), pid_of=_pid_of(state),
                        restart=_restart(state), leader=leader)


def local_agent_hooks(state: LocalClusterState,
                      members: Callable[[], list[str]] | None = None) -> ClusterHooks:
    """Hooks over the worker agents (members: the worker host names, or those `members()`
    names when the fault is chosen; no leader)."""
    assert state.hosts is not None
    workers = [h.name for h in state.hosts.hosts]
    return ClusterHooks(members=members or (lambda: list(workers)), pid_of=_pid_of(state),
                        restart=_restart(state), leader=lambda: None)


class WorkerHostKill(Fault):
    """A worker host dies at once: its agent, its fencing watchdog, every container of its
    Podman store (pods and infra) and its Podman service are SIGKILLed; heal starts the
    agent again (which starts a new Podman service), as after a reboot. The host's network
    namespace stays: the machine is off, its address merely unanswered."""

    name = "kill-worker-host"

    def __init__(self, state: LocalClusterState, choose: Callable[[], str]) -> None:
        assert state.hosts is not None
        self._state = state
        self._choose = choose
        self._target = ""

    def _host(self, name: str):
        assert self._state.hosts is not None
        return next(h for h in self._state.hosts.hosts if h.name == name)

    def start(self) -> dict[str, Any]:
        name = self._choose()
        root = self._state.state_dir / "hosts" / name
        store = HostStoreConfig(host_dir=root / "podman")
        pids = [process_record(self._state, name).pid]
        pids += [p for p in (watchdog_pid(fence_dir(root / "agent")),) if p is not None]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        env = {**os.environ, **store.env()}
        netns = f"--net=/run/netns/{self._host(name).netns}"
        for args in (["pod", "kill", "--all", "--signal", "KILL"],
                     ["kill", "--all", "--signal", "KILL"]):
            subprocess.run(["nsenter", netns, "podman", *args], env=env, capture_output=True,
                           timeout=60, check=False)
        service = stop_processes_using(store.host_dir)  # its Podman service (and conmons)
        self._target = name
        return {"host": name, "pids": pids + service}

    def stop(self) -> dict[str, Any]:
        name, self._target = self._target, ""
        if not name:
            return {}
        record = respawn(self._state, name)
        return {"restarted": name, "pid": record.pid}


class ControlPlaneCut(Fault):
    """Worker host `choose()` loses the masters: an nft table in its namespace drops its
    packets to the masters' ports (API, node API, Raft), while the data plane between
    hosts and from outside keeps working. Heal deletes the table."""

    name = "partition-worker"

    def __init__(self, state: LocalClusterState, choose: Callable[[], str]) -> None:
        assert state.hosts is not None
        self._state = state
        self._choose = choose
        self._table = f"raftkube_chaos_{secrets.token_hex(4)}"
        self._netns = ""

    def start(self) -> dict[str, Any]:
        assert self._state.hosts is not None
        name = self._choose()
        host = next(h for h in self._state.hosts.hosts if h.name == name)
        ports = sorted({API_PORT_BASE + 10 * i + k
                        for i in range(len(self._state.masters)) for k in range(3)})
        rules = (f"table inet {self._table} {{\n chain output {{\n"
                 f"  type filter hook output priority 0;\n"
                 f"  ip daddr {self._state.hosts.gateway} tcp dport {{ "
                 f"{', '.join(map(str, ports))} }} drop\n }}\n}}\n")
        run_in_netns(host.netns, ["nft", "-f", "-"], stdin=rules)
        self._netns = host.netns
        return {"host": name, "dropped ports": ports}

    def stop(self) -> dict[str, Any]:
        netns, self._netns = self._netns, ""
        if not netns:
            return {}
        run_in_netns(netns, ["nft", "delete", "table", "inet", self._table], check=False)
        return {"healed": netns}
