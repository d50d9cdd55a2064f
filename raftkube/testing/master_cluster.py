"""Multi-process master clusters for tests, benchmarks and the chaos suite.

`raftkube init` credentials in a temp dir, then N `raftkube master` processes on
127.0.0.1 with ports picked per run, each with its own data dir and log file.

    with MasterCluster(3) as cluster:
        stub = cluster.resources(0)          # admin credentials, TLS
        cluster.kill(cluster.leader_index())

Every process is stopped by PID and every file removed by `close()`, also when the test
inside the `with` fails. Subclasses place masters elsewhere by overriding `_specs` (names,
addresses, ports) and `_command_prefix` (e.g. entering a network namespace): see
netns_masters.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raftkube.api.v1 import admin_pb2, admin_pb2_grpc, resources_pb2_grpc
from raftkube.consensus.journal import discard_unsynced_tail
from raftkube.masters.config import MasterConfig, write_master_config
from raftkube.security.cluster_init import InitConfig, MasterSpec, init_cluster
from raftkube.security.grpc_auth import channel_credentials
from raftkube.testing.ports import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class MasterProcess:
    """One master of the cluster under test."""

    index: int
    name: str
    api_address: str
    node_address: str
    raft_address: str
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


class MasterCluster:
    """N master processes sharing one `raftkube init` cluster directory."""

    def __init__(self, size: int = 3, host: str = "127.0.0.1",
                 store_overrides: dict[str, Any] | None = None, workers: tuple[str, ...] = (),
                 controllers: dict[str, Any] | None = None) -> None:
        self.size = size
        self.host = host
        self.root = Path(tempfile.mkdtemp(prefix="raftkube-masters-"))
        self.store_overrides = dict(store_overrides or {})
        self.controller_options = dict(controllers or {})
        try:
            specs = self._specs(size)
            self.init = init_cluster(InitConfig(self.root / "cluster", tuple(specs),
                                                workers=workers))
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)  # nothing may be left behind
            raise
        self.layout = self.init.layout
        self.members: list[MasterProcess] = []
        for i, spec in enumerate(specs):
            self.members.append(self._member(i, spec))
        self._channels: dict[tuple[int, str], grpc.Channel] = {}
        self._channels_lock = threading.Lock()
        self.admin_token = self.layout.admin_token.read_text().strip()
        self.ca_pem = self.layout.ca_cert.read_bytes()

    def _specs(self, size: int) -> Sequence[MasterSpec]:
        """Names, addresses and ports of the masters: all on `self.host`, free ports.
        Subclasses placing masters elsewhere override this."""
        ports = free_ports(3 * size, self.host)
        return [MasterSpec(f"m{i + 1}", self.host, *ports[3 * i:3 * i + 3])
                for i in range(size)]

    def _new_master_spec(self, index: int) -> MasterSpec:
        """Name, address and ports of master number `index` added later (add_master)."""
        api, raft, node = free_ports(3, self.host)
        return MasterSpec(f"m{index + 1}", self.host, api, raft, node)

    def _command_prefix(self, member: MasterProcess) -> list[str]:
        """argv put before the master's command (e.g. entering a network namespace); the
        prefix must exec the command so the PID stays the master's. Default: none."""
        return []

    def _member(self, i: int, spec: MasterSpec) -> MasterProcess:
        data = self.root / spec.name
        data.mkdir(mode=0o700)
        config_path = data / "master.yaml"
        write_master_config(config_path, MasterConfig(
            name=spec.name, cluster_file=self.layout.cluster_file, data_dir=data / "data",
            audit_log=data / "audit.log", store=self.store_overrides,
            controllers=self.controller_options))
        return MasterProcess(i, spec.name, spec.address(spec.api_port),
                             spec.address(spec.node_port), spec.address(spec.raft_port),
                             config_path, data / "master.log")

    # -- processes ----------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> MasterCluster:
        for member in self.members:
            self._spawn(member)
        for member in self.members:
            self.wait_serving(member.index, timeout)
        return self

    def _spawn(self, member: MasterProcess) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        log = open(member.log_path, "ab")  # noqa: SIM115 (the child owns it)
        member.process = subprocess.Popen(
            [*self._command_prefix(member), sys.executable, "-m",
             "raftkube.cli.raftkube_main", "master", "--config", str(member.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT))
        log.close()

    def wait_serving(self, index: int, timeout: float = 60.0) -> None:
        """Until the master answers health SERVING (it sees a leader)."""
        deadline = time.monotonic() + timeout
        stub = health_pb2_grpc.HealthStub(self.channel(index))
        last: object = None
        while time.monotonic() < deadline:
            member = self.members[index]
            if not member.alive:
                code = member.process.returncode if member.process is not None else None
                how = "was never started" if member.process is None else f"exited ({code})"
                raise RuntimeError(f"master {member.name} {how}; {member.log_path}:\n"
                                   f"{self.log_tail(index)}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = reply.status
            except grpc.RpcError as e:
                last = e.code()
            time.sleep(0.1)
        raise TimeoutError(f"master {self.members[index].name} not serving ({last}):\n"
                           f"{self.log_tail(index)}")

    def log_tail(self, index: int, lines: int = 30) -> str:
        try:
            text = self.members[index].log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        member = self.members[index]
        if member.process is None:
            return
        if member.alive:
            os.kill(member.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            member.process.wait(30)
            member.process = None
            with self._channels_lock:
                stale = [self._channels.pop(k) for k in list(self._channels) if k[0] == index]
            for channel in stale:
                channel.close()

    def pause(self, index: int) -> None:
        os.kill(self.members[index].pid, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        os.kill(self.members[index].pid, signal.SIGCONT)

    def restart(self, index: int, timeout: float = 60.0) -> None:
        self.respawn(index)
        self.wait_serving(index, timeout)

    def power_loss(self, index: int) -> int:
        """Crash master `index` (SIGKILL) and drop the store journal's bytes it wrote but
        never fsynced, as a power cut would; returns the bytes dropped. Needs
        store_overrides={"fsync_audit": True}. Start it again with respawn()."""
        if not self.store_overrides.get("fsync_audit"):
            raise RuntimeError("power_loss needs store_overrides={'fsync_audit': True}")
        self.kill(index)
        store_dir = self.root / self.members[index].name / "data" / "store"
        return discard_unsynced_tail(str(store_dir))

    def respawn(self, index: int) -> None:
        """Kill master `index` if it runs, then start it again without waiting for it to
        serve (a master alone cannot serve: after losing all of them, restart them all
        with this first, then wait)."""
        self.kill(index)
        self._spawn(self.members[index])

    def add_master(self, timeout: float = 60.0) -> int:
        """Grow the cluster by one master (credentials, start with join, AddMaster through
        the leader); returns its index."""
        from raftkube.client import Client
        from raftkube.masters.membership import join_control_plane
        from raftkube.security.cluster_init import add_master

        index = len(self.members)
        spec = self._new_master_spec(index)
        add_master(self.layout.root, spec)
        member = MasterProcess(index, spec.name, spec.address(spec.api_port),
                               spec.address(spec.node_port), spec.address(spec.raft_port),
                               self.root / spec.name / "master.yaml",
                               self.root / spec.name / "master.log")
        self.members.append(member)

        def start(config_path: Path) -> None:
            assert config_path == member.config_path
            self._spawn(member)

        with Client.from_config(self.layout.admin_config) as admin:
            join_control_plane(admin, self.layout.cluster_file, spec.name,
                               self.root / spec.name, start, timeout,
                               store_overrides=self.store_overrides)
        self.wait_serving(index, timeout)
        return index

    def remove_master(self, index: int) -> None:
        """Remove master `index` from the membership (leadership moves first if it leads)
        and stop its process."""
        from raftkube.client import Client

        with Client.from_config(self.layout.admin_config) as admin:
            admin.admin.remove_master(self.members[index].name)
        self.kill(index, signal.SIGTERM)

    def alive_indexes(self) -> list[int]:
        return [m.index for m in self.members if m.alive]

    # -- clients ------------------------------------------------------------------------
    def channel(self, index: int, token: str | None = None) -> grpc.Channel:
        """A TLS channel to master `index` (admin token unless another is given)."""
        token = self.admin_token if token is None else token
        key = (index, token)
        with self._channels_lock:
            channel = self._channels.get(key)
            if channel is None:
                creds = channel_credentials(self.ca_pem, token=token or None)
                channel = grpc.secure_channel(self.members[index].api_address, creds)
                self._channels[key] = channel
        return channel

    def resources(self, index: int, token: str | None = None) -> resources_pb2_grpc.ResourcesStub:
        return resources_pb2_grpc.ResourcesStub(self.channel(index, token))

    def admin(self, index: int) -> admin_pb2_grpc.AdminStub:
        return admin_pb2_grpc.AdminStub(self.channel(index))

    def leader_index(self, timeout: float = 30.0) -> int:
        """The index of the master that leads now (waits for one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in self.alive_indexes():
                try:
                    status = self.admin(index).LocalStatus(admin_pb2.LocalStatusRequest(),
                                                           timeout=1.0)
                except grpc.RpcError:
                    continue
                if status.role == "leader" and status.health == "ok":
                    return index
            time.sleep(0.1)
        raise TimeoutError("no leader elected")

    def close(self) -> None:
        with self._channels_lock:
            channels = list(self._channels.values())
            self._channels.clear()
        for channel in channels:
            channel.close()
        for member in self.members:
            if member.process is not None:
                if member.alive:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(member.pid, signal.SIGCONT)
                    member.process.terminate()
                    try:
                        member.process.wait(10)
                    except subprocess.TimeoutExpired:
                        member.process.kill()
                        member.process.wait(10)
                member.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> MasterCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
