"""The shape of a level-triggered controller: cache changes map to keys, worker threads
take keys from a WorkQueue and reconcile each one from the current cache.

```
 on_change(kind, ns, name) ─> keys_for(...) ─> WorkQueue ─> workers ─> sync(key)
                                                              │ ApiError ─> retry (back-off)
                                                              └ returns seconds ─> add_after
```

Subclasses implement `keys_for` and `sync`. `sync` must be idempotent and must decide from
the cache alone (the queue may hand it a key long after the change).
"""

from __future__ import annotations

import abc
import contextvars
import threading
from collections.abc import Hashable, Iterable

from raftkube import apierrors
from raftkube.logging_config import get_logger
from raftkube.masters.controllers.manager import ControllerContext
from raftkube.masters.controllers.work_queue import WorkQueue

log = get_logger(__name__)


class KeyedController(abc.ABC):
    """Base for queue-driven controllers; `workers` threads reconcile different keys."""

    name = "keyed"
    workers = 2

    def __init__(self, context: ControllerContext) -> None:
        self.context = context
        self.queue = WorkQueue()

    @abc.abstractmethod
    def keys_for(self, kind: str, namespace: str, name: str) -> Iterable[Hashable]:
        """The keys a change of (kind, namespace, name) may affect (never blocks)."""

    @abc.abstractmethod
    def sync(self, key: Hashable) -> float | None:
        """Reconcile `key`; return seconds after which to look again, or None."""

    def on_change(self, kind: str, namespace: str, name: str) -> None:
        for key in self.keys_for(kind, namespace, name):
            self.queue.add(key)

    def run(self, stop: threading.Event) -> None:
        threads = []
        for i in range(self.workers):
            ctx = contextvars.copy_context()  # keeps the controller principal
            thread = threading.Thread(target=ctx.run, args=(self._work, stop), daemon=True,
                                      name=f"{self.name}-{i}")
            thread.start()
            threads.append(thread)
        stop.wait()
        self.queue.shutdown()
        for thread in threads:
            thread.join(5)

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            key = self.queue.get(0.5)
            if key is None:
                continue
            try:
                again = self.sync(key)
            except (apierrors.Conflict, apierrors.NotFound, apierrors.AlreadyExists):
                self.queue.retry(key)  # the world moved on; decide again from fresh state
            except apierrors.ApiError as e:
                log.warning("sync failed", controller=self.name, key=str(key), error=str(e))
                self.queue.retry(key)
            except Exception:
                log.exception("sync crashed", controller=self.name, key=str(key))
                self.queue.retry(key)
            else:
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            finally:
                self.queue.done(key)
