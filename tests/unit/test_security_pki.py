"""The CA and the certificates it issues."""

from __future__ import annotations

import ipaddress
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from raftkube.security import pki


@pytest.fixture(scope="module")
def ca() -> pki.KeyPair:
    return pki.create_ca()


def _verify_signed_by(cert: x509.Certificate, ca: pki.KeyPair) -> None:
    cert.verify_directly_issued_by(ca.cert)


def test_ca_is_a_ca(ca) -> None:
    bc = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is True
    assert isinstance(ca.key.curve, ec.SECP256R1)


def test_server_cert_has_the_sans_and_server_usage(ca) -> None:
    pair = pki.issue_server_cert(ca, "m1", ips=["10.0.0.1", "::1"], dns_names=["m1", "api"])
    _verify_signed_by(pair.cert, ca)
    sans = pair.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"m1", "api"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("::1")}
    eku = pair.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    bc = pair.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False


def test_server_cert_refuses_a_bad_ip_and_no_sans(ca) -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300' is not an IP address"):
        pki.issue_server_cert(ca, "m1", ips=["10.0.0.300"])
    with pytest.raises(ValueError, match="at least one IP or DNS name"):
        pki.issue_server_cert(ca, "m1")


def test_node_and_admin_identities(ca) -> None:
    node = pki.issue_node_cert(ca, "w1")
    admin = pki.issue_admin_cert(ca)
    _verify_signed_by(node.cert, ca)
    assert pki.identity_of(node.cert) == ("system:node:w1", ("system:nodes",))
    assert pki.identity_of(admin.cert) == ("admin", ("system:masters",))
    eku = node.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    sans = node.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["w1"]


def test_pem_files_round_trip_with_private_keys_0600(ca, tmp_path) -> None:
    pair = pki.issue_node_cert(ca, "w1")
    cert_path, key_path = tmp_path / "d" / "c.crt", tmp_path / "d" / "c.key"
    pki.write_key_pair(pair, cert_path, key_path)
    assert os.stat(key_path).st_mode & 0o777 == 0o600
    assert os.stat(cert_path).st_mode & 0o777 == 0o644
    assert os.stat(tmp_path / "d").st_mode & 0o777 == 0o700
    loaded = pki.load_key_pair(cert_path, key_path)
    assert loaded.cert == pair.cert
    assert loaded.key_pem == pair.key_pem
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["c.crt", "c.key"]


def test_loading_names_the_bad_file(ca, tmp_path) -> None:
    with pytest.raises(pki.PKIError, match=r"missing\.crt"):
        pki.load_cert(tmp_path / "missing.crt")
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    with pytest.raises(pki.PKIError, match=r"junk\.key: cannot read a PEM private key"):
        pki.load_key(junk)
    a, b = pki.issue_node_cert(ca, "a"), pki.issue_node_cert(ca, "b")
    pki.write_key_pair(a, tmp_path / "a.crt", tmp_path / "a.key")
    pki.write_key_pair(b, tmp_path / "b.crt", tmp_path / "b.key")
    with pytest.raises(pki.PKIError, match="does not match the certificate"):
        pki.load_key_pair(tmp_path / "a.crt", tmp_path / "b.key")
