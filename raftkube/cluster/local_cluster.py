"""`raftkube up` / `raftkube down`: a whole cluster on one machine.

```
 root namespace: N master processes on GATEWAY:ports (one store replica each)
                 raftkubectl, with the admin config written to $RAFTKUBECONFIG or
                 ~/.raftkube/config
 per worker:     namespace PREFIX-wK (own address), `raftkube worker` inside it, its own
                 Podman store and service (pod subnet 10.244.K.0/24), busybox image
```

State lives in `state_dir` (state.json names every process, namespace, bridge and file the
bring-up made); `down` removes exactly those and nothing else. `up` refuses to run when a
cluster from the same state dir is still up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from raftkube.cluster.local_hosts import LocalHosts, create_hosts, destroy_hosts
from raftkube.logging_config import get_logger
from raftkube.masters.config import MasterConfig, write_master_config
from raftkube.security.client_config import default_config_path
from raftkube.security.cluster_init import InitConfig, MasterSpec, init_cluster
from raftkube.workers.agent.fence_stamp import fence_dir, stop_watchdog
from raftkube.workers.images import PodmanCli, build_busybox_image
from raftkube.workers.podman_setup import HostStoreConfig, write_host_configs

log = get_logger(__name__)

STATE_FILE = "state.json"
API_PORT_BASE = 6443
NODE_AGENT_PORT = 10250
WORKER_METRICS_PORT = 9102


class LocalClusterError(RuntimeError):
    """The bring-up or tear-down failed; the message says which step and why."""


@dataclass(frozen=True)
class LocalClusterConfig:
    """What `raftkube up` builds.

    masters / workers: how many of each (masters: an odd number is best).
    state_dir: where credentials, configs, data, logs and state.json go (short path: each
      worker's Podman store lives below it and Podman needs short paths).
    prefix: name of the bridge and prefix of the namespaces (at most 8 characters).
    pod_cidr: the cluster's pod range (each worker gets a /24 of it from the masters).
    client_config: where the admin client config is written.
    timeout: seconds to wait for masters to serve and workers to be Ready.
    """

    masters: int = 3
    workers: int = 2
    state_dir: Path = Path("/var/lib/raftkube-up")
    prefix: str = "rkup0"
    pod_cidr: str = "10.244.0.0/16"
    client_config: Path = field(default_factory=default_config_path)
    timeout: float = 180.0


@dataclass
class ProcessRecord:
    """A process the bring-up started: its pid and kernel start time (so `down` never
    signals a recycled pid)."""

    name: str
    role: str
    pid: int
    start_time: str
    log: str
    argv: list[str] = field(default_factory=list)


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(record: ProcessRecord) -> bool:
    """Still the process we started, and not a zombie (killed, not yet reaped)."""
    try:
        with open(f"/proc/{record.pid}/stat", encoding="utf-8") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and fields[19] == record.start_time != ""


@dataclass
class LocalClusterState:
    """Everything `up` made, as saved in state.json."""

    state_dir: Path
    hosts: LocalHosts | None = None
    processes: list[ProcessRecord] = field(default_factory=list)
    client_config: str = ""
    masters: list[str] = field(default_factory=list)

    def save(self) -> None:
        data = {"hosts": self.hosts.to_dict() if self.hosts else None,
                "processes": [p.__dict__ for p in self.processes],
                "client_config": self.client_config, "masters": self.masters}
        path = self.state_dir / STATE_FILE
        path.write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> LocalClusterState | None:
        path = state_dir / STATE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(state_dir, LocalHosts.from_dict(data["hosts"]) if data["hosts"] else None,
                   [ProcessRecord(**p) for p in data["processes"]], data["client_config"],
                   data.get("masters", []))


def _spawn(state: LocalClusterState, name: str, role: str, argv: list[str]) -> None:
    logs = state.state_dir / "logs"
    logs.mkdir(exist_ok=True)
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    state.processes = [p for p in state.processes if p.name != name]
    state.processes.append(ProcessRecord(name, role, proc.pid, _start_time(proc.pid),
                                         str(log_path), list(argv)))
    state.save()


def process_record(state: LocalClusterState, name: str) -> ProcessRecord:
    """The record of process `name` (a master or worker host name); KeyError if none."""
    for record in state.processes:
        if record.name == name:
            return record
    raise KeyError(f"no process named {name!r} in {state.state_dir}")


def respawn(state: LocalClusterState, name: str) -> ProcessRecord:
    """Start process `name` again with its recorded command (it must not be running: a
    master or worker killed on purpose, e.g. by a chaos test); returns the new record."""
    record = process_record(state, name)
    deadline = time.monotonic() + 5  # a SIGKILL just sent takes a moment
    while _alive(record) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(record):
        raise LocalClusterError(f"{record.role} {name} (pid {record.pid}) is still running")
    if not record.argv:
        raise LocalClusterError(f"{record.role} {name}: no command recorded (brought up by "
                                "an older raftkube)")
    _spawn(state, name, record.role, record.argv)
    return process_record(state, name)


def _raftkube(*args: str) -> list[str]:
    return [sys.executable, "-m", "raftkube.cli.raftkube_main", *args]


def _wait(what: str, predicate: Callable[[], bool], timeout: float,
          state: LocalClusterState) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for record in state.processes:
            if not _alive(record):
                tail = Path(record.log).read_text(errors="replace").splitlines()[-15:]
                raise LocalClusterError(f"{record.role} {record.name} exited while waiting "
                                        f"for {what}; its log ends:\n" + "\n".join(tail))
        time.sleep(0.5)
    raise LocalClusterError(f"timed out after {timeout:.0f} s waiting for {what}")


def up(config: LocalClusterConfig, progress: Callable[[str], None] = print
       ) -> LocalClusterState:
    """Bring a cluster up (see the module docstring). On failure everything made so far is
    torn down again and LocalClusterError says what went wrong."""
    if os.geteuid() != 0:
        raise LocalClusterError("raftkube up needs root (namespaces, bridges, nftables)")
    existing = LocalClusterState.load(config.state_dir)
    if existing is not None:
        raise LocalClusterError(f"a cluster is already up from {config.state_dir} "
                                "(run `raftkube down` first)")
    if config.masters < 1 or config.workers < 0:
        raise LocalClusterError("--masters must be at least 1 and --workers at least 0")
    config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = LocalClusterState(config.state_dir)
    state.save()
    try:
        _bring_up(config, state, progress)
    except BaseException:
        progress("bring-up failed; removing what was made")
        down(config.state_dir, progress=lambda _m: None)
        raise
    return state


def _bring_up(config: LocalClusterConfig, state: LocalClusterState,
              progress: Callable[[str], None]) -> None:
    from raftkube.client import Client

    t0 = time.monotonic()
    workers = [f"w{i + 1}" for i in range(config.workers)]
    progress(f"creating {len(workers)} worker hosts (network namespaces)")
    state.hosts = create_hosts(config.prefix, workers)
    state.save()
    gateway = state.hosts.gateway
    specs = tuple(MasterSpec(f"m{i + 1}", gateway, API_PORT_BASE + 10 * i,
                             API_PORT_BASE + 10 * i + 1, API_PORT_BASE + 10 * i + 2)
                  for i in range(config.masters))
    progress("creating credentials (raftkube init)")
    init = init_cluster(InitConfig(config.state_dir / "cluster", specs, tuple(workers)))
    state.masters = [s.name for s in specs]
    for spec in specs:
        data = config.state_dir / "masters" / spec.name
        data.mkdir(parents=True, exist_ok=True)
        cfg = data / "master.yaml"
        write_master_config(cfg, MasterConfig(
            name=spec.name, cluster_file=init.layout.cluster_file, data_dir=data / "data",
            audit_log=data / "audit.log"))
        _spawn(state, spec.name, "master", _raftkube("master", "--config", str(cfg)))
    progress(f"started {len(specs)} masters on {gateway}")
    admin = Client.from_config(init.layout.admin_config)
    try:
        _wait("a master to answer", lambda: _serving(admin), config.timeout, state)
        for host in state.hosts.hosts:
            cfg = _write_worker(config, init.layout, host)
            _spawn(state, host.name, "worker",
                   ["nsenter", f"--net=/run/netns/{host.netns}",
                    *_raftkube("worker", "--config", str(cfg))])
        if workers:
            progress(f"started {len(workers)} workers; waiting for their nodes to be Ready")
            _wait("every node to be Ready", lambda: _nodes_ready(admin, workers),
                  config.timeout, state)
    finally:
        admin.close()
    config.client_config.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(init.layout.admin_config, config.client_config)
    os.chmod(config.client_config, 0o600)
    state.client_config = str(config.client_config)
    state.save()
    progress(f"cluster up in {time.monotonic() - t0:.0f} s; admin config: "
             f"{config.client_config}")


def _serving(client) -> bool:
    try:
        client.namespaces.get("kube-system")
        return True
    except Exception:
        return False


def _nodes_ready(client, names: list[str]) -> bool:
    try:
        nodes = {n.metadata.name: n for n in client.nodes.list()}
    except Exception:
        return False
    for name in names:
        node = nodes.get(name)
        if node is None or not any(c.type == "Ready" and c.status == "True"
                                   for c in node.status.conditions):
            return False
    return True


def _write_worker(config: LocalClusterConfig, layout, host) -> Path:
    """The worker's config; its pod subnet is allocated by the masters at registration."""
    root = config.state_dir / "hosts" / host.name
    store = HostStoreConfig(host_dir=root / "podman")
    write_host_configs(store)
    build_busybox_image(PodmanCli(store))
    doc = {
        "nodeName": host.name,
        "clientConfig": str(layout.worker_config(host.name)),
        "nodeIP": host.address,
        "dataDir": str(root / "agent"),
        "runtime": {"kind": "podman", "podmanSocket": str(store.socket_path),
                    "hostDir": str(store.host_dir)},
        "resolvConf": {"nameservers": [host.address],
                       "searches": ["svc.cluster.local", "cluster.local"],
                       "options": ["ndots:5"]},
        "nodeAgent": {"listen": f"{host.address}:{NODE_AGENT_PORT}",
                      "certFile": str(layout.worker_cert(host.name)),
                      "keyFile": str(layout.worker_key(host.name)),
                      "caFile": str(layout.ca_cert)},
        "statsIntervalSeconds": 5,
        "metricsAddress": f"{host.address}:{WORKER_METRICS_PORT}",
        "network": {"clusterCIDR": config.pod_cidr, "dnsPort": 53, "ingressPort": 80,
                    "proxyTable": f"raftkube_{config.prefix}"},
    }
    path = root / "worker.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def down(state_dir: Path, progress: Callable[[str], None] = print) -> bool:
    """Stop every process, remove the hosts and the files `up` made. Returns False when no
    cluster was up from `state_dir`."""
    state = LocalClusterState.load(state_dir)
    if state is None:
        return False
    for record in reversed(state.processes):
        if _alive(record):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(r) for r in state.processes):
        time.sleep(0.2)
    for record in state.processes:
        if _alive(record):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGKILL)
    progress(f"stopped {len(state.processes)} processes")
    if state.hosts is not None:
        for host in state.hosts.hosts:  # SIGTERMed with their worker's group; make sure
            stop_watchdog(fence_dir(state_dir / "hosts" / host.name / "agent"))
        for host in state.hosts.hosts:
            _remove_host_containers(state_dir / "hosts" / host.name / "podman", host.netns)
            stop_processes_using(state_dir / "hosts" / host.name / "podman")
        destroy_hosts(state.hosts)
        progress(f"removed {len(state.hosts.hosts)} worker hosts")
    if state.client_config and Path(state.client_config).exists():
        Path(state.client_config).unlink()
    _unmount_below(state_dir)
    shutil.rmtree(state_dir, ignore_errors=True)
    progress(f"removed {state_dir}")
    return True


def processes_naming(text: str) -> list[int]:
    """Pids of the processes (other than this one) whose command line contains `text`."""
    needle = text.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop_processes_using(host_dir: Path) -> list[int]:
    """SIGKILL every process whose command line names `host_dir` (a worker's Podman
    service outlives the worker that started it when that worker was killed, and a new
    worker reuses it without owning it); returns their pids."""
    killed = []
    for pid in processes_naming(str(host_dir)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def _remove_host_containers(host_dir: Path, netns: str) -> None:
    """Remove every pod and container of one host's store, from inside its namespace (so
    Podman's network teardown happens there, not in the root namespace)."""
    if not (host_dir / "containers.conf").exists():
        return
    env = {**os.environ, **HostStoreConfig(host_dir=host_dir).env()}
    for args in (["pod", "rm", "--all", "--force", "--time", "0"],
                 ["rm", "--all", "--force", "--time", "0"]):
        subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "podman", *args], env=env,
                       capture_output=True, check=False, timeout=120)


def _unmount_below(root: Path) -> None:
    """Unmount anything (overlay, tmpfs, shm) still mounted under `root`, deepest first."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        points = [line.split()[1] for line in fh if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
