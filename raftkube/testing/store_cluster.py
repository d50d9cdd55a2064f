"""Multi-process store clusters for tests and benchmarks.

Starts N `python -m raftkube.consensus.server` processes, each on its own 127.0.0.x
address (Raft port + gRPC port) with its own temp data dir, and offers the faults the
chaos suite needs: kill -9, SIGSTOP/SIGCONT, restart, network partition of one member
(nftables rules on its Raft port), simulated power loss, membership changes.

    with StoreCluster(3) as cluster:
        leader = cluster.leader_index()
        cluster.kv(leader).Put(kv_pb2.StorePutRequest(key=b"k", value=b"v"))
        cluster.kill(leader)

Every process and nft table it creates is removed by `close()` (also on exceptions
inside the `with`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from raftkube.api.v1 import kv_pb2, kv_pb2_grpc
from raftkube.consensus.grpc_service import ADMIN_TOKEN_METADATA, admin_token
from raftkube.consensus.journal import discard_unsynced_tail
from raftkube.testing.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Member:
    """One replica process of the cluster."""

    index: int
    host: str
    raft_port: int
    grpc_port: int
    data_dir: str
    config_path: str
    log_path: str
    process: subprocess.Popen[bytes] | None = None
    channel: grpc.Channel | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def raft_address(self) -> str:
        return f"{self.host}:{self.raft_port}"

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class StoreCluster:
    """N store replica processes on loopback. Not thread-safe; one test drives it."""

    def __init__(self, size: int, store_overrides: dict[str, Any] | None = None,
                 base_dir: str | None = None, secret: bytes | None = None,
                 start: bool = True) -> None:
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="rk-store-")
        # Hex text, like the raft-secret file `raftkube init` writes: random raw bytes may
        # begin or end with whitespace, which reading the file strips.
        self.secret = secret or secrets.token_hex(32).encode()
        self.cluster_name = f"rk-test-{secrets.token_hex(4)}"
        self.store_overrides = dict(store_overrides or {})
        self.subnet = f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
        self.members: list[Member] = []
        self._nft_tables: list[str] = []
        self._secret_path = os.path.join(self.base_dir, "cluster.secret")
        Path(self._secret_path).write_bytes(self.secret)
        os.chmod(self._secret_path, 0o600)
        self._size = size
        self._allocate(size)
        if start:
            self.start()

    def _allocate(self, size: int) -> None:
        self.members = []
        initial = [self._new_member() for _ in range(size)]
        for member in initial:
            self._write_config(member, [m.raft_address for m in initial])

    # ---- setup ----

    def _new_member(self) -> Member:
        index = len(self.members)
        host = f"{self.subnet}.{index + 1}" if index < 254 else "127.0.0.1"
        member = Member(index=index, host=host, raft_port=free_port(host),
                        grpc_port=free_port(host),
                        data_dir=os.path.join(self.base_dir, f"m{index}"),
                        config_path=os.path.join(self.base_dir, f"m{index}.json"),
                        log_path=os.path.join(self.base_dir, f"m{index}.log"))
        self.members.append(member)
        return member

    def _write_config(self, member: Member, all_members: list[str]) -> None:
        store = {
            "raft_address": member.raft_address,
            "peers": [a for a in all_members if a != member.raft_address],
            "data_dir": member.data_dir,
            "cluster_secret": self._secret_path,
            "cluster_name": self.cluster_name,
            "node_id": f"m{member.index}",
            **self.store_overrides,
        }
        config = {"store": store, "server": {"grpc_address": member.grpc_address,
                                             "log_level": "info"}}
        Path(member.config_path).write_text(json.dumps(config, indent=1))

    def start(self) -> None:
        """Start every member that is not running and wait until all serve. A brand-new
        cluster whose port was taken by another process is re-created on new ports."""
        for attempt in range(3):
            fresh = all(not os.path.exists(m.data_dir) for m in self.members)
            for member in self.members:
                if not member.alive:
                    self._spawn(member)
            try:
                for member in self.members:
                    self.wait_serving(member.index)
                return
            except RuntimeError as exc:
                if not (fresh and "cannot bind" in str(exc)) or attempt == 2:
                    raise
                for member in self.members:
                    if member.alive:
                        self.kill(member.index)
                    shutil.rmtree(member.data_dir, ignore_errors=True)
                self._allocate(len(self.members))

    def _spawn(self, member: Member) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        log = open(member.log_path, "ab")  # noqa: SIM115 (kept open by the child)
        member.process = subprocess.Popen(
            [sys.executable, "-m", "raftkube.consensus.server", "--config", member.config_path,
             *member.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT))
        log.close()
        member.extra_args = []

    def wait_serving(self, index: int, timeout: float = 30.0) -> None:
        """Wait until member `index` answers Status."""
        deadline = time.monotonic() + timeout
        member = self.members[index]
        while time.monotonic() < deadline:
            if not member.alive:
                raise RuntimeError(f"member m{index} exited; log:\n{self.log_tail(index)}")
            try:
                self.maintenance(index).Status(kv_pb2.StoreStatusRequest(), timeout=1.0)
                return
            except grpc.RpcError:
                time.sleep(0.1)
        raise TimeoutError(f"member m{index} not serving after {timeout}s:\n{self.log_tail(index)}")

    def log_tail(self, index: int, lines: int = 40) -> str:
        try:
            return "\n".join(Path(self.members[index].log_path).read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ---- clients ----

    def channel(self, index: int) -> grpc.Channel:
        member = self.members[index]
        if member.channel is None:
            member.channel = grpc.insecure_channel(member.grpc_address)
        return member.channel

    def kv(self, index: int) -> kv_pb2_grpc.KVStub:
        return kv_pb2_grpc.KVStub(self.channel(index))

    def maintenance(self, index: int) -> kv_pb2_grpc.MaintenanceStub:
        return kv_pb2_grpc.MaintenanceStub(self.channel(index))

    @property
    def admin_metadata(self) -> tuple[tuple[str, str], ...]:
        return ((ADMIN_TOKEN_METADATA, admin_token(self.secret, self.cluster_name)),)

    def status(self, index: int, timeout: float = 2.0) -> Any:
        return self.maintenance(index).Status(kv_pb2.StoreStatusRequest(), timeout=timeout)

    def alive_indexes(self) -> list[int]:
        return [m.index for m in self.members if m.alive]

    def leader_index(self, timeout: float = 15.0, among: list[int] | None = None) -> int:
        """Index of the member that reports itself leader and that a majority of the
        reachable members agree on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            candidates = among if among is not None else self.alive_indexes()
            views: dict[str, int] = {}
            leaders: dict[str, int] = {}
            for i in candidates:
                try:
                    st = self.status(i, timeout=1.0)
                except grpc.RpcError:
                    continue
                if st.header.leader:
                    views[st.header.leader] = views.get(st.header.leader, 0) + 1
                if st.is_leader:
                    leaders[st.address] = i
            for address, i in leaders.items():
                if views.get(address, 0) * 2 > len(candidates):
                    return i
            time.sleep(0.05)
        raise TimeoutError("no agreed leader")

    def wait_converged(self, timeout: float = 20.0, among: list[int] | None = None) -> Any:
        """Wait until the given (default: alive) members report the same revision and
        state hash; returns one status."""
        deadline = time.monotonic() + timeout
        last: list[Any] = []
        while time.monotonic() < deadline:
            try:
                last = [self.status(i) for i in (among or self.alive_indexes())]
            except grpc.RpcError:
                time.sleep(0.1)
                continue
            if len({(s.header.revision, s.state_hash) for s in last}) == 1:
                return last[0]
            time.sleep(0.1)
        raise TimeoutError(f"members did not converge: "
                           f"{[(s.id, s.header.revision, s.state_hash[:8]) for s in last]}")

    # ---- faults ----

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` (default SIGKILL) and, for terminating signals, reap the process."""
        member = self.members[index]
        if member.process is None:
            return
        member.process.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            member.process.wait(30)
            member.process = None
            if member.channel is not None:
                member.channel.close()
                member.channel = None

    def pause(self, index: int) -> None:
        self.kill(index, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        self.kill(index, signal.SIGCONT)

    def stop(self, index: int) -> None:
        self.kill(index, signal.SIGTERM)

    def restart(self, index: int, extra_args: list[str] | None = None,
                wait: bool = True) -> None:
        member = self.members[index]
        if member.alive:
            self.kill(index)
        member.extra_args = list(extra_args or [])
        self._spawn(member)
        if wait:
            self.wait_serving(index)

    def power_loss(self, index: int) -> int:
        """Simulate power loss on a killed member: drop journal bytes never fsynced.
        Needs store_overrides={"fsync_audit": True}. Returns bytes dropped."""
        member = self.members[index]
        if member.alive:
            raise RuntimeError("power_loss needs a stopped member (kill it first)")
        return discard_unsynced_tail(member.data_dir)

    def partition(self, index: int) -> None:
        """Cut member `index`'s Raft traffic in both directions (nftables rules on its
        Raft port). Full isolation needs every other member to connect to it, which
        pysyncobj does when this member has the lowest Raft address; isolate() ensures
        that by choice of member. gRPC stays reachable."""
        member = self.members[index]
        table = f"raftkube_{secrets.token_hex(4)}"
        rules = (f"table inet {table} {{\n chain input {{\n"
                 f"  type filter hook input priority -5;\n"
                 f"  tcp dport {member.raft_port} drop\n"
                 f"  tcp sport {member.raft_port} drop\n }}\n}}\n")
        subprocess.run(["nft", "-f", "-"], input=rules.encode(), check=True)
        self._nft_tables.append(table)

    def heal(self) -> None:
        """Remove every partition."""
        for table in self._nft_tables:
            subprocess.run(["nft", "delete", "table", "inet", table], check=False)
        self._nft_tables.clear()

    def lowest_address_index(self) -> int:
        """The alive member whose Raft address sorts lowest (pysyncobj: everyone dials it)."""
        return min(self.alive_indexes(), key=lambda i: self.members[i].raft_address)

    # ---- membership ----

    def add_member(self, via: int | None = None) -> int:
        """Start a new replica and add it through the leader; returns its index."""
        member = self._new_member()
        current = [self.members[i].raft_address for i in self.alive_indexes()]
        self._write_config(member, [*current, member.raft_address])
        # Start it first: a 1 -> 2 member change only commits once the new one answers.
        self._spawn(member)
        self.wait_serving(member.index)
        leader = self.leader_index() if via is None else via
        self.maintenance(leader).MemberAdd(kv_pb2.StoreMemberRequest(address=member.raft_address),
                                           metadata=self.admin_metadata, timeout=15)
        return member.index

    def remove_member(self, index: int, via: int | None = None) -> None:
        """Remove member `index` from the cluster (through itself if it leads) and stop it."""
        target = self.members[index].raft_address
        leader = self.leader_index()
        caller = index if leader == index else (leader if via is None else via)
        self.maintenance(caller).MemberRemove(kv_pb2.StoreMemberRequest(address=target),
                                              metadata=self.admin_metadata, timeout=20)
        self.stop(index)

    # ---- teardown ----

    def close(self) -> None:
        self.heal()
        for member in self.members:
            if member.process is not None and member.process.poll() is None:
                try:
                    member.process.send_signal(signal.SIGCONT)
                    member.process.kill()
                    member.process.wait(10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if member.channel is not None:
                member.channel.close()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> StoreCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
