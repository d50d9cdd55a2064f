"""Node agents' serving certificates: what a joining node may ask for, what the masters
sign, and the node serving CA in cluster directories (new and made before it existed)."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raftkube.cli import raftkube_main
from raftkube.security import pki
from raftkube.security.cluster_init import (
    InitConfig,
    InitError,
    MasterSpec,
    add_node_serving_ca,
    init_cluster,
    load_cluster_file,
    node_serving_ca_files,
)
from raftkube.security.master_security import MasterSecurity, MasterSecurityConfig
from raftkube.security.node_serving import (
    NodeServingSigner,
    ServingRequestRefused,
    create_node_serving_ca,
    review_serving_request,
    serving_request,
)


@pytest.fixture(scope="module")
def node_ca() -> pki.KeyPair:
    return create_node_serving_ca()


@pytest.fixture(scope="module")
def node_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _csr(key, common_name: str, sans: list[x509.GeneralName], orgs: tuple[str, ...] = ()
         ) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        pki.subject_name(common_name, orgs))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _signed(node_ca: pki.KeyPair, csr: bytes, node: str, in_use=None) -> x509.Certificate:
    pem = NodeServingSigner(node_ca).sign(review_serving_request(csr, node, in_use))
    return x509.load_pem_x509_certificate(pem)


def test_the_signed_certificate_names_only_the_node_and_serves_only(node_ca, node_key) -> None:
    cert = _signed(node_ca, serving_request(node_key, "w3", ["10.0.0.13", "fd00::13"]), "w3")
    cert.verify_directly_issued_by(node_ca.cert)
    assert cert.public_key().public_numbers() == node_key.public_key().public_numbers()
    assert pki.identity_of(cert) == ("system:node:w3", ("system:nodes",))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["w3"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.13"), ipaddress.ip_address("fd00::13")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]  # never clientAuth
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign


def test_the_signer_ignores_extensions_the_request_asks_for(node_ca, node_key) -> None:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(pki.subject_name("system:node:w3"))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("w3")]), critical=False)
           .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                          critical=False)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(node_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    cert = _signed(node_ca, csr, "w3")
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_a_request_for_another_nodes_name_is_refused(node_key) -> None:
    with pytest.raises(ServingRequestRefused, match=r"'system:node:w1'.*system:node:w3"):
        review_serving_request(serving_request(node_key, "w1"), "w3")


def test_a_dns_name_of_another_node_is_refused(node_key) -> None:
    csr = _csr(node_key, "system:node:w3", [x509.DNSName("w3"), x509.DNSName("w1")])
    with pytest.raises(ServingRequestRefused, match=r"\['w1'\] are not this node's"):
        review_serving_request(csr, "w3")


def test_an_ip_another_node_publishes_is_refused(node_key) -> None:
    csr = serving_request(node_key, "w3", ["10.0.0.11"])
    with pytest.raises(ServingRequestRefused, match=r"IP 10\.0\.0\.11 belongs to node 'w1'"):
        review_serving_request(csr, "w3", {"10.0.0.11": "w1"})
    # The node's own address (a node joining again) is fine.
    assert review_serving_request(csr, "w3", {"10.0.0.11": "w3"}).ips == ("10.0.0.11",)


@pytest.mark.parametrize("orgs, sans, expected", [
    (("system:masters",), [x509.DNSName("w3")], "organization"),
    ((), [x509.DNSName("w3"), x509.RFC822Name("a@b.c")], "only DNS and IP names"),
])
def test_groups_and_other_kinds_of_names_are_refused(node_key, orgs, sans, expected) -> None:
    with pytest.raises(ServingRequestRefused, match=expected):
        review_serving_request(_csr(node_key, "system:node:w3", sans, orgs), "w3")


def test_bad_requests_are_refused_with_the_reason() -> None:
    with pytest.raises(ServingRequestRefused, match="not a PEM certificate signing request"):
        review_serving_request(b"hello", "w3")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ServingRequestRefused, match="EC P-256"):
        review_serving_request(_csr(rsa_key, "system:node:w3", [x509.DNSName("w3")]), "w3")
    two_cns = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:node:w3"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "system:node:w1")])
    csr = (x509.CertificateSigningRequestBuilder().subject_name(two_cns)
           .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
           .public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ServingRequestRefused, match="exactly one common name"):
        review_serving_request(csr, "w3")


def test_a_bad_ip_in_the_request_is_named(node_key) -> None:
    with pytest.raises(ValueError, match=r"'w3\.example' is not an IP address"):
        serving_request(node_key, "w3", ["w3.example"])


def _init(directory: Path):
    return init_cluster(InitConfig(directory, (MasterSpec.parse("m1=127.0.0.1:7100"),)))


def test_init_makes_a_node_serving_ca_apart_from_the_cluster_ca(tmp_path) -> None:
    lay = _init(tmp_path / "c").layout
    doc = load_cluster_file(lay.cluster_file)
    assert node_serving_ca_files(doc) == (lay.node_serving_ca_cert, lay.node_serving_ca_key)
    node_ca = pki.load_key_pair(lay.node_serving_ca_cert, lay.node_serving_ca_key)
    assert node_ca.cert.subject != pki.load_cert(lay.ca_cert).subject
    assert oct(lay.node_serving_ca_key.stat().st_mode & 0o777) == "0o600"
    security = MasterSecurity(MasterSecurityConfig.from_cluster_file(lay.cluster_file, "m1"))
    assert security.node_serving_signer() is not None
    trusted = x509.load_pem_x509_certificates(security.node_agent_trust_pem())
    assert [c.subject for c in trusted] == [pki.load_cert(lay.ca_cert).subject,
                                            node_ca.cert.subject]


def test_a_directory_made_before_keeps_working_and_can_get_one(tmp_path) -> None:
    lay = _init(tmp_path / "c").layout
    doc = load_cluster_file(lay.cluster_file)  # as `raftkube init` wrote it before
    del doc["nodeServingCA"]
    lay.cluster_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    security = MasterSecurity(MasterSecurityConfig.from_cluster_file(lay.cluster_file, "m1"))
    assert security.node_serving_signer() is None
    assert security.node_agent_trust_pem() == lay.ca_cert.read_bytes()

    shutil.rmtree(lay.node_serving_ca_cert.parent)
    assert raftkube_main.main(["credentials", "add-node-serving-ca", "--dir",
                               str(lay.root)]) == 0
    assert node_serving_ca_files(load_cluster_file(lay.cluster_file)) == (
        lay.node_serving_ca_cert, lay.node_serving_ca_key)
    security = MasterSecurity(MasterSecurityConfig.from_cluster_file(lay.cluster_file, "m1"))
    assert security.node_serving_signer() is not None
    with pytest.raises(InitError, match="already has a node serving CA"):
        add_node_serving_ca(lay.root)
