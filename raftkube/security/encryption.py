"""Secrets at rest: AES-256-GCM envelopes with named, rotatable keys.

A stored value reads

    b"k8s:enc:aesgcm:v1:" KEYNAME b":" NONCE(12 bytes) CIPHERTEXT+TAG(16 bytes)

and the associated data is the value's storage key (e.g. `/secrets/prod/db`), so a
ciphertext copied to another key fails to decrypt. The key file (YAML, mode 0600) lists
several keys; the first encrypts, all decrypt. Rotation, step by step:

1. `add_key(path, "key2")`: the new key goes first (new writes use it);
2. `rotate(ring, items)`: re-encrypt every stored value still under an old key;
3. `remove_key(path, "key1")`: once nothing uses it.

Every master must load the same key file (copy it to each master before step 2).
The plaintext is only ever in memory: this module writes key files, never values.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from raftkube.security.pki import write_private

PREFIX = b"k8s:enc:aesgcm:v1:"
_NONCE_LEN = 12
_KEY_LEN = 32
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class EncryptionError(Exception):
    """A key file or a stored value is unusable; the message names which and why."""


@dataclass(frozen=True)
class NamedKey:
    """One AES-256 key and the name stored in front of what it encrypts."""

    name: str
    secret: bytes

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise EncryptionError(f"key name {self.name!r}: use 1-64 of [A-Za-z0-9_.-]")
        if len(self.secret) != _KEY_LEN:
            raise EncryptionError(f"key {self.name!r}: must be {_KEY_LEN} bytes, "
                                  f"got {len(self.secret)}")

    def __repr__(self) -> str:  # never print key material
        return f"NamedKey(name={self.name!r})"


def new_key(name: str) -> NamedKey:
    """A fresh random key."""
    return NamedKey(name, os.urandom(_KEY_LEN))


class KeyRing:
    """The keys of one key file. Thread-safe (immutable after construction)."""

    def __init__(self, keys: Iterable[NamedKey]) -> None:
        self._keys = tuple(keys)
        if not self._keys:
            raise EncryptionError("a key ring needs at least one key")
        names = [k.name for k in self._keys]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise EncryptionError(f"duplicate key names: {', '.join(dupes)}")
        self._by_name: Mapping[str, AESGCM] = {k.name: AESGCM(k.secret) for k in self._keys}

    @property
    def primary(self) -> str:
        """The name of the key new values are encrypted with."""
        return self._keys[0].name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self._keys)

    def encrypt(self, plaintext: bytes, storage_key: str) -> bytes:
        """The envelope of `plaintext` under the primary key, bound to `storage_key`."""
        nonce = os.urandom(_NONCE_LEN)
        sealed = self._by_name[self.primary].encrypt(nonce, plaintext, storage_key.encode())
        return PREFIX + self.primary.encode() + b":" + nonce + sealed

    def key_name_of(self, value: bytes) -> str:
        """The key name of an envelope; EncryptionError when `value` is not one."""
        if not value.startswith(PREFIX):
            raise EncryptionError("value is not encrypted (no k8s:enc:aesgcm:v1: prefix)")
        name, sep, _ = value[len(PREFIX):].partition(b":")
        if not sep:
            raise EncryptionError("encrypted value is truncated: no key name separator")
        return name.decode(errors="replace")

    def decrypt(self, value: bytes, storage_key: str) -> bytes:
        """The plaintext of an envelope stored at `storage_key`.

        EncryptionError when: not an envelope, unknown key name, truncated, tampered with,
        or stored under another storage key than the one it was encrypted for.
        """
        name = self.key_name_of(value)
        aead = self._by_name.get(name)
        if aead is None:
            raise EncryptionError(f"{storage_key}: encrypted with key {name!r}, which is not "
                                  f"in the key file (keys: {', '.join(self.names)})")
        body = value[len(PREFIX) + len(name.encode()) + 1:]
        if len(body) < _NONCE_LEN + 16:
            raise EncryptionError(f"{storage_key}: encrypted value is truncated")
        try:
            return aead.decrypt(body[:_NONCE_LEN], body[_NONCE_LEN:], storage_key.encode())
        except InvalidTag as exc:
            raise EncryptionError(
                f"{storage_key}: decryption with key {name!r} failed: the value was "
                f"altered or belongs to another storage key") from exc

    def needs_rotation(self, value: bytes) -> bool:
        """True when `value` is an envelope under a key other than the primary one."""
        return self.key_name_of(value) != self.primary

    def reencrypt(self, value: bytes, storage_key: str) -> bytes:
        """`value` under the primary key (unchanged if it already is)."""
        if not self.needs_rotation(value):
            return value
        return self.encrypt(self.decrypt(value, storage_key), storage_key)


def rotate(ring: KeyRing, items: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The (storage_key, new_value) pairs that must be rewritten so every value is under
    the primary key. Values already under it are left out. Raises EncryptionError on the
    first value that cannot be decrypted, before anything is returned, so a caller that
    writes the result in one transaction changes nothing on failure."""
    return [(k, ring.reencrypt(v, k)) for k, v in items if ring.needs_rotation(v)]


def _dump(keys: Iterable[NamedKey]) -> bytes:
    doc = {"keys": [{"name": k.name, "secret": base64.b64encode(k.secret).decode()}
                    for k in keys]}
    return yaml.safe_dump(doc, sort_keys=False).encode()


def load_key_file(path: Path) -> KeyRing:
    """Read a key file. EncryptionError names the file and the bad entry; also refuses a
    file that others may read (mode must not grant group/other access)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text()
    except OSError as exc:
        raise EncryptionError(f"{path}: cannot read the encryption key file: {exc}") from exc
    if mode & 0o077:
        raise EncryptionError(f"{path}: mode {mode:o} lets others read the keys; chmod 600")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EncryptionError(f"{path}: not YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise EncryptionError(f"{path}: expected a mapping with a list `keys`")
    keys = []
    for i, entry in enumerate(doc["keys"]):
        if not isinstance(entry, dict) or "name" not in entry or "secret" not in entry:
            raise EncryptionError(f"{path}: keys[{i}]: needs `name` and `secret`")
        try:
            secret = base64.b64decode(str(entry["secret"]), validate=True)
        except ValueError as exc:
            raise EncryptionError(f"{path}: keys[{i}].secret: not base64") from exc
        try:
            keys.append(NamedKey(str(entry["name"]), secret))
        except EncryptionError as exc:
            raise EncryptionError(f"{path}: keys[{i}]: {exc}") from exc
    try:
        return KeyRing(keys)
    except EncryptionError as exc:
        raise EncryptionError(f"{path}: {exc}") from exc


def write_key_file(path: Path, keys: Iterable[NamedKey]) -> None:
    """Write keys (first = primary) atomically with mode 0600."""
    keys = tuple(keys)
    KeyRing(keys)  # validate before touching the file
    write_private(Path(path), _dump(keys))


def generate_key_file(path: Path, name: str = "key1") -> None:
    """Create a key file with one fresh key. EncryptionError if the file exists."""
    if Path(path).exists():
        raise EncryptionError(f"{path}: already exists; use add_key to rotate")
    write_key_file(path, [new_key(name)])


def add_key(path: Path, name: str) -> None:
    """Put a fresh key named `name` first in the key file (rotation step 1)."""
    ring_keys = _read_keys(path)
    if any(k.name == name for k in ring_keys):
        raise EncryptionError(f"{path}: a key named {name!r} already exists")
    write_key_file(path, [new_key(name), *ring_keys])


def remove_key(path: Path, name: str) -> None:
    """Drop key `name` from the key file (rotation step 3). Refuses to drop the last key
    or a missing one."""
    ring_keys = _read_keys(path)
    kept = [k for k in ring_keys if k.name != name]
    if len(kept) == len(ring_keys):
        raise EncryptionError(f"{path}: no key named {name!r}")
    if not kept:
        raise EncryptionError(f"{path}: refusing to remove the last key {name!r}")
    write_key_file(path, kept)


def _read_keys(path: Path) -> list[NamedKey]:
    load_key_file(path)  # validation with good messages
    doc = yaml.safe_load(Path(path).read_text())
    return [NamedKey(str(e["name"]), base64.b64decode(str(e["secret"]))) for e in doc["keys"]]
