"""A throwaway Podman "host" for tests and benchmarks: its own store, API service, busybox
image and bridge network, all named with a random prefix, and removed again by `stop()`.

    ScratchPodmanNode.start()
      /tmp/rkpod-XXXX/ (containers.conf, storage.conf, storage/, run/, networks/, tmp/)
      podman system service on /tmp/rkpod-XXXX/podman.sock  (PodmanService)
      localhost/busybox:latest built into the store
      network rkn<rand> on bridge rkb<rand>, a random free 10.200-239.x.0/24
      PodmanRuntime(node="rk-<rand>") on it
    stop(): remove every pod/container of the store, the network, stop the service,
            unmount what is left under the root, delete the root.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from raftkube.workers.images import BUSYBOX_IMAGE, PodmanCli, build_busybox_image
from raftkube.workers.podman_setup import HostStoreConfig, write_host_configs
from raftkube.workers.runtime.podman_runtime import PodmanRuntime, PodmanRuntimeConfig
from raftkube.workers.runtime.podman_service import PodmanService, PodmanServiceConfig


def _routed_networks() -> list[ipaddress.IPv4Network]:
    result = subprocess.run(["ip", "-j", "route"], capture_output=True, text=True, check=False)
    networks = []
    for route in json.loads(result.stdout or "[]"):
        with contextlib.suppress(ValueError):
            if route.get("dst") not in (None, "default"):
                networks.append(ipaddress.ip_network(route["dst"], strict=False))
    return networks


def free_test_subnet(rng: random.Random) -> ipaddress.IPv4Network:
    """A random /24 in 10.200.0.0-10.239.255.0 that no route on this machine overlaps."""
    used = _routed_networks()
    for _ in range(200):
        candidate = ipaddress.ip_network(f"10.{rng.randint(200, 239)}.{rng.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(n) for n in used if n.version == 4):
            return candidate
    raise RuntimeError("no free 10.200-239.x.0/24 subnet found")


@dataclass
class ScratchPodmanNode:
    """One throwaway node; see the module docstring. Use as a context manager."""

    root: Path
    store: HostStoreConfig
    service: PodmanService
    runtime: PodmanRuntime
    node: str
    network: str
    bridge: str
    subnet: ipaddress.IPv4Network
    image: str = BUSYBOX_IMAGE

    @classmethod
    def start(cls, prefix: str = "rk") -> ScratchPodmanNode:
        rng = random.Random()
        tag = f"{rng.getrandbits(32):08x}"
        root = Path(tempfile.mkdtemp(prefix=f"rkpod-{tag}-"))
        default_subnet = free_test_subnet(rng)
        store = HostStoreConfig(root, default_subnet=str(default_subnet))
        write_host_configs(store)
        service = PodmanService(PodmanServiceConfig(
            socket_path=store.socket_path, containers_conf=store.containers_conf,
            storage_conf=store.storage_conf, reuse_existing=False))
        subnet = free_test_subnet(rng)
        while subnet == default_subnet:
            subnet = free_test_subnet(rng)
        node = cls(root=root, store=store, service=service,
                   runtime=PodmanRuntime(PodmanRuntimeConfig(
                       node=f"{prefix}-{tag}", socket_path=str(store.socket_path))),
                   node=f"{prefix}-{tag}", network=f"rkn{tag}", bridge=f"rkb{tag}",
                   subnet=subnet)
        try:
            build_busybox_image(PodmanCli(store))
            service.start()
            gateway = str(next(subnet.hosts()))
            node.runtime.ensure_network(node.network, str(subnet), gateway, node.bridge)
        except BaseException:
            node.stop()
            raise
        return node

    def podman_env(self) -> dict[str, str]:
        """This process's environment pointed at this node's store (for the podman CLI)."""
        return {**os.environ, **self.store.env()}

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run the podman CLI against this node's store."""
        return PodmanCli(self.store).run(list(args), check=check)

    def stop(self) -> None:
        """Remove everything this node holds. Idempotent; never raises on leftovers."""
        cli = PodmanCli(self.store)
        if self.store.storage_conf.exists():
            cli.run(["pod", "rm", "-af", "-t", "0"], check=False)
            cli.run(["rm", "-af", "-t", "0"], check=False)
            cli.run(["network", "rm", "-f", self.network], check=False)
        self.runtime.close()
        self.service.stop()
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root))]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)

    def __enter__(self) -> ScratchPodmanNode:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
