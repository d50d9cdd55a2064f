"""SDK watchers of the set workload's ConfigMaps, one starting on each master.

Watcher i is a `raftkube.client.Client` whose master list starts with master i, so the
watches begin spread over the masters and then fail over as the SDK does (idle watchdog,
next master, resume from the last delivered revision). Each watches ConfigMaps with the
round's label from the resourceVersion of a list taken before the workload, and records
WatchEvent(resourceVersion, (type, name)). The SDK promises every event once, in revision
order, with no gap (raftkube/client/watch.py): `checker()` compares every watcher with the
truth, the final objects' revisions (each ConfigMap is created once and never changed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from pathlib import Path

from raftkube.client import Client, ClientOptions
from raftkube.security.client_config import load_client_config
from raftkube.testing.chaos.checkers import WatchEvent, WatchResult, check_watches


class SdkWatchers:
    """One SDK ConfigMap watch per master (list order rotated); `stop()` ends them."""

    def __init__(self, admin_config: Path, label_selector: str, resource_version: str,
                 idle_timeout: float = 6.0) -> None:
        config = load_client_config(admin_config)
        masters = list(config.masters)
        self.start_revision = int(resource_version)
        self.events: dict[str, list[WatchEvent]] = {}
        # per watcher: (revision, uid, creationTimestamp, master serving the watch then),
        # shown next to payload mismatches
        self.served: dict[str, list[tuple[int, str, str, str]]] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._clients: list[Client] = []
        self._watches = []
        self._threads = []
        for i in range(len(masters)):
            client = Client(masters[i:] + masters[:i], config.credentials(),
                            options=ClientOptions(watch_idle_timeout=idle_timeout))
            name = f"sdk-from-{masters[i]}"
            self.events[name] = []
            self.served[name] = []
            watch = client.resource("ConfigMap").watch(
                "default", label_selector=label_selector, resource_version=resource_version)
            self._clients.append(client)
            self._watches.append(watch)
            self._threads.append(threading.Thread(
                target=self._follow, args=(name, watch, client), daemon=True, name=f"chaos-{name}"))

    def start(self) -> SdkWatchers:
        for thread in self._threads:
            thread.start()
        return self

    def _follow(self, name: str, watch: object, client: Client) -> None:
        try:
            for event in watch:  # type: ignore[attr-defined]
                self.events[name].append(WatchEvent(
                    int(event.resource_version), (event.type, event.object.metadata.name)))
                meta = event.object.metadata
                self.served[name].append((int(event.resource_version), meta.uid,
                                          meta.creation_timestamp, client.current_master))
        except Exception as exc:
            if not self._stop.is_set():
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Stop every watch and close the clients (idempotent)."""
        self._stop.set()
        for watch in self._watches:
            watch.stop()
        for thread in self._threads:
            thread.join(timeout=15)
        for client in self._clients:
            client.close()

    def checker(self, truth: Callable[[], dict[int, Hashable]]
                ) -> Callable[[object], WatchResult]:
        """A runner checker: stop, then check_watches against `truth()` from the start
        revision; a watch that died with an error fails the check."""

        def check_sdk_watches(history: object) -> WatchResult:
            self.stop()
            result = check_watches(truth(), self.events,
                                   dict.fromkeys(self.events, self.start_revision + 1))
            result.name = "sdk-watch"
            for report in result.watchers:
                wrong = set(report.mismatched)
                for served in self.served[report.watcher]:
                    if served[0] in wrong:
                        print(f"{report.watcher}: revision {served[0]} uid {served[1]} "
                              f"created {served[2]} served by {served[3]}", flush=True)
            if self.errors:
                raise AssertionError(f"SDK watches failed: {self.errors}")
            return result

        return check_sdk_watches
