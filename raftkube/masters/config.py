"""The master's configuration file (`raftkube master --config FILE`, YAML).

Example:

```yaml
name: m1                              # this master's name in the cluster file
clusterFile: /etc/raftkube/cluster/cluster.yaml   # written by `raftkube init`
dataDir: /var/lib/raftkube/m1         # store journal, snapshots
bindIp: ""                            # listen on this IP instead of the cluster file's
metricsAddress: 127.0.0.1:9101        # Prometheus metrics; "" turns them off
auditLog: /var/log/raftkube/m1-audit.log
logLevel: info
join: false                           # true: join a running cluster (store.peers: members)
store:                                # optional StoreConfig overrides (snake_case)
  heartbeat_interval: 0.05
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_FIELDS = {
    "name": "name",
    "clusterFile": "cluster_file",
    "dataDir": "data_dir",
    "bindIp": "bind_ip",
    "metricsAddress": "metrics_address",
    "auditLog": "audit_log",
    "logLevel": "log_level",
    "join": "join",
    "store": "store",
    "controllers": "controllers",
}


class MasterConfigError(ValueError):
    """The master config file is wrong; the message names the file and field."""


@dataclass(frozen=True)
class MasterConfig:
    """Everything one master needs.

    name: this master's name; must appear in the cluster file's `masters` (or be added
      with `raftkubectl cluster add-master` and started with join: true).
    cluster_file: the cluster.yaml that `raftkube init` wrote (certificates, secrets, the
      other masters' addresses).
    data_dir: where the store keeps its journal and snapshots.
    bind_ip: the IP the API, node and Raft ports listen on; "" means the master's IP from
      the cluster file.
    metrics_address: HOST:PORT for Prometheus metrics; "" disables them.
    audit_log: file for the audit log (JSON lines); None disables auditing.
    log_level: debug, info, warning or error.
    join: start as a new member of a running cluster instead of bootstrapping one; then
      store.peers must list the running cluster's Raft members (`raftkube join
      --control-plane` writes it).
    store: overrides of consensus.StoreConfig fields (timeouts, history size, ...).
    controllers: options for the leader-only loops (see masters.controllers).
    api_address / raft_address / node_address: filled in from the cluster file.
    """

    name: str
    cluster_file: Path
    data_dir: Path
    bind_ip: str = ""
    metrics_address: str = ""
    audit_log: Path | None = None
    log_level: str = "info"
    join: bool = False
    store: dict[str, Any] = field(default_factory=dict)
    controllers: dict[str, Any] = field(default_factory=dict)

    @property
    def store_dir(self) -> Path:
        """The store replica's own directory (journal, term/vote, snapshot): the one
        `raftkubectl snapshot restore` fills and the master's Store opens."""
        return self.data_dir / "store"


def parse_master_config(doc: Any, source: str) -> MasterConfig:
    """Build a MasterConfig from a parsed YAML document; errors name `source` and field."""
    if not isinstance(doc, dict):
        raise MasterConfigError(f"{source}: expected a mapping of settings")
    unknown = sorted(set(doc) - set(_FIELDS))
    if unknown:
        raise MasterConfigError(
            f"{source}: {unknown[0]}: unknown field (known: {', '.join(sorted(_FIELDS))})")
    values: dict[str, Any] = {}
    for key, attr in _FIELDS.items():
        if key in doc:
            values[attr] = doc[key]
    for required in ("name", "clusterFile", "dataDir"):
        if not doc.get(required):
            raise MasterConfigError(f"{source}: {required}: required")
    base = Path(source).parent if source and Path(source).exists() else Path.cwd()
    for attr in ("cluster_file", "data_dir", "audit_log"):
        if values.get(attr) is not None:
            path = Path(str(values[attr]))
            values[attr] = path if path.is_absolute() else base / path
    for attr in ("store", "controllers"):
        if attr in values and not isinstance(values[attr], dict):
            raise MasterConfigError(f"{source}: {attr}: expected a mapping")
    if "controllers" in values:
        from raftkube.masters.controllers.registry import check_options
        try:
            check_options(values["controllers"])
        except ValueError as e:
            raise MasterConfigError(f"{source}: {e}") from None
    if "join" in values and not isinstance(values["join"], bool):
        raise MasterConfigError(f"{source}: join: expected true or false")
    return MasterConfig(**values)


def load_master_config(path: Path) -> MasterConfig:
    """Read and check a master config file."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise MasterConfigError(f"{path}: cannot read: {e}") from e
    return parse_master_config(doc, str(path))


def write_master_config(path: Path, config: MasterConfig) -> None:
    """Write `config` as YAML (the inverse of load_master_config)."""
    doc: dict[str, Any] = {
        "name": config.name,
        "clusterFile": str(config.cluster_file),
        "dataDir": str(config.data_dir),
        "bindIp": config.bind_ip,
        "metricsAddress": config.metrics_address,
        "logLevel": config.log_level,
        "join": config.join,
    }
    if config.audit_log is not None:
        doc["auditLog"] = str(config.audit_log)
    if config.store:
        doc["store"] = dict(config.store)
    if config.controllers:
        doc["controllers"] = dict(config.controllers)
    Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))
