"""Adding a master to a running cluster (`raftkube join --control-plane`) and removing one.

Order matters for Raft: the new master is started first, with the running cluster's
current members as its peers and `join: true`, and only then added to the membership
through the leader (a membership change commits only once the new member answers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from raftkube.masters.config import MasterConfig, write_master_config
from raftkube.security.cluster_init import load_cluster_file


def master_entry(cluster_file: Path, name: str) -> dict:
    doc = load_cluster_file(cluster_file)
    entry = next((m for m in doc.get("masters", []) if m["name"] == name), None)
    if entry is None:
        raise ValueError(f"{cluster_file}: no master named {name!r} (add it first with "
                         "`raftkube init add-master`)")
    return entry


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def join_control_plane(admin, cluster_file: Path, name: str, data_dir: Path,
                       start: Callable[[Path], None], timeout: float = 60.0,
                       store_overrides: dict | None = None) -> list[str]:
    """Write the new master's config, start it with `start(config_path)`, wait until it
    answers, then add it to the Raft membership. `admin` is an SDK Client with cluster-admin
    rights. Returns the members after the change."""
    entry = master_entry(cluster_file, name)
    api = _join(entry["ip"], entry["apiPort"])
    raft = _join(entry["ip"], entry["raftPort"])
    members = list(admin.admin.cluster_status().members)
    if raft in members:
        return members  # already a member: nothing to do
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config_path = data_dir / "master.yaml"
    write_master_config(config_path, MasterConfig(
        name=name, cluster_file=cluster_file, data_dir=data_dir / "data", join=True,
        audit_log=data_dir / "audit.log",
        store={**(store_overrides or {}), "peers": members}))
    start(config_path)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.admin.local_status(api)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the new master {name} did not answer on {api}") from None
            time.sleep(0.2)
    return admin.admin.add_master(name, api, raft)
