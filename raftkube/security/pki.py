"""The cluster's certificate authority and the certificates it issues.

Keys are EC P-256. The CA signs:
- one server certificate per master (SANs: the master's IPs and DNS names; extended key
  usage serverAuth and clientAuth, so a master can also call another master);
- client certificates: workers get CN `system:node:NAME`, O `system:nodes`; the admin gets
  O `system:masters`. The CN is the user name and each O is a group (the Kubernetes rule).

PEM files: keys are written with mode 0600, certificates 0644, atomically (temp file +
rename), so a crash never leaves half a key on disk.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raftkube.security.principal import MASTERS_GROUP, NODE_USER_PREFIX, NODES_GROUP

DEFAULT_CA_DAYS = 3650
DEFAULT_CERT_DAYS = 365
# Certificates start slightly in the past so hosts whose clocks lag a little accept them.
_BACKDATE = datetime.timedelta(minutes=5)


class PKIError(Exception):
    """A certificate or key file is missing, unreadable or not what it should be."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def subject_name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    """A subject of one O per organization (group) and the CN (user)."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def create_ca(common_name: str = "raftkube-ca", valid_days: int = DEFAULT_CA_DAYS) -> KeyPair:
    """A new self-signed CA (key usage: certificate and CRL signing only)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = subject_name(common_name)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def _issue(
    ca: KeyPair,
    subject: x509.Name,
    usages: Sequence[x509.ObjectIdentifier],
    sans: Sequence[x509.GeneralName],
    valid_days: int,
) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    return KeyPair(sign_leaf(ca, subject, key.public_key(), usages, sans, valid_days), key)


def sign_leaf(
    ca: KeyPair,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    usages: Sequence[x509.ObjectIdentifier],
    sans: Sequence[x509.GeneralName],
    valid_days: int,
) -> x509.Certificate:
    """An end-entity certificate (not a CA) for `public_key`, signed by `ca`: exactly the
    given subject, extended key usages and SANs, valid from a few minutes ago for
    `valid_days`. The caller decides what the certificate may name; nothing is copied
    from elsewhere."""
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def issue_server_cert(
    ca: KeyPair,
    name: str,
    ips: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    valid_days: int = DEFAULT_CERT_DAYS,
) -> KeyPair:
    """A master's serving certificate. `name` is the CN; `ips` and `dns_names` become SANs
    (at least one is required: clients check the address they dial against them).

    Raises ValueError naming the bad address when an entry of `ips` is not an IP.
    """
    if not ips and not dns_names:
        raise ValueError(f"server certificate {name!r}: give at least one IP or DNS name")
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns_names)]
    for ip in dict.fromkeys(ips):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as exc:
            raise ValueError(f"server certificate {name!r}: {ip!r} is not an IP address") from exc
    # O system:masters: a master is also a client of the workers' logs/exec service,
    # where it proxies users' requests (see workers/agent/node_agent_service.py).
    return _issue(
        ca, subject_name(name, [MASTERS_GROUP]),
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        sans, valid_days,
    )


def issue_client_cert(
    ca: KeyPair,
    user: str,
    groups: Sequence[str] = (),
    valid_days: int = DEFAULT_CERT_DAYS,
) -> KeyPair:
    """A client certificate: CN = `user`, one O per group (extended key usage clientAuth)."""
    if not user:
        raise ValueError("client certificate: the user name (CN) must not be empty")
    return _issue(ca, subject_name(user, groups), [ExtendedKeyUsageOID.CLIENT_AUTH], [], valid_days)


def issue_node_cert(ca: KeyPair, node_name: str, valid_days: int = DEFAULT_CERT_DAYS) -> KeyPair:
    """A worker's certificate: CN `system:node:NAME`, O `system:nodes`. It is a client
    certificate towards the masters and also the serving certificate of the worker's own
    logs/exec service, with the node name as its DNS SAN (masters dial the node's address
    and check the certificate against the node's name)."""
    if not node_name:
        raise ValueError("node certificate: the node name must not be empty")
    return _issue(ca, subject_name(f"{NODE_USER_PREFIX}{node_name}", [NODES_GROUP]),
                  [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
                  [x509.DNSName(node_name)], valid_days)


def issue_admin_cert(ca: KeyPair, user: str = "admin",
                     valid_days: int = DEFAULT_CERT_DAYS) -> KeyPair:
    """The administrator's client certificate: O `system:masters` (full access)."""
    return issue_client_cert(ca, user, [MASTERS_GROUP], valid_days)


def identity_of(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """(user, groups) named by a client certificate: its CN and its O values.

    Raises PKIError when the certificate has no CN.
    """
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns:
        raise PKIError("client certificate has no common name (CN)")
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(cns[0].value), tuple(str(o.value) for o in orgs)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically with mode 0600 (the temp file is 0600 from birth,
    so the secret is never readable by others, not even briefly)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_public(path: Path, data: bytes) -> None:
    """Write non-secret `data` (a certificate) to `path` atomically with mode 0644."""
    write_private(path, data)
    os.chmod(path, 0o644)


def write_key_pair(pair: KeyPair, cert_path: Path, key_path: Path) -> None:
    """Write the certificate (0644) and its key (0600) as PEM."""
    write_private(key_path, pair.key_pem)
    write_public(cert_path, pair.cert_pem)


def load_cert(path: Path) -> x509.Certificate:
    """Read a PEM certificate; PKIError names the file when it is missing or not PEM."""
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise PKIError(f"{path}: cannot read a PEM certificate: {exc}") from exc


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Read an unencrypted PEM EC private key; PKIError names the file on failure."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PKIError(f"{path}: cannot read a PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{path}: expected an EC private key, found {type(key).__name__}")
    return key


def load_key_pair(cert_path: Path, key_path: Path) -> KeyPair:
    """Read a certificate and its key and check that they belong together."""
    cert = load_cert(cert_path)
    key = load_key(key_path)
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise PKIError(f"{key_path}: this key does not match the certificate {cert_path}")
    return KeyPair(cert, key)
