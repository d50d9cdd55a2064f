"""The set workload's client: each element is a ConfigMap created through the SDK.

Element N is ConfigMap `chaos-<run>-N` (label chaos=<run>) in namespace default, created by
one shared `raftkube.client.Client` (admin credentials, failover between masters, bounded
retries). Outcomes, per the SDK's contract: success is ok; `Unavailable` (no attempt ever
reached a master that could take it: every attempt provably not applied) and refusals
(`Invalid`, `Forbidden`) are definite failures; `UnknownOutcome` and anything else are
unknown. `elements()` / `creations()` read the final state with a linearizable list,
retrying until the healed cluster answers.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.client import Client, ClientOptions, RetryConfig
from raftkube.testing.chaos.history import DefiniteFailure

DEFINITE = (apierrors.Unavailable, apierrors.Invalid, apierrors.Forbidden)


class ConfigMapSet:
    """add(n) creates ConfigMap N; elements() lists them. Thread-safe; close() when done."""

    def __init__(self, admin_config: Path, seed: int, call_timeout: float = 2.0,
                 deadline: float = 5.0) -> None:
        self.run = secrets.token_hex(3)
        self.client = Client.from_config(admin_config, options=ClientOptions(
            retry=RetryConfig(max_attempts=5, deadline=deadline, call_timeout=call_timeout,
                              max_backoff=1.0),
            linearizable_reads=True, seed=seed, random_start=True))

    def _name(self, element: int) -> str:
        return f"chaos-{self.run}-{element}"

    def add(self, element: int) -> None:
        cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
        cm.metadata.name = self._name(element)
        cm.metadata.labels["chaos"] = self.run
        cm.data["element"] = str(element)
        try:
            self.client.create(cm)
        except DEFINITE as exc:
            raise DefiniteFailure(f"{type(exc).__name__}: {exc}") from exc

    @property
    def label_selector(self) -> str:
        return f"chaos={self.run}"

    def list(self, timeout: float = 60.0) -> tuple[list[core_pb2.ConfigMap], str]:
        """This run's ConfigMaps and the list's resourceVersion (linearizable, through the
        leader), retried until the cluster answers or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.client.resource("ConfigMap").list_with_version(
                    "default", label_selector=self.label_selector)
            except apierrors.ApiError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def elements(self) -> set[int]:
        """Every element present now."""
        return {int(cm.data["element"]) for cm in self.list()[0]}

    def creations(self) -> dict[int, tuple[str, str]]:
        """resourceVersion -> ("ADDED", name) of every ConfigMap present now: each was
        created once and never changed, so these are all the events a watch can see."""
        return {int(cm.metadata.resource_version): ("ADDED", cm.metadata.name)
                for cm in self.list()[0]}

    def close(self) -> None:
        self.client.close()
