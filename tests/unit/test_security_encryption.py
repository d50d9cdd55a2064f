"""Secrets at rest: AES-GCM envelopes, key rotation, tampering, key binding."""

from __future__ import annotations

import os

import pytest

from raftkube.security import encryption
from raftkube.security.encryption import EncryptionError, KeyRing

KEY = "/secrets/prod/db"
PLAIN = b'{"data": {"password": "hunter2-very-secret"}}'


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "keys.yaml"
    encryption.generate_key_file(path, "key1")
    return path


def test_round_trip_and_no_plaintext_in_the_envelope(key_file) -> None:
    ring = encryption.load_key_file(key_file)
    sealed = ring.encrypt(PLAIN, KEY)
    assert sealed.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert b"hunter2" not in sealed
    assert ring.decrypt(sealed, KEY) == PLAIN
    assert ring.encrypt(PLAIN, KEY) != sealed  # fresh nonce each time


def test_key_file_is_private_and_refused_when_readable_by_others(key_file) -> None:
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    os.chmod(key_file, 0o644)
    with pytest.raises(EncryptionError, match="chmod 600"):
        encryption.load_key_file(key_file)


def test_ciphertext_moved_to_another_storage_key_fails(key_file) -> None:
    ring = encryption.load_key_file(key_file)
    sealed = ring.encrypt(PLAIN, KEY)
    with pytest.raises(EncryptionError, match="belongs to another storage key"):
        ring.decrypt(sealed, "/secrets/prod/other")


@pytest.mark.parametrize("position", [-1, -20, len(b"k8s:enc:aesgcm:v1:key1:") + 3])
def test_tampering_is_detected(key_file, position) -> None:
    ring = encryption.load_key_file(key_file)
    sealed = bytearray(ring.encrypt(PLAIN, KEY))
    sealed[position] ^= 0x01
    with pytest.raises(EncryptionError, match="altered"):
        ring.decrypt(bytes(sealed), KEY)


def test_truncated_and_unencrypted_values_are_refused(key_file) -> None:
    ring = encryption.load_key_file(key_file)
    with pytest.raises(EncryptionError, match="truncated"):
        ring.decrypt(b"k8s:enc:aesgcm:v1:key1:short", KEY)
    with pytest.raises(EncryptionError, match="not encrypted"):
        ring.decrypt(PLAIN, KEY)


def test_rotation_new_key_encrypts_old_still_decrypts_then_rotate_and_remove(key_file) -> None:
    old = encryption.load_key_file(key_file)
    stored = {f"/secrets/ns/s{i}": old.encrypt(b"value %d" % i, f"/secrets/ns/s{i}")
              for i in range(5)}

    encryption.add_key(key_file, "key2")
    ring = encryption.load_key_file(key_file)
    assert ring.names == ("key2", "key1")
    assert ring.encrypt(b"x", "/k").startswith(b"k8s:enc:aesgcm:v1:key2:")
    for k, v in stored.items():
        assert ring.decrypt(v, k).startswith(b"value ")

    stored["/secrets/ns/new"] = ring.encrypt(b"new", "/secrets/ns/new")
    changes = encryption.rotate(ring, stored.items())
    assert sorted(k for k, _ in changes) == sorted(k for k in stored if k != "/secrets/ns/new")
    stored.update(changes)
    assert encryption.rotate(ring, stored.items()) == []

    encryption.remove_key(key_file, "key1")
    final = encryption.load_key_file(key_file)
    assert final.names == ("key2",)
    assert {k: final.decrypt(v, k) for k, v in stored.items()} == {
        **{f"/secrets/ns/s{i}": b"value %d" % i for i in range(5)}, "/secrets/ns/new": b"new"}
    with pytest.raises(EncryptionError, match="refusing to remove the last key"):
        encryption.remove_key(key_file, "key2")


def test_value_under_a_removed_key_names_the_key(key_file) -> None:
    sealed = encryption.load_key_file(key_file).encrypt(PLAIN, KEY)
    other = KeyRing([encryption.new_key("other")])
    with pytest.raises(EncryptionError, match="key 'key1', which is not in the key file"):
        other.decrypt(sealed, KEY)


def test_rotation_fails_whole_on_an_undecryptable_value(key_file) -> None:
    ring = encryption.load_key_file(key_file)
    good = ring.encrypt(b"a", "/a")
    bad = ring.encrypt(b"b", "/b")
    encryption.add_key(key_file, "key2")
    ring = encryption.load_key_file(key_file)
    with pytest.raises(EncryptionError, match="/c"):
        encryption.rotate(ring, [("/a", good), ("/c", bad)])


@pytest.mark.parametrize(("content", "message"), [
    ("keys: []", "at least one key"),
    ("nope", "expected a mapping"),
    ("keys:\n- name: a\n", r"keys\[0\]: needs `name` and `secret`"),
    ("keys:\n- name: a\n  secret: '!!!'\n", r"keys\[0\].secret: not base64"),
    ("keys:\n- name: a\n  secret: c2hvcnQ=\n", r"keys\[0\]: key 'a': must be 32 bytes"),
    ("keys:\n- name: 'a:b'\n  secret: " + "A" * 43 + "=\n", "key name 'a:b'"),
])
def test_bad_key_files_name_the_problem(tmp_path, content, message) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(EncryptionError, match=message):
        encryption.load_key_file(path)


def test_generate_refuses_to_overwrite(key_file) -> None:
    with pytest.raises(EncryptionError, match="already exists"):
        encryption.generate_key_file(key_file)


def test_key_material_is_not_in_repr() -> None:
    key = encryption.new_key("k")
    assert key.secret.hex() not in repr(key)
