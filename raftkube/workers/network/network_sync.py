"""Feeds a node's network data path (NodeNetwork) from the API.

```
 informers (SDK): Services, Endpoints, Ingresses, Nodes
        │ any change: mark dirty
        ▼
 sync thread (debounced) ── api_model ──> ClusterNetworkState ──> NodeNetwork.update
                                          (routes, nft proxy, DNS, ingress)
```

Contract: `start()` returns once the informers have synced and the first update ran; a
failed update is logged and retried (on the next change, after a second, and at least every
`resync_interval`); `stop()` stops the informers and closes the NodeNetwork (which removes
its nft table and routes).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from raftkube.client import Client
from raftkube.logging_config import get_logger
from raftkube.workers.network.api_model import ingress_model, node_routes, services_model
from raftkube.workers.network.node_network import ClusterNetworkState, NodeNetwork

log = get_logger(__name__)


@dataclass(frozen=True)
class NetworkSyncConfig:
    """Timing of the sync loop.

    debounce: seconds to wait after a change before updating (changes come in bursts).
    resync_interval: seconds between updates even without changes (repairs outside edits).
    sync_timeout: seconds `start()` waits for the informers' first lists.
    """

    debounce: float = 0.05
    resync_interval: float = 30.0
    sync_timeout: float = 60.0


class NetworkSync:
    """Keeps `network` in line with the cluster's Services, Endpoints, Ingresses and Nodes."""

    def __init__(self, client: Client, network: NodeNetwork,
                 config: NetworkSyncConfig | None = None) -> None:
        self._client = client
        self.network = network
        self._config = config or NetworkSyncConfig()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._services = client.services.informer(all_namespaces=True)
        self._endpoints = client.endpoints.informer(all_namespaces=True)
        self._ingresses = (client.resource("Ingress").informer(all_namespaces=True)
                           if network.ingress is not None else None)
        self._nodes = client.nodes.informer()
        self.updates = 0

    def _informers(self) -> list:
        return [i for i in (self._services, self._endpoints, self._ingresses, self._nodes)
                if i is not None]

    def state(self) -> ClusterNetworkState:
        """What the node should program now, from the informers' caches."""
        return ClusterNetworkState(
            nodes=tuple(node_routes(self._nodes.list())),
            services=services_model(self._services.list(), self._endpoints.list()),
            ingresses=ingress_model(self._ingresses.list()) if self._ingresses else ())

    def start(self) -> NetworkSync:
        mark = self._dirty.set
        for informer in self._informers():
            informer.add_handlers(on_add=lambda _o: mark(),
                                  on_update=lambda _a, _b: mark(),
                                  on_delete=lambda _o: mark())
            informer.start()
        for informer in self._informers():
            if not informer.wait_for_sync(self._config.sync_timeout):
                self.stop()
                raise TimeoutError("network sync: the API did not answer the initial lists")
        self.network.start()
        self._update()
        self._thread = threading.Thread(target=self._run, name="network-sync", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(self._config.resync_interval)
            if self._stop.is_set():
                return
            self._stop.wait(self._config.debounce)
            self._dirty.clear()
            self._update()

    def _update(self) -> None:
        try:
            self.network.update(self.state())
            self.updates += 1
        except Exception:
            log.exception("node network update failed; will retry")
            self._stop.wait(1.0)
            self._dirty.set()

    def stop(self) -> None:
        """Stop syncing and close the network (nft table, routes, servers). Idempotent."""
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        for informer in self._informers():
            informer.stop()
        self.network.close()
