"""Secrets are encrypted at rest: a ValueTransformer for ObjectStore.

Values under the secrets prefix are sealed with the key ring's primary key (AES-GCM,
bound to their storage key); every other value passes through unchanged. Values written
before encryption was turned on (no envelope prefix) are still readable.
"""

from __future__ import annotations

from raftkube.masters.object_store import REGISTRY_PREFIX
from raftkube.security.encryption import KeyRing

SECRETS_PREFIX = REGISTRY_PREFIX + b"secrets/"
ENVELOPE_PREFIX = b"k8s:enc:"


class SecretEncryption:
    """Encrypts Secret objects with `ring`; leaves other kinds as they are."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def to_storage(self, key: bytes, data: bytes) -> bytes:
        if not key.startswith(SECRETS_PREFIX):
            return data
        return self._ring.encrypt(data, key.decode())

    def from_storage(self, key: bytes, data: bytes) -> bytes:
        if not key.startswith(SECRETS_PREFIX) or not data.startswith(ENVELOPE_PREFIX):
            return data
        return self._ring.decrypt(data, key.decode())
