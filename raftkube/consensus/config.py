"""Configuration of one store replica (`StoreConfig`) and its validation.

`StoreConfig.from_dict` / `load_config_file` give errors that name the offending field.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from raftkube.consensus.errors import ConfigError

MIB = 1024 * 1024


@dataclass
class StoreConfig:
    """Everything one replica needs. Units: seconds, bytes.

    node_id: human readable name of this replica (logs, status); defaults to raft_address.
    raft_address: "host:port" this replica's Raft transport listens on; it is also the
        member id inside Raft (what add_member/remove_member take).
    peers: Raft addresses of the other members at bootstrap. Ignored for members that
        were added/removed later: a restarted replica uses the membership from its log.
    data_dir: directory for the journal, term/vote file and snapshots (created 0700).
    cluster_secret: shared secret of the cluster, as bytes, or a path (str/Path) of a
        file holding it. Required: the store refuses to start without it. Every Raft
        message is authenticated and encrypted with a key derived from it.
    cluster_name: names the cluster; the key-derivation salt is derived from it, so two
        clusters sharing a secret still have different keys.
    heartbeat_interval: leader's append-entries/heartbeat period.
    election_timeout_min / election_timeout_max: a follower that hears nothing from a
        leader for a random time in this range starts an election.
    leader_lease_timeout: a leader that has not heard from a majority for this long steps
        down. Must be below election_timeout_min, so a partitioned leader stops serving
        before the others can elect a new one.
    connection_timeout: a peer connection with no traffic for this long is dropped.
    connection_retry_interval: wait between reconnect attempts to a peer.
    history_max_revisions: how many revisions of change history are kept for watches;
        older revisions are compacted and a watch from them gets CompactedError.
    snapshot_every_entries: take a snapshot (and truncate the journal) after this many
        journal entries.
    snapshot_min_interval: also snapshot when this much time passed since the last one.
    max_value_bytes: largest value accepted (etcd's limit: 1.5 MiB).
    max_txn_ops: most operations (compares + ops of both branches) in one transaction.
    max_txn_bytes: most bytes (keys + values) in one transaction.
    request_timeout: default wait for a write outcome before UnknownOutcomeError.
    fsync: True (the default and only safe value) makes every journal write durable before
        it is acknowledged. False exists only for tests that prove the power-loss test
        detects loss.
    fsync_audit: tests only: after every fsync, record the journal's durable length in
        `journal.synced` so a test can simulate power loss by truncating to it.
    """

    raft_address: str
    data_dir: str
    cluster_secret: bytes | str | Path | None = None
    peers: list[str] = field(default_factory=list)
    node_id: str = ""
    cluster_name: str = "raftkube"
    heartbeat_interval: float = 0.05
    election_timeout_min: float = 0.6
    election_timeout_max: float = 1.2
    leader_lease_timeout: float = 0.4
    connection_timeout: float = 2.0
    connection_retry_interval: float = 0.25
    history_max_revisions: int = 10000
    snapshot_every_entries: int = 20000
    snapshot_min_interval: float = 600.0
    max_value_bytes: int = 3 * MIB // 2
    max_txn_ops: int = 256
    max_txn_bytes: int = 2 * MIB
    request_timeout: float = 5.0
    fsync: bool = True
    fsync_audit: bool = False

    def __post_init__(self) -> None:
        if not self.node_id:
            self.node_id = self.raft_address

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field."""
        _check_address("raft_address", self.raft_address)
        for i, peer in enumerate(self.peers):
            _check_address(f"peers[{i}]", peer)
        if not self.data_dir:
            raise ConfigError("data_dir: must be a directory path")
        if self.cluster_secret is None or self.cluster_secret in (b"", ""):
            raise ConfigError(
                "cluster_secret: required (bytes, or the path of a file holding the secret); "
                "the store never runs its Raft port unauthenticated"
            )
        if not self.cluster_name:
            raise ConfigError("cluster_name: must not be empty")
        if self.heartbeat_interval <= 0:
            raise ConfigError("heartbeat_interval: must be > 0")
        if self.election_timeout_min <= 3 * self.heartbeat_interval:
            raise ConfigError("election_timeout_min: must be > 3 * heartbeat_interval")
        if self.election_timeout_max <= self.election_timeout_min:
            raise ConfigError("election_timeout_max: must be > election_timeout_min")
        if not self.heartbeat_interval < self.leader_lease_timeout < self.election_timeout_min:
            raise ConfigError(
                "leader_lease_timeout: must be between heartbeat_interval and "
                "election_timeout_min (a partitioned leader must step down first)"
            )
        if self.connection_timeout < self.election_timeout_max:
            raise ConfigError("connection_timeout: must be >= election_timeout_max")
        for name in ("history_max_revisions", "snapshot_every_entries", "max_value_bytes",
                     "max_txn_ops", "max_txn_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1")
        if self.request_timeout <= 0:
            raise ConfigError("request_timeout: must be > 0")

    def secret_bytes(self) -> bytes:
        """The cluster secret as bytes (reads the file when a path was given)."""
        secret = self.cluster_secret
        if isinstance(secret, bytes):
            return secret
        if secret is None:
            raise ConfigError("cluster_secret: required")
        path = Path(secret)
        try:
            data = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cluster_secret: cannot read {path}: {exc.strerror}") from exc
        if not data:
            raise ConfigError(f"cluster_secret: file {path} is empty")
        return data

    @property
    def all_members(self) -> list[str]:
        """The bootstrap membership: this replica plus peers, without duplicates."""
        return sorted({self.raft_address, *self.peers})

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> StoreConfig:
        """Build from a JSON-like dict; unknown keys are an error naming the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}")
        for required in ("raft_address", "data_dir"):
            if required not in data:
                raise ConfigError(f"{source}: field {required} is required")
        values = dict(data)
        secret = values.get("cluster_secret")
        if isinstance(secret, str) and secret.startswith("hex:"):
            values["cluster_secret"] = bytes.fromhex(secret[4:])
        config = cls(**values)
        config.validate()
        return config


def load_config_file(path: str | os.PathLike[str]) -> StoreConfig:
    """Read a JSON config file. A `store` sub-object is used if present."""
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be an object")
    return StoreConfig.from_dict(raw.get("store", raw), source=str(path))


def _check_address(name: str, value: str) -> None:
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name}: {value!r} is not host:port")
