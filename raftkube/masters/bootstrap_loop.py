"""Leader-only loop that makes sure a cluster has what every cluster has.

On each leadership term: the namespaces `default`, `kube-system` and the node-lease
namespace exist, and the token table from `raftkube init` is in the store (seeded once;
afterwards the store's table is the truth). Then it waits for the term to end.
Idempotent: every step is create-if-absent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from raftkube import apierrors
from raftkube.api.v1 import core_pb2
from raftkube.consensus.store import Store
from raftkube.logging_config import get_logger
from raftkube.masters import system_keys
from raftkube.masters.object_api import ObjectApi
from raftkube.security import tokens
from raftkube.security.grpc_auth import acting_as
from raftkube.security.principal import Principal

log = get_logger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "raftkube-node-lease")
CONTROLLER_PRINCIPAL = Principal("system:controller-manager", ("system:masters",), "internal")


class BootstrapLoop:
    """Creates the system namespaces and seeds the token table."""

    name = "bootstrap"

    def __init__(self, api: ObjectApi, store: Store,
                 seed_tokens: Callable[[], tokens.TokenTable]) -> None:
        self._api = api
        self._store = store
        self._seed_tokens = seed_tokens

    def run(self, stop: threading.Event) -> None:
        with acting_as(CONTROLLER_PRINCIPAL):
            while not stop.is_set():
                try:
                    self._ensure()
                    break
                except apierrors.ApiError as e:
                    log.warning("bootstrap step failed; retrying", error=str(e))
                    stop.wait(0.5)
        stop.wait()

    def _ensure(self) -> None:
        if system_keys.seed_if_absent(self._store, system_keys.TOKENS_KEY,
                                      tokens.dumps(self._seed_tokens()).encode()):
            log.info("token table seeded into the store")
        for name in SYSTEM_NAMESPACES:
            ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
            ns.metadata.name = name
            try:
                self._api.create(ns)
                log.info("namespace created", namespace=name)
            except apierrors.AlreadyExists:
                pass
