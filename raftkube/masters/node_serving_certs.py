"""Serving certificates for joining workers' node agents, on the master side of JoinNode.

The policy and the signing live in security/node_serving.py; this module feeds them what
only a master knows (the addresses the Nodes in the store publish) and turns a refusal
into an API error the joining machine sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from raftkube import apierrors
from raftkube.masters.object_store import ObjectStore
from raftkube.objects import registry
from raftkube.security.node_serving import (
    NodeServingSigner,
    ServingRequestRefused,
    review_serving_request,
)

_NODE = registry.by_kind("Node")

AddressOwners = Callable[[], Mapping[str, str]]
"""Returns IP address -> name of the Node publishing it."""


def node_address_owners(objects: ObjectStore) -> AddressOwners:
    """An AddressOwners reading the Nodes of `objects` (a local read at each call)."""

    def owners() -> dict[str, str]:
        nodes, _, _ = objects.list(_NODE)
        return {a.address: n.metadata.name for n in nodes for a in n.status.addresses
                if a.address}

    return owners


class ServingCertificates:
    """Signs the serving certificate a joining node asks for, if this master can.

    signer: the node serving CA's signer; None = this master holds none (a cluster
        directory made before it existed), and requests get no certificate.
    address_owners: the addresses other Nodes publish (a request naming one is refused).
    """

    def __init__(self, signer: NodeServingSigner | None,
                 address_owners: AddressOwners) -> None:
        self._signer = signer
        self._address_owners = address_owners

    @property
    def available(self) -> bool:
        return self._signer is not None

    def issue(self, node_name: str, csr_pem: bytes) -> bytes:
        """The PEM serving certificate of `node_name` for `csr_pem`; b"" when no CSR was
        sent or this master cannot sign. Call it before any state changes: it raises
        apierrors.Invalid with the policy's reason when the request is refused."""
        if not csr_pem or self._signer is None:
            return b""
        try:
            approved = review_serving_request(csr_pem, node_name, self._address_owners())
        except ServingRequestRefused as e:
            raise apierrors.Invalid(str(e)) from e
        return self._signer.sign(approved)
