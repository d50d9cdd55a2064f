"""The node's service proxy: keeps one nftables table equal to the desired Services.

    caller (agent: Services + Endpoints) --sync(model)--> ServiceProxy
        render_table (pure) --> same as applied? skip
                            --> nft -f - (update: up to three transactions, add /
                                switch / remove, see nft_rules.update_steps; or one
                                full replace)
        removed UDP endpoints --> conntrack -D (stale flows would keep going to them)
    close() --> delete table

Contract: `sync` is idempotent and applies nothing when the rendered table equals the one
applied last; otherwise it sends only the difference (chains, elements) in up to three
transactions, or replaces the whole table on the first sync or when a difference fails.
Each transaction is atomic; when the replacement fails too, `sync` raises NftError
naming the nft message, and the next sync replaces the whole table. `close` is idempotent.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from raftkube.logging_config import get_logger
from raftkube.workers.network.model import ProxyModel
from raftkube.workers.network.nft_rules import (
    RenderedTable,
    RulesConfig,
    full_script,
    render_table,
    update_steps,
)

log = get_logger(__name__)


class NftError(RuntimeError):
    """nft refused a script; the message carries nft's error text."""


@dataclass(frozen=True)
class ServiceProxyConfig:
    """Settings of one node's service proxy.

    rules: what the table looks like (name, CIDRs, mark, NodePort addresses, balancing).
    netns: run nft/conntrack inside /run/netns/NETNS (tests, multi-host on one machine);
        None = the current namespace.
    nft_binary: path or name of nft.
    conntrack_binary: path or name of conntrack; "" disables flushing stale UDP flows.
    command_timeout_s: limit for each nft/conntrack call.
    resync_interval_s: how often `run` re-applies even without a notification (repairs a
        table removed or changed by someone else).
    """

    rules: RulesConfig = field(default_factory=RulesConfig)
    netns: str | None = None
    nft_binary: str = "nft"
    conntrack_binary: str = "conntrack"
    command_timeout_s: float = 60.0
    resync_interval_s: float = 30.0


def stale_udp_flows(previous: ProxyModel | None, new: ProxyModel) -> list[tuple[str, int, str]]:
    """Pure: UDP conntrack entries to delete after going from `previous` to `new`.

    (cluster IP, port, endpoint IP) for UDP endpoints that went away: their flows would
    keep going to them. (Packets sent while a port had no endpoint leave no flow behind:
    they are rejected before conntrack confirms them, so nothing to flush there; the
    netns test checks a client on one socket gets the first endpoint.)
    """
    if previous is None:
        return []
    now: dict[tuple[str, int], set[str]] = {}
    for svc in new.services:
        for port in svc.ports:
            if svc.cluster_ip and port.protocol == "UDP":
                now[(svc.cluster_ip, port.port)] = {e.ip for e in svc.endpoints}
    before: dict[tuple[str, int], set[str]] = {}
    for svc in previous.services:
        for port in svc.ports:
            if svc.cluster_ip and port.protocol == "UDP":
                before[(svc.cluster_ip, port.port)] = {e.ip for e in svc.endpoints}
    out = []
    for key, old_ips in before.items():
        for ip in old_ips - now.get(key, set()):
            out.append((key[0], key[1], ip))
    return sorted(set(out))


class ServiceProxy:
    """Programs Services into the kernel of one node. Thread-safe."""

    def __init__(self, config: ServiceProxyConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._applied: RenderedTable | None = None
        self._model: ProxyModel | None = None
        self._wake = threading.Event()
        self.applies = 0
        self.full_replacements = 0

    @property
    def table(self) -> str:
        return self.config.rules.table

    def _prefix(self) -> list[str]:
        if self.config.netns is None:
            return []
        return ["nsenter", f"--net=/run/netns/{self.config.netns}"]

    def _nft(self, script: str) -> None:
        proc = subprocess.run([*self._prefix(), self.config.nft_binary, "-f", "-"],
                              input=script, capture_output=True, text=True,
                              timeout=self.config.command_timeout_s)
        if proc.returncode != 0:
            raise NftError(f"nft -f failed for table {self.table}: {proc.stderr.strip()}")

    def sync(self, model: ProxyModel) -> bool:
        """Make the kernel table match `model`. Returns True when something was applied.

        Raises ModelError for bad input (nothing applied) and NftError when nft refuses.
        """
        with self._lock:
            if self._applied is not None and model == self._model:
                return False
            rendered = render_table(model, self.config.rules)
            if self.config.rules.node_ports_on_localhost and self._applied is None:
                self._enable_route_localnet()
            if self._applied is not None and self._applied == rendered:
                self._model = model
                return False
            if self._applied is None:
                self._nft(full_script(rendered))
                self.full_replacements += 1
            else:
                try:
                    steps = update_steps(self._applied, rendered)
                except ValueError:
                    steps = [full_script(rendered)]
                    self.full_replacements += 1
                try:
                    for step in steps:  # one transaction each (see update_steps)
                        self._nft(step)
                except NftError as exc:
                    log.warning("incremental nft update failed; replacing table",
                                table=self.table, error=str(exc))
                    self._applied = None  # earlier steps may have applied: the next
                    self._nft(full_script(rendered))  # sync replaces if this fails too
                    self.full_replacements += 1
            previous_model = self._model
            self._applied = rendered
            self._model = model
            self.applies += 1
        self._flush_stale_udp(stale_udp_flows(previous_model, model))
        return True

    def _enable_route_localnet(self) -> None:
        proc = subprocess.run([*self._prefix(), "sysctl", "-qw",
                               "net.ipv4.conf.all.route_localnet=1"],
                              capture_output=True, text=True,
                              timeout=self.config.command_timeout_s)
        if proc.returncode != 0:
            raise NftError(f"sysctl route_localnet (for NodePorts on 127.0.0.1): "
                           f"{proc.stderr.strip()}")

    def resync(self) -> None:
        """Re-apply the last model from scratch (repairs outside changes). No-op before the
        first sync."""
        with self._lock:
            model = self._model
            self._applied = None
        if model is not None:
            self.sync(model)

    def _flush_stale_udp(self, flows: list[tuple[str, int, str]]) -> None:
        binary = self.config.conntrack_binary
        if not flows or not binary or shutil.which(binary) is None:
            return
        for vip, port, ep_ip in flows:
            subprocess.run([*self._prefix(), binary, "-D", "-p", "udp", "--orig-dst", vip,
                            "--dport", str(port), "--reply-src", ep_ip],
                           capture_output=True, timeout=self.config.command_timeout_s)

    def notify(self) -> None:
        """Wake `run` to sync now."""
        self._wake.set()

    def run(self, model_source: Callable[[], ProxyModel], stop: threading.Event) -> None:
        """Loop until `stop`: sync(model_source()) on notify() and every resync interval.

        Errors are logged and retried on the next round; the table is removed on exit.
        To stop promptly: set `stop`, then call notify().
        """
        first = True
        try:
            while not stop.is_set():
                try:
                    if not first:
                        self.resync_if_missing()
                    self.sync(model_source())
                except Exception as exc:
                    log.error("service proxy sync failed", table=self.table, error=str(exc))
                first = False
                self._wake.wait(self.config.resync_interval_s)
                self._wake.clear()
        finally:
            self.close()

    def table_present(self) -> bool:
        """True when the proxy's table exists in the kernel."""
        proc = subprocess.run([*self._prefix(), self.config.nft_binary, "list", "table", "ip",
                               self.table], capture_output=True, text=True,
                              timeout=self.config.command_timeout_s)
        return proc.returncode == 0

    def resync_if_missing(self) -> None:
        """Rebuild from the last model when the table disappeared from the kernel."""
        if self._applied is not None and not self.table_present():
            log.warning("service proxy table vanished; rebuilding", table=self.table)
            self.resync()

    def close(self) -> None:
        """Delete the table. Idempotent; safe when nothing was ever applied."""
        with self._lock:
            t = self.table
            self._nft(f"table ip {t} {{\n}}\ndelete table ip {t}\n")
            self._applied = None
