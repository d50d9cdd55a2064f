"""Several "hosts" on one machine, each its own network namespace, for data-path tests.

Layout built by `NetnsCluster.setup()` (names are unique per run, so parallel runs never
collide)::

    root namespace:   bridge rkb<run>  (gateway address .1 of the run's test subnet)
                        |          |          |
                      veth       veth       veth
                        |          |          |
    host namespaces:  rk-<run>-h0  rk-<run>-h1  rk-<run>-h2   eth0 = .10, .11, .12 ...
                        |
                      bridge rkpods (pod gateway .1 of the host's pod CIDR)
                        |
    pod namespaces:   rk-<run>-h0-p2 ...  (eth0 = pod IP; default route via the pod gateway)

Traffic stays inside these namespaces: the root namespace has no route from the test
subnet to anywhere else (its bridge only answers for the test subnet).

Contract: `teardown()` is idempotent and removes everything the run created (processes it
started, namespaces, the bridge) even when setup failed half way.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from raftkube.logging_config import get_logger

log = get_logger(__name__)


class NetnsError(RuntimeError):
    """A namespace operation failed; the message names the command and its stderr."""


class DelayUnsupportedError(NetnsError):
    """The kernel has no netem qdisc, so latency cannot be injected."""


@dataclass(frozen=True)
class NetnsConfig:
    """How a multi-host test network is built.

    hosts: number of host namespaces.
    host_subnet: the subnet joining hosts on the root bridge; None picks a free random
        172.16.0.0/12 /24 per run.
    pod_cluster_cidr: the /16 pod addresses come from; host i gets its i-th /24 (offset by
        one, so host 0 has x.y.1.0/24). None picks a random 10.X.0.0/16 per run that does
        not overlap the Kubernetes defaults (10.96/16, 10.244/16).
    with_pod_bridge: create a pod bridge in every host (needed by `add_pod`).
    command_timeout_s: limit for each helper command.
    """

    hosts: int = 2
    host_subnet: str | None = None
    pod_cluster_cidr: str | None = None
    with_pod_bridge: bool = True
    command_timeout_s: float = 20.0


@dataclass
class Pod:
    """A pod stand-in: its own namespace on its host's pod bridge."""

    name: str
    netns: str
    ip: str
    host: Host
    host_veth: str


@dataclass
class Host:
    """One emulated machine: its namespace, address and pod subnet."""

    index: int
    name: str
    netns: str
    address: str
    pod_cidr: str
    pod_gateway: str
    root_veth: str
    pods: list[Pod] = field(default_factory=list)


def _run(argv: Sequence[str], timeout: float, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def netns_prefix(netns: str) -> list[str]:
    """argv prefix that runs a command inside namespace `netns` (works for podman too)."""
    return ["nsenter", f"--net=/run/netns/{netns}"]


def netem_available() -> bool:
    """True when this kernel can add a netem qdisc (checked in a throwaway namespace)."""
    probe = f"rk-{secrets.token_hex(3)}-netem"
    try:
        _run(["ip", "netns", "add", probe], 10)
        proc = _run(
            [*netns_prefix(probe), "tc", "qdisc", "add", "dev", "lo", "root", "netem",
             "delay", "1ms"], 10, check=False)
        return proc.returncode == 0
    finally:
        _run(["ip", "netns", "del", probe], 10, check=False)


def _used_ipv4_networks() -> list[ipaddress.IPv4Network]:
    out = _run(["ip", "-4", "-o", "route", "show", "table", "all"], 10).stdout
    nets = []
    for line in out.splitlines():
        word = line.split()[0]
        if word in ("local", "broadcast", "unreachable", "blackhole", "prohibit"):
            word = line.split()[1]
        if word == "default":
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(word, strict=False))
    return nets


def _pick_host_subnet() -> ipaddress.IPv4Network:
    used = _used_ipv4_networks()
    for _ in range(200):
        candidate = ipaddress.ip_network(
            f"172.{16 + secrets.randbelow(16)}.{secrets.randbelow(256)}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise NetnsError("no free /24 in 172.16.0.0/12 for the test hosts")


def _pick_pod_cluster_cidr() -> ipaddress.IPv4Network:
    used = _used_ipv4_networks()
    for _ in range(200):
        second = 100 + secrets.randbelow(140)
        if second in (96, 244):
            continue
        candidate = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise NetnsError("no free /16 in 10.100-239.0.0 for test pods")


class NetnsCluster:
    """Builds, drives and removes a set of host namespaces joined by a root bridge."""

    POD_BRIDGE = "rkpods"

    def __init__(self, config: NetnsConfig | None = None) -> None:
        self.config = config or NetnsConfig()
        self.run_id = secrets.token_hex(3)
        self.prefix = f"rk-{self.run_id}"
        self.bridge = f"rkb{self.run_id}"
        self.hosts: list[Host] = []
        self._subnet: ipaddress.IPv4Network | None = None
        self._pod_cluster: ipaddress.IPv4Network | None = None
        self._procs: list[subprocess.Popen] = []
        self._created_netns: list[str] = []
        self._bridge_created = False

    # ---- building -------------------------------------------------------------------
    @property
    def subnet(self) -> ipaddress.IPv4Network:
        if self._subnet is None:
            raise NetnsError("cluster not set up")
        return self._subnet

    @property
    def pod_cluster_cidr(self) -> ipaddress.IPv4Network:
        if self._pod_cluster is None:
            raise NetnsError("cluster not set up")
        return self._pod_cluster

    @property
    def gateway(self) -> str:
        """The root bridge's address: every host's default route points at it."""
        return str(self.subnet.network_address + 1)

    def setup(self) -> NetnsCluster:
        """Create the bridge, hosts and pod bridges. On failure, tears down and re-raises."""
        try:
            self._setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def _setup(self) -> None:
        t = self.config.command_timeout_s
        self._subnet = ipaddress.ip_network(self.config.host_subnet) if \
            self.config.host_subnet else _pick_host_subnet()
        self._pod_cluster = ipaddress.ip_network(self.config.pod_cluster_cidr) if \
            self.config.pod_cluster_cidr else _pick_pod_cluster_cidr()
        prefixlen = self._subnet.prefixlen
        _run(["ip", "link", "add", self.bridge, "type", "bridge"], t)
        self._bridge_created = True
        self._record()
        _run(["ip", "addr", "add", f"{self.gateway}/{prefixlen}", "dev", self.bridge], t)
        _run(["ip", "link", "set", self.bridge, "up"], t)
        pod_subnets = list(self._pod_cluster.subnets(new_prefix=24))
        for i in range(self.config.hosts):
            netns = f"{self.prefix}-h{i}"
            address = str(self._subnet.network_address + 10 + i)
            pod_cidr = pod_subnets[i + 1]
            host = Host(index=i, name=f"h{i}", netns=netns, address=address,
                        pod_cidr=str(pod_cidr), pod_gateway=str(pod_cidr.network_address + 1),
                        root_veth=f"rk{self.run_id}h{i}")
            self._add_netns(netns)
            peer = f"rk{self.run_id}x{i}"
            _run(["ip", "link", "add", host.root_veth, "type", "veth", "peer", "name", peer], t)
            _run(["ip", "link", "set", peer, "netns", netns], t)
            _run(["ip", "link", "set", host.root_veth, "master", self.bridge, "up"], t)
            ns = ["ip", "-n", netns]
            _run([*ns, "link", "set", peer, "name", "eth0"], t)
            _run([*ns, "addr", "add", f"{address}/{prefixlen}", "dev", "eth0"], t)
            _run([*ns, "link", "set", "eth0", "up"], t)
            _run([*ns, "link", "set", "lo", "up"], t)
            _run([*ns, "route", "add", "default", "via", self.gateway], t)
            _run([*netns_prefix(netns), "sysctl", "-qw", "net.ipv4.ip_forward=1"], t)
            if self.config.with_pod_bridge:
                _run([*ns, "link", "add", self.POD_BRIDGE, "type", "bridge"], t)
                _run([*ns, "addr", "add", f"{host.pod_gateway}/24", "dev", self.POD_BRIDGE], t)
                _run([*ns, "link", "set", self.POD_BRIDGE, "up"], t)
            self.hosts.append(host)
        log.info("netns cluster up", prefix=self.prefix, subnet=str(self._subnet),
                 pods=str(self._pod_cluster), hosts=len(self.hosts))

    def _add_netns(self, netns: str) -> None:
        _run(["ip", "netns", "add", netns], self.config.command_timeout_s)
        self._created_netns.append(netns)
        self._record()

    def add_pod(self, host: Host, index: int | None = None) -> Pod:
        """Create a pod namespace on `host`'s pod bridge with IP pod_cidr.<index>.

        index defaults to the next free one starting at 2. Hairpin is on for its bridge
        port, as a pod reaching itself through a service needs.
        """
        t = self.config.command_timeout_s
        if not self.config.with_pod_bridge:
            raise NetnsError("add_pod needs NetnsConfig.with_pod_bridge")
        used = {int(ipaddress.ip_address(p.ip)) for p in host.pods}
        net = ipaddress.ip_network(host.pod_cidr)
        if index is None:
            index = 2
            while int(net.network_address) + index in used:
                index += 1
        ip = str(net.network_address + index)
        name = f"p{index}"
        netns = f"{host.netns}-{name}"
        self._add_netns(netns)
        host_veth = f"v{name}"
        ns = ["ip", "-n", host.netns]
        _run([*ns, "link", "add", host_veth, "type", "veth", "peer", "name", "eth0",
              "netns", netns], t)
        _run([*ns, "link", "set", host_veth, "master", self.POD_BRIDGE, "up"], t)
        _run([*ns, "link", "set", "dev", host_veth, "type", "bridge_slave", "hairpin", "on"], t)
        pns = ["ip", "-n", netns]
        _run([*pns, "addr", "add", f"{ip}/24", "dev", "eth0"], t)
        _run([*pns, "link", "set", "eth0", "up"], t)
        _run([*pns, "link", "set", "lo", "up"], t)
        _run([*pns, "route", "add", "default", "via", host.pod_gateway], t)
        pod = Pod(name=name, netns=netns, ip=ip, host=host, host_veth=host_veth)
        host.pods.append(pod)
        return pod

    def remove_pod(self, pod: Pod) -> None:
        """Kill the pod's processes and delete its namespace. Idempotent."""
        self._kill_netns_pids(pod.netns)
        _run(["ip", "-n", pod.host.netns, "link", "del", pod.host_veth],
             self.config.command_timeout_s, check=False)
        _run(["ip", "netns", "del", pod.netns], self.config.command_timeout_s, check=False)
        if pod in pod.host.pods:
            pod.host.pods.remove(pod)
        if pod.netns in self._created_netns:
            self._created_netns.remove(pod.netns)

    # ---- running things -------------------------------------------------------------
    def run(self, netns: str, argv: Sequence[str], check: bool = True,
            timeout: float | None = None, input: str | None = None
            ) -> subprocess.CompletedProcess:
        """Run argv inside `netns` (a host's or pod's) and wait for it."""
        proc = subprocess.run([*netns_prefix(netns), *argv], capture_output=True, text=True,
                              timeout=timeout or self.config.command_timeout_s, input=input)
        if check and proc.returncode != 0:
            raise NetnsError(f"in {netns}: {' '.join(argv)} failed ({proc.returncode}): "
                             f"{proc.stderr.strip()}")
        return proc

    def popen(self, netns: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen:
        """Start argv inside `netns` in the background; teardown stops it by PID."""
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen([*netns_prefix(netns), *argv], start_new_session=True,
                                **kwargs)  # type: ignore[call-overload]
        self._procs.append(proc)
        return proc

    def start_echo_http(self, netns: str, port: int, name: str, bind: str = "0.0.0.0",
                        ready_timeout_s: float = 15.0) -> subprocess.Popen:
        """Start raftkube.testing.echo_http inside `netns`; returns once it listens."""
        env = dict(os.environ, PYTHONPATH=_project_root())
        proc = self.popen(netns, [sys.executable, "-m", "raftkube.testing.echo_http",
                                  "--bind", bind, "--port", str(port), "--name", name],
                          stdout=subprocess.PIPE, env=env)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], ready_timeout_s)
        line = proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self.stop(proc)
            raise NetnsError(f"echo_http {name} in {netns} did not start: {line!r}")
        return proc

    def http_probe(self, netns: str, url: str, count: int = 10, timeout: float = 3.0,
                   keepalive: bool = False, concurrency: int = 1, host_header: str = "",
                   duration_s: float = 0.0) -> dict:
        """Run raftkube.testing.http_probe inside `netns`; returns its JSON result."""
        argv = [sys.executable, "-m", "raftkube.testing.http_probe", "--url", url,
                "--count", str(count), "--timeout", str(timeout),
                "--concurrency", str(concurrency)]
        if keepalive:
            argv.append("--keepalive")
        if host_header:
            argv += ["--host", host_header]
        if duration_s:
            argv += ["--duration", str(duration_s)]
        env = dict(os.environ, PYTHONPATH=_project_root())
        proc = subprocess.run([*netns_prefix(netns), *argv], capture_output=True, text=True,
                              env=env, timeout=60.0 + (duration_s * 2 if duration_s
                                                         else count * timeout))
        if proc.returncode != 0:
            raise NetnsError(f"http_probe in {netns} failed: {proc.stderr.strip()}")
        return json.loads(proc.stdout)

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        """Stop a process started by `popen` (SIGTERM, then SIGKILL). Idempotent."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        if proc in self._procs:
            self._procs.remove(proc)

    # ---- faults ---------------------------------------------------------------------
    def _partition_table(self) -> str:
        return f"rk_partition_{self.run_id}"

    def partition(self, host: Host, peers: Sequence[str]) -> None:
        """Drop all traffic between `host` and the given peer addresses (both directions,
        inside host's namespace). Repeated calls add peers."""
        if not peers:
            return
        table = self._partition_table()
        elements = ", ".join(peers)
        script = (
            f"table inet {table} {{\n"
            "  set peers {\n    type ipv4_addr; flags interval;\n  }\n"
            "  chain drop_in {\n    type filter hook input priority -200; policy accept;\n"
            "    ip saddr @peers drop\n  }\n"
            "  chain drop_fwd {\n    type filter hook forward priority -200; policy accept;\n"
            "    ip saddr @peers drop\n    ip daddr @peers drop\n  }\n"
            "  chain drop_out {\n    type filter hook output priority -200; policy accept;\n"
            "    ip daddr @peers drop\n  }\n"
            "}\n"
            f"add element inet {table} peers {{ {elements} }}\n"
        )
        self.run(host.netns, ["nft", "-f", "-"], input=script)

    def heal(self, host: Host) -> None:
        """Remove every partition rule of `host`. Idempotent."""
        table = self._partition_table()
        self.run(host.netns, ["nft", "-f", "-"],
                 input=f"table inet {table} {{}}\ndelete table inet {table}\n")

    def add_delay(self, host: Host, delay_ms: float, device: str = "eth0") -> None:
        """Delay every packet leaving `host` by delay_ms with tc netem.

        Raises DelayUnsupportedError when this kernel has no netem (checked on call).
        """
        proc = self.run(host.netns, ["tc", "qdisc", "replace", "dev", device, "root",
                                     "netem", "delay", f"{delay_ms}ms"], check=False)
        if proc.returncode != 0:
            if "unknown" in proc.stderr.lower():
                raise DelayUnsupportedError(
                    f"tc netem is not available in this kernel: {proc.stderr.strip()}")
            raise NetnsError(f"tc netem on {host.netns}/{device}: {proc.stderr.strip()}")

    def clear_delay(self, host: Host, device: str = "eth0") -> None:
        """Remove a netem qdisc added by add_delay. Idempotent."""
        self.run(host.netns, ["tc", "qdisc", "del", "dev", device, "root"], check=False)

    # ---- teardown -------------------------------------------------------------------
    def _kill_netns_pids(self, netns: str) -> None:
        proc = _run(["ip", "netns", "pids", netns], self.config.command_timeout_s, check=False)
        for word in proc.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(word), signal.SIGKILL)

    def teardown(self) -> None:
        """Stop started processes, delete this run's namespaces and bridge. Idempotent."""
        for proc in list(self._procs):
            with contextlib.suppress(Exception):
                self.stop(proc, timeout=3)
        for netns in reversed(self._created_netns):
            self._kill_netns_pids(netns)
        deadline = time.monotonic() + 5
        for netns in reversed(self._created_netns):
            _run(["ip", "netns", "del", netns], self.config.command_timeout_s, check=False)
        self._created_netns.clear()
        if self._bridge_created:
            # veths vanish with their namespace once no process holds it; the root side of
            # a host veth is deleted explicitly in case something still holds the netns.
            for host in self.hosts:
                _run(["ip", "link", "del", host.root_veth], 10, check=False)
            while time.monotonic() < deadline:
                proc = _run(["ip", "link", "del", self.bridge], 10, check=False)
                if proc.returncode == 0 or "Cannot find" in proc.stderr:
                    break
                time.sleep(0.1)
            self._bridge_created = False
        self.hosts.clear()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(RUNS_DIR, f"{self.run_id}.json"))

    def _record(self) -> None:
        """Write what this run created, so `reap_orphaned_runs` can remove it should this
        process die before teardown (SIGKILL, crash)."""
        os.makedirs(RUNS_DIR, exist_ok=True)
        data = {"pid": os.getpid(), "start": _start_time(os.getpid()),
                "netns": list(self._created_netns),
                "bridge": self.bridge if self._bridge_created else ""}
        path = os.path.join(RUNS_DIR, f"{self.run_id}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(path + ".tmp", path)


RUNS_DIR = "/run/raftkube-netns-runs"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def reap_orphaned_runs() -> list[str]:
    """Remove namespaces and bridges of earlier runs whose process is gone.

    Only what a NetnsCluster recorded in RUNS_DIR is touched. Returns the run ids reaped.
    """
    reaped = []
    try:
        names = os.listdir(RUNS_DIR)
    except FileNotFoundError:
        return reaped
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(RUNS_DIR, name)
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        if data.get("start") and _start_time(int(data["pid"])) == data["start"]:
            continue  # its process is alive
        for netns in reversed(data.get("netns", [])):
            pids = _run(["ip", "netns", "pids", netns], 10, check=False).stdout.split()
            for word in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(word), signal.SIGKILL)
            _run(["ip", "netns", "del", netns], 10, check=False)
        if data.get("bridge"):
            _run(["ip", "link", "del", data["bridge"]], 10, check=False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        reaped.append(name[:-5])
    return reaped


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def require_netns_tools() -> list[str]:
    """Names of the tools a NetnsCluster needs that are missing from PATH."""
    return [t for t in ("ip", "nsenter", "nft", "sysctl") if shutil.which(t) is None]


@contextlib.contextmanager
def netns_cluster(config: NetnsConfig | None = None) -> Iterator[NetnsCluster]:
    """Context manager: a set-up NetnsCluster that is always torn down."""
    cluster = NetnsCluster(config)
    try:
        yield cluster.setup()
    finally:
        cluster.teardown()
