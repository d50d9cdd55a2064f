"""Serving certificates of node agents, signed by the masters from a node's own request
(the kubelet-serving CSR flow of Kubernetes).

```
 joining machine                                   master (holds the node serving CA)
 key = new EC P-256 key (never leaves the machine)
 csr = serving_request(key, "w3", ["10.0.0.13"]) --JoinNode(join token, csr)-->
                                                   review_serving_request(csr, "w3", in_use)
                                                   NodeServingSigner.sign(...)
 worker.yaml nodeAgent.certFile  <------------------ cert: CN system:node:w3, O system:nodes,
                                                     SAN DNS w3 + IPs, serverAuth only
```

The node serving CA is its own self-signed root, apart from the cluster CA (whose key
stays offline and whose certificates allow no intermediate CA). Only the masters trust it,
and only when they dial node agents; the API ports trust the cluster CA alone, so a
certificate it signs can never authenticate a client to the API. Its certificates also
carry the extended key usage serverAuth only, which TLS refuses for client authentication.

Policy (`review_serving_request`, pure): the request must be a well-signed EC P-256 CSR for
exactly the node being joined: its subject CN is `system:node:NAME` (O, if any, is
`system:nodes`), its DNS names are NAME only, and none of its IPs is published by another
Node. Whatever else it asks for is not copied: the signer builds the certificate itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raftkube.security import pki
from raftkube.security.principal import NODE_USER_PREFIX, NODES_GROUP

NODE_SERVING_CA_NAME = "raftkube-node-serving-ca"


class ServingRequestRefused(ValueError):
    """A node's certificate signing request was refused; the message says why."""


@dataclass(frozen=True)
class ApprovedServingRequest:
    """What the policy lets the signer put in a node's serving certificate.

    node_name: the node (DNS SAN; the masters check it when they dial the node).
    public_key: the node's key from the request (the private key stays on the node).
    ips: IP SANs, in the request's order, without repeats.
    """

    node_name: str
    public_key: ec.EllipticCurvePublicKey
    ips: tuple[str, ...]


def create_node_serving_ca(valid_days: int = pki.DEFAULT_CA_DAYS) -> pki.KeyPair:
    """A new node serving CA: a self-signed root the masters hold to sign node agents'
    serving certificates."""
    return pki.create_ca(NODE_SERVING_CA_NAME, valid_days)


def serving_request(key: ec.EllipticCurvePrivateKey, node_name: str,
                    ips: Sequence[str] = ()) -> bytes:
    """The PEM certificate signing request a node sends for its agent's serving
    certificate: CN `system:node:NAME`, O `system:nodes`, DNS SAN NAME, one IP SAN per
    address. ValueError names an entry of `ips` that is not an IP address."""
    sans: list[x509.GeneralName] = [x509.DNSName(node_name)]
    for ip in dict.fromkeys(ips):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as exc:
            raise ValueError(f"serving certificate request for {node_name!r}: {ip!r} is not "
                             f"an IP address") from exc
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(pki.subject_name(f"{NODE_USER_PREFIX}{node_name}", [NODES_GROUP]))
           .add_extension(x509.SubjectAlternativeName(sans), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def _load_request(csr_pem: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise ServingRequestRefused(f"serving certificate request: not a PEM certificate "
                                    f"signing request ({exc})") from exc
    if not csr.is_signature_valid:
        raise ServingRequestRefused("serving certificate request: its signature does not "
                                    "match its key")
    return csr


def _requested_sans(csr: x509.CertificateSigningRequest
                    ) -> tuple[list[str], list[str], list[x509.GeneralName]]:
    """(DNS names, IPs, any other kind of name) the request asks for."""
    try:
        names = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return [], [], []
    dns = [n.value for n in names if isinstance(n, x509.DNSName)]
    ips = [str(n.value) for n in names if isinstance(n, x509.IPAddress)]
    other = [n for n in names if not isinstance(n, x509.DNSName | x509.IPAddress)]
    return dns, ips, other


def review_serving_request(csr_pem: bytes, node_name: str,
                           addresses_in_use: Mapping[str, str] | None = None
                           ) -> ApprovedServingRequest:
    """Decide whether the request `csr_pem` may become the serving certificate of node
    `node_name` (the name the caller is entitled to, never one read from the request).

    addresses_in_use: IP address -> name of the Node publishing it; an IP SAN used by
        another node is refused (this node's own entries are fine).
    Raises ServingRequestRefused naming what is wrong: not a valid CSR, not an EC P-256
    key, a subject or DNS name of another node, an IP of another node, a SAN of another
    kind (email, URI...).
    """
    prefix = f"serving certificate request for node {node_name!r}"
    csr = _load_request(csr_pem)
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ServingRequestRefused(f"{prefix}: the key must be EC P-256")
    user, groups = _subject_of(csr, prefix)
    if user != f"{NODE_USER_PREFIX}{node_name}":
        raise ServingRequestRefused(f"{prefix}: its subject names {user!r}; a node may only "
                                    f"ask for {NODE_USER_PREFIX}{node_name}")
    if any(g != NODES_GROUP for g in groups):
        raise ServingRequestRefused(f"{prefix}: organization {list(groups)} is not allowed "
                                    f"(only {NODES_GROUP})")
    dns, ips, other = _requested_sans(csr)
    foreign = [d for d in dns if d != node_name]
    if foreign:
        raise ServingRequestRefused(f"{prefix}: DNS names {foreign} are not this node's; "
                                    f"only {node_name!r} is allowed")
    if other:
        raise ServingRequestRefused(f"{prefix}: only DNS and IP names are allowed, not "
                                    f"{[str(o.value) for o in other]}")
    for ip in ips:
        owner = (addresses_in_use or {}).get(ip)
        if owner is not None and owner != node_name:
            raise ServingRequestRefused(f"{prefix}: IP {ip} belongs to node {owner!r}")
    return ApprovedServingRequest(node_name, key, tuple(dict.fromkeys(ips)))


def _subject_of(csr: x509.CertificateSigningRequest, prefix: str) -> tuple[str, tuple[str, ...]]:
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1:
        raise ServingRequestRefused(f"{prefix}: the subject needs exactly one common name")
    orgs = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(cns[0].value), tuple(str(o.value) for o in orgs)


class NodeServingSigner:
    """Signs approved serving requests with the node serving CA (held by every master).

    Contract: the certificate is built from the approval only: CN `system:node:NAME`,
    O `system:nodes`, SANs DNS NAME plus the approved IPs, extended key usage serverAuth
    only, not a CA, valid `valid_days`. Stateless and thread-safe.
    """

    def __init__(self, ca: pki.KeyPair, valid_days: int = pki.DEFAULT_CERT_DAYS) -> None:
        self.ca = ca
        self.valid_days = valid_days

    def sign(self, approved: ApprovedServingRequest) -> bytes:
        """The PEM serving certificate for `approved`."""
        sans: list[x509.GeneralName] = [x509.DNSName(approved.node_name)]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in approved.ips]
        cert = pki.sign_leaf(
            self.ca, pki.subject_name(f"{NODE_USER_PREFIX}{approved.node_name}", [NODES_GROUP]),
            approved.public_key, [ExtendedKeyUsageOID.SERVER_AUTH], sans, self.valid_days)
        return cert.public_bytes(serialization.Encoding.PEM)
