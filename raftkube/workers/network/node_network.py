"""The worker's network role (kube-proxy + node DNS + ingress + pod routes), fed by the API.

```
 informers (SDK): Services, Endpoints, Ingresses, Nodes
        │ any change: mark dirty
        ▼
 sync thread (debounced):
   services_model ──> ServiceProxy.sync (one nft transaction)
                 └──> DnsServer.update, IngressProxy.update
   node_routes ─────> RouteSyncer.sync (routes to other nodes' pod subnets)
```

Contract: `start()` returns once the informers have synced and the first sync ran; a failed
sync is logged and retried (the next change or `resync_interval` tries again); `stop()`
removes what this node programmed (nft table, routes) and stops the servers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from raftkube.client import Client
from raftkube.logging_config import get_logger
from raftkube.workers.network.api_model import ingress_model, node_routes, services_model
from raftkube.workers.network.dns_server import DnsConfig, DnsServer
from raftkube.workers.network.ingress_proxy import IngressProxy, IngressProxyConfig
from raftkube.workers.network.model import ProxyModel
from raftkube.workers.network.pod_routes import RouteConfig, RouteSyncer
from raftkube.workers.network.service_proxy import ServiceProxy, ServiceProxyConfig

log = get_logger(__name__)


@dataclass(frozen=True)
class NodeNetworkConfig:
    """The network parts one worker runs; None turns a part off.

    proxy: the service proxy (nftables) settings.
    dns: the node DNS server.
    ingress: the ingress HTTP proxy.
    routes: routes to other nodes' pod subnets.
    debounce: seconds to wait after a change before syncing (changes come in bursts).
    resync_interval: seconds between syncs even without changes (repairs outside edits).
    sync_timeout: seconds `start()` waits for the informers to sync.
    """

    proxy: ServiceProxyConfig | None = None
    dns: DnsConfig | None = None
    ingress: IngressProxyConfig | None = None
    routes: RouteConfig | None = None
    debounce: float = 0.05
    resync_interval: float = 30.0
    sync_timeout: float = 60.0


class NodeNetwork:
    """Keeps one node's data path in line with the cluster's Services, Endpoints, Ingresses
    and Nodes."""

    def __init__(self, client: Client, config: NodeNetworkConfig) -> None:
        self._client = client
        self._config = config
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.proxy = ServiceProxy(config.proxy) if config.proxy else None
        self.dns = DnsServer(config.dns) if config.dns else None
        self.ingress = IngressProxy(config.ingress) if config.ingress else None
        self.routes = RouteSyncer(config.routes) if config.routes else None
        self._services = client.services.informer(all_namespaces=True)
        self._endpoints = client.endpoints.informer(all_namespaces=True)
        self._ingresses = (client.resource("Ingress").informer(all_namespaces=True)
                           if self.ingress else None)
        self._nodes = client.nodes.informer() if self.routes else None
        self.syncs = 0

    def _informers(self) -> list:
        return [i for i in (self._services, self._endpoints, self._ingresses, self._nodes)
                if i is not None]

    def start(self) -> NodeNetwork:
        mark = self._dirty.set
        for informer in self._informers():
            informer.add_handlers(on_add=lambda _o: mark(),
                                  on_update=lambda _a, _b: mark(),
                                  on_delete=lambda _o: mark())
            informer.start()
        for informer in self._informers():
            if not informer.wait_for_sync(self._config.sync_timeout):
                self.stop()
                raise TimeoutError("node network: the API did not answer the initial lists")
        if self.dns:
            self.dns.start()
        if self.ingress:
            self.ingress.start()
        self._sync_once()
        self._thread = threading.Thread(target=self._run, name="node-network", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(self._config.resync_interval)
            if self._stop.is_set():
                return
            self._stop.wait(self._config.debounce)
            self._dirty.clear()
            self._sync_once()

    def _sync_once(self) -> None:
        try:
            services = services_model(self._services.list(), self._endpoints.list())
            if self.proxy:
                self.proxy.sync(ProxyModel(services))
            if self.dns:
                self.dns.update(services)
            if self.ingress and self._ingresses is not None:
                self.ingress.update(ingress_model(self._ingresses.list()), services)
            if self.routes and self._nodes is not None:
                self.routes.sync(node_routes(self._nodes.list()))
            self.syncs += 1
        except Exception:
            log.exception("node network sync failed; will retry")
            self._dirty.set()
            self._stop.wait(1.0)

    def stop(self) -> None:
        """Stop syncing, remove the nft table and routes, stop DNS and ingress. Idempotent."""
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        for informer in self._informers():
            informer.stop()
        if self.proxy:
            self.proxy.close()
        if self.routes:
            self.routes.clear()
        if self.dns:
            self.dns.close()
        if self.ingress:
            self.ingress.close()
