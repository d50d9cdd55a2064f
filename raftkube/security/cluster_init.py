"""`raftkube init` as a function: create every credential a new cluster needs.

The directory it writes (see README.md for the full picture):

    DIR/cluster.yaml               masters (addresses, ports, file paths), workers
    DIR/config.yaml                admin client config ($RAFTKUBECONFIG points here)
    DIR/ca/ca.crt, ca.key          cluster CA
    DIR/node-serving-ca/ca.crt|key the masters' CA for node agents' serving certificates
    DIR/masters/NAME/server.crt|key
    DIR/workers/NAME/client.crt|key, token, config.yaml
    DIR/admin/client.crt|key, token
    DIR/raft-secret                shared secret of the Raft transport (64 hex = 32 bytes)
    DIR/encryption-keys.yaml       secrets-at-rest key file
    DIR/tokens.json                token table (hashes only) to seed the store
    DIR/join-token                 a join token for workers added later

Every secret file is 0600 and every directory 0700. The cluster is built in a temporary
sibling directory and renamed into place, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from raftkube.security import encryption, pki, tokens
from raftkube.security.client_config import ClientConfig, write_client_config
from raftkube.security.node_serving import create_node_serving_ca
from raftkube.security.principal import MASTERS_GROUP

DEFAULT_API_PORT = 6443
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")


class InitError(Exception):
    """Init refused or failed; the message names the argument or file."""


@dataclass(frozen=True)
class MasterSpec:
    """One master: name, address and ports.

    api_port: the user API (TLS, bearer tokens).
    raft_port: the Raft transport between masters.
    node_port: the node API (mutual TLS, for workers).
    """

    name: str
    ip: str
    api_port: int = DEFAULT_API_PORT
    raft_port: int = DEFAULT_API_PORT + 1
    node_port: int = DEFAULT_API_PORT + 2

    @classmethod
    def parse(cls, text: str) -> MasterSpec:
        """Parse `NAME=IP[:API_PORT[,RAFT_PORT[,NODE_PORT]]]`; IPv6 as `[::1]:PORT`.
        Omitted ports follow the API port: raft = api + 1, node = api + 2."""
        name, sep, rest = text.partition("=")
        if not sep or not name or not rest:
            raise InitError(f"--master {text!r}: expected NAME=IP[:API_PORT[,RAFT_PORT"
                            f"[,NODE_PORT]]]")
        if rest.startswith("["):
            ip, _, tail = rest[1:].partition("]")
            ports_text = tail[1:] if tail.startswith(":") else ""
            if tail and not tail.startswith(":"):
                raise InitError(f"--master {text!r}: expected [IPv6]:PORTS")
        elif rest.count(":") == 1:
            ip, _, ports_text = rest.partition(":")
        else:
            ip, ports_text = rest, ""
        try:
            ports = [int(p) for p in ports_text.split(",")] if ports_text else []
        except ValueError as exc:
            raise InitError(f"--master {text!r}: ports must be numbers") from exc
        if len(ports) > 3:
            raise InitError(f"--master {text!r}: at most 3 ports (api, raft, node)")
        api = ports[0] if ports else DEFAULT_API_PORT
        raft = ports[1] if len(ports) > 1 else api + 1
        node = ports[2] if len(ports) > 2 else api + 2
        spec = cls(name, ip, api, raft, node)
        spec.validate()
        return spec

    def validate(self) -> None:
        if not _NAME_RE.match(self.name):
            raise InitError(f"master {self.name!r}: names are lower-case letters, digits, "
                            f"'-' and '.'")
        try:
            ipaddress.ip_address(self.ip)
        except ValueError as exc:
            raise InitError(f"master {self.name!r}: {self.ip!r} is not an IP address") from exc
        for label, port in (("api", self.api_port), ("raft", self.raft_port),
                            ("node", self.node_port)):
            if not 1 <= port <= 65535:
                raise InitError(f"master {self.name!r}: {label} port {port} is out of range")
        if len({self.api_port, self.raft_port, self.node_port}) != 3:
            raise InitError(f"master {self.name!r}: api, raft and node ports must differ")

    def address(self, port: int) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{port}"


@dataclass(frozen=True)
class InitConfig:
    """What `raftkube init` creates.

    directory: the cluster directory (must not exist or be empty unless force).
    masters: at least one master.
    workers: worker names known now (more can join later with the join token).
    extra_sans: extra DNS names or IPs put in every master's certificate.
    admin_user: the administrator's user name (group system:masters).
    join_token_ttl: seconds the join token stays valid.
    cert_days: validity of issued certificates (the CA gets 10 years).
    force: replace an existing cluster directory.
    """

    directory: Path
    masters: tuple[MasterSpec, ...]
    workers: tuple[str, ...] = ()
    extra_sans: tuple[str, ...] = ()
    admin_user: str = "admin"
    join_token_ttl: float = tokens.DEFAULT_JOIN_TTL
    cert_days: int = pki.DEFAULT_CERT_DAYS
    force: bool = False


@dataclass(frozen=True)
class ClusterLayout:
    """The file names inside a cluster directory (the contract with every other part)."""

    root: Path

    @property
    def cluster_file(self) -> Path:
        return self.root / "cluster.yaml"

    @property
    def admin_config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca" / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca" / "ca.key"

    @property
    def node_serving_ca_cert(self) -> Path:
        return self.root / "node-serving-ca" / "ca.crt"

    @property
    def node_serving_ca_key(self) -> Path:
        return self.root / "node-serving-ca" / "ca.key"

    def master_cert(self, name: str) -> Path:
        return self.root / "masters" / name / "server.crt"

    def master_key(self, name: str) -> Path:
        return self.root / "masters" / name / "server.key"

    def worker_cert(self, name: str) -> Path:
        return self.root / "workers" / name / "client.crt"

    def worker_key(self, name: str) -> Path:
        return self.root / "workers" / name / "client.key"

    def worker_token(self, name: str) -> Path:
        return self.root / "workers" / name / "token"

    def worker_config(self, name: str) -> Path:
        return self.root / "workers" / name / "config.yaml"

    @property
    def admin_cert(self) -> Path:
        return self.root / "admin" / "client.crt"

    @property
    def admin_key(self) -> Path:
        return self.root / "admin" / "client.key"

    @property
    def admin_token(self) -> Path:
        return self.root / "admin" / "token"

    @property
    def raft_secret(self) -> Path:
        return self.root / "raft-secret"

    @property
    def encryption_keys(self) -> Path:
        return self.root / "encryption-keys.yaml"

    @property
    def token_table(self) -> Path:
        return self.root / "tokens.json"

    @property
    def join_token(self) -> Path:
        return self.root / "join-token"


@dataclass(frozen=True)
class InitResult:
    """What init made: the layout, the CA fingerprint (`sha256:HEX` of the CA's public
    key, for a joining worker to pin) and the join token's expiry (Unix time)."""

    layout: ClusterLayout
    ca_fingerprint: str
    join_token_expires: float
    masters: tuple[MasterSpec, ...] = field(default_factory=tuple)
    workers: tuple[str, ...] = field(default_factory=tuple)


def ca_fingerprint(ca_cert_pem: bytes) -> str:
    """`sha256:HEX` of the CA certificate's SubjectPublicKeyInfo (the kubeadm pin)."""
    cert = x509.load_pem_x509_certificate(ca_cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _check_config(config: InitConfig) -> None:
    if not config.masters:
        raise InitError("at least one --master NAME=IP is required")
    for m in config.masters:
        m.validate()
    names = [m.name for m in config.masters]
    if len(set(names)) != len(names):
        raise InitError(f"master names repeat: {', '.join(sorted(names))}")
    used: dict[tuple[str, int], str] = {}
    for m in config.masters:
        for port in (m.api_port, m.raft_port, m.node_port):
            other = used.get((m.ip, port))
            if other is not None:
                raise InitError(f"masters {other!r} and {m.name!r} both use {m.ip}:{port}")
            used[(m.ip, port)] = m.name
    for w in config.workers:
        if not _NAME_RE.match(w):
            raise InitError(f"worker {w!r}: names are lower-case letters, digits, '-' and '.'")
    if len(set(config.workers)) != len(config.workers):
        raise InitError("worker names repeat")
    if not config.admin_user:
        raise InitError("the admin user name must not be empty")


def _check_directory(root: Path, force: bool) -> None:
    if root.exists():
        if not root.is_dir():
            raise InitError(f"{root}: exists and is not a directory")
        if any(root.iterdir()) and not force:
            raise InitError(f"{root}: already holds a cluster (or other files); refusing to "
                            f"overwrite it. Use --force to replace it, which invalidates "
                            f"every credential issued from it")


def _split_sans(values: Sequence[str]) -> tuple[list[str], list[str]]:
    ips, dns = [], []
    for v in values:
        try:
            ipaddress.ip_address(v)
            ips.append(v)
        except ValueError:
            dns.append(v)
    return ips, dns


def _write_tree(config: InitConfig, build: ClusterLayout, final: ClusterLayout,
                now: float) -> InitResult:
    """Write everything under `build.root`; file contents refer to `final` paths."""
    for sub in ("ca", "node-serving-ca", "masters", "workers", "admin"):
        (build.root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    ca = pki.create_ca()
    pki.write_key_pair(ca, build.ca_cert, build.ca_key)
    pki.write_key_pair(create_node_serving_ca(), build.node_serving_ca_cert,
                       build.node_serving_ca_key)

    extra_ips, extra_dns = _split_sans(config.extra_sans)
    for m in config.masters:
        pair = pki.issue_server_cert(ca, m.name, ips=[m.ip, *extra_ips],
                                     dns_names=[m.name, *extra_dns],
                                     valid_days=config.cert_days)
        pki.write_key_pair(pair, build.master_cert(m.name), build.master_key(m.name))

    table: tokens.TokenTable = {}
    admin = pki.issue_admin_cert(ca, config.admin_user, config.cert_days)
    pki.write_key_pair(admin, build.admin_cert, build.admin_key)
    table, admin_token = tokens.issue_token(table, user=config.admin_user,
                                            groups=[MASTERS_GROUP], now=now,
                                            description="cluster administrator")
    pki.write_private(build.admin_token, (admin_token + "\n").encode())
    write_client_config(build.admin_config, ClientConfig(
        masters=tuple(m.address(m.api_port) for m in config.masters), ca_file=final.ca_cert,
        token_file=final.admin_token, client_cert_file=final.admin_cert,
        client_key_file=final.admin_key, user=config.admin_user))

    for w in config.workers:
        (build.root / "workers" / w).mkdir(mode=0o700, parents=True, exist_ok=True)
        pki.write_key_pair(pki.issue_node_cert(ca, w, config.cert_days),
                           build.worker_cert(w), build.worker_key(w))
        table, node_token = tokens.issue_node_token(table, w, now=now)
        pki.write_private(build.worker_token(w), (node_token + "\n").encode())
        write_client_config(build.worker_config(w), ClientConfig(
            masters=tuple(m.address(m.node_port) for m in config.masters),
            ca_file=final.ca_cert, token_file=final.worker_token(w),
            client_cert_file=final.worker_cert(w), client_key_file=final.worker_key(w),
            user=f"system:node:{w}"))

    table, join_token = tokens.issue_join_token(table, now=now, ttl=config.join_token_ttl,
                                                description="created by raftkube init")
    pki.write_private(build.join_token, (join_token + "\n").encode())
    pki.write_private(build.token_table, tokens.dumps(table).encode())
    pki.write_private(build.raft_secret, (secrets.token_hex(32) + "\n").encode())
    encryption.generate_key_file(build.encryption_keys, "key1")

    fingerprint = ca_fingerprint(ca.cert_pem)
    cluster_doc = {
        "apiVersion": "raftkube/v1",
        "kind": "Cluster",
        "caFile": str(final.ca_cert),
        "caFingerprint": fingerprint,
        "raftSecretFile": str(final.raft_secret),
        "encryptionKeyFile": str(final.encryption_keys),
        "tokenTableFile": str(final.token_table),
        "nodeServingCA": _node_serving_ca_entry(final),
        "masters": [
            {"name": m.name, "ip": m.ip, "apiPort": m.api_port, "raftPort": m.raft_port,
             "nodePort": m.node_port, "certFile": str(final.master_cert(m.name)),
             "keyFile": str(final.master_key(m.name))}
            for m in config.masters
        ],
        "workers": [{"name": w, "configFile": str(final.worker_config(w))}
                    for w in config.workers],
    }
    pki.write_public(build.cluster_file, yaml.safe_dump(cluster_doc, sort_keys=False).encode())
    return InitResult(final, fingerprint, now + config.join_token_ttl, config.masters,
                      config.workers)


def _node_serving_ca_entry(layout: ClusterLayout) -> dict[str, str]:
    return {"certFile": str(layout.node_serving_ca_cert),
            "keyFile": str(layout.node_serving_ca_key)}


def init_cluster(config: InitConfig, *, now: float | None = None) -> InitResult:
    """Create a new cluster directory with every credential (see the module docstring).

    Refuses (InitError) when `config.directory` exists and is not empty, unless
    `config.force`, in which case the old directory is replaced only after the new one is
    complete. Nothing is left behind on failure.
    """
    _check_config(config)
    root = Path(config.directory).expanduser().absolute()
    _check_directory(root, config.force)
    root.parent.mkdir(parents=True, exist_ok=True)
    build_root = Path(tempfile.mkdtemp(prefix=f".{root.name}.init-", dir=root.parent))
    try:
        os.chmod(build_root, 0o700)
        result = _write_tree(config, ClusterLayout(build_root), ClusterLayout(root),
                             time.time() if now is None else now)
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, old / "cluster")
            try:
                os.replace(build_root, root)
            except BaseException:
                os.replace(old / "cluster", root)
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(build_root, root)
        return result
    except BaseException:
        shutil.rmtree(build_root, ignore_errors=True)
        raise


def load_cluster_file(path: Path) -> dict:
    """The parsed cluster.yaml; InitError names the file when it is missing or bad."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InitError(f"{path}: cannot read the cluster file: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "Cluster":
        raise InitError(f"{path}: not a raftkube cluster file (kind: Cluster)")
    return doc


def node_serving_ca_files(doc: dict) -> tuple[Path, Path] | None:
    """(certificate, key) of the node serving CA named by a parsed cluster file, or None
    for a cluster directory made before it existed."""
    entry = doc.get("nodeServingCA")
    if not entry:
        return None
    return Path(entry["certFile"]), Path(entry["keyFile"])


def add_node_serving_ca(directory: Path) -> Path:
    """Create the node serving CA in a cluster directory made before it existed and name
    it in cluster.yaml (masters use it once restarted). Does not need the cluster CA key.
    InitError when the directory already has one or is not a cluster. Returns the CA
    certificate's path. On failure nothing is left changed."""
    lay = ClusterLayout(Path(directory).expanduser().absolute())
    doc = load_cluster_file(lay.cluster_file)
    if doc.get("nodeServingCA") or lay.node_serving_ca_cert.parent.exists():
        raise InitError(f"{lay.root} already has a node serving CA "
                        f"({lay.node_serving_ca_cert.parent})")
    try:
        pki.write_key_pair(create_node_serving_ca(), lay.node_serving_ca_cert,
                           lay.node_serving_ca_key)
        doc["nodeServingCA"] = _node_serving_ca_entry(lay)
        pki.write_public(lay.cluster_file, yaml.safe_dump(doc, sort_keys=False).encode())
    except BaseException:
        shutil.rmtree(lay.node_serving_ca_cert.parent, ignore_errors=True)
        raise
    return lay.node_serving_ca_cert


def master_raft_addresses(doc: dict) -> dict[str, str]:
    """Every master's Raft address (`IP:RAFTPORT`) by name, in the order of a parsed
    cluster file's `masters`: the masters' bootstrap peers, and the members of a cluster
    restored from a snapshot."""
    return {m["name"]: f"{m['ip']}:{m['raftPort']}" for m in doc.get("masters", [])}


@dataclass(frozen=True)
class WorkerCredentials:
    """What `add_worker` made: the worker's client config and the table record of its
    node token (a running cluster must also put the record into its stored table)."""

    config_file: Path
    token_record: tokens.TokenRecord


def add_worker(directory: Path, name: str, *, now: float | None = None,
               cert_days: int = pki.DEFAULT_CERT_DAYS) -> WorkerCredentials:
    """Issue credentials for a new worker `name` in an existing cluster directory:
    client certificate and key, node token, client config; adds the token to tokens.json
    and the worker to cluster.yaml. Needs the CA key. InitError when the worker exists or
    the directory is not a cluster. On failure nothing is left changed."""
    lay = ClusterLayout(Path(directory).expanduser().absolute())
    doc = load_cluster_file(lay.cluster_file)
    if not _NAME_RE.match(name):
        raise InitError(f"worker {name!r}: names are lower-case letters, digits, '-' and '.'")
    worker_dir = lay.root / "workers" / name
    if worker_dir.exists() or any(w.get("name") == name for w in doc.get("workers", [])):
        raise InitError(f"worker {name!r} already exists in {lay.root}")
    masters = [MasterSpec(m["name"], m["ip"], m["apiPort"], m["raftPort"], m["nodePort"])
               for m in doc["masters"]]
    ca = pki.load_key_pair(lay.ca_cert, lay.ca_key)
    table = tokens.loads(lay.token_table.read_text(), str(lay.token_table))
    stamp = time.time() if now is None else now
    token = tokens.new_token_string(table)
    record = tokens.make_record(token, user=f"system:node:{name}", groups=["system:nodes"],
                                now=stamp, description=f"node {name}")
    table = tokens.add_record(table, record)

    build = Path(tempfile.mkdtemp(prefix=f".{name}.add-", dir=lay.root / "workers"))
    try:
        os.chmod(build, 0o700)
        pki.write_key_pair(pki.issue_node_cert(ca, name, cert_days), build / "client.crt",
                           build / "client.key")
        pki.write_private(build / "token", (token + "\n").encode())
        write_client_config(build / "config.yaml", ClientConfig(
            masters=tuple(m.address(m.node_port) for m in masters), ca_file=lay.ca_cert,
            token_file=lay.worker_token(name), client_cert_file=lay.worker_cert(name),
            client_key_file=lay.worker_key(name), user=f"system:node:{name}"))
        os.replace(build, worker_dir)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    try:
        pki.write_private(lay.token_table, tokens.dumps(table).encode())
        doc["workers"] = [*doc.get("workers", []),
                          {"name": name, "configFile": str(lay.worker_config(name))}]
        pki.write_public(lay.cluster_file, yaml.safe_dump(doc, sort_keys=False).encode())
    except BaseException:
        shutil.rmtree(worker_dir, ignore_errors=True)
        raise
    return WorkerCredentials(lay.worker_config(name), record)


def add_master(directory: Path, spec: MasterSpec, *, extra_sans: Sequence[str] = (),
               cert_days: int = pki.DEFAULT_CERT_DAYS) -> Path:
    """Issue a serving certificate for a new master and list it in cluster.yaml, so it can
    be started (with the running cluster's members as peers) and added with AddMaster.
    The new master gets the node serving CA like the others (cluster.yaml names it for
    every master: copy DIR/node-serving-ca/ with the rest). Needs the CA key. InitError
    when the name or an address is taken. Returns the cluster file. On failure nothing is
    left changed."""
    spec.validate()
    lay = ClusterLayout(Path(directory).expanduser().absolute())
    doc = load_cluster_file(lay.cluster_file)
    for m in doc.get("masters", []):
        if m["name"] == spec.name:
            raise InitError(f"master {spec.name!r} already exists in {lay.root}")
        taken = {m["apiPort"], m["raftPort"], m["nodePort"]}
        if m["ip"] == spec.ip and taken & {spec.api_port, spec.raft_port, spec.node_port}:
            raise InitError(f"master {spec.name!r}: a port on {spec.ip} is used by "
                            f"master {m['name']!r}")
    ca = pki.load_key_pair(lay.ca_cert, lay.ca_key)
    extra_ips, extra_dns = _split_sans(extra_sans)
    pair = pki.issue_server_cert(ca, spec.name, ips=[spec.ip, *extra_ips],
                                 dns_names=[spec.name, *extra_dns], valid_days=cert_days)
    master_dir = lay.root / "masters" / spec.name
    master_dir.mkdir(mode=0o700, parents=True)
    try:
        pki.write_key_pair(pair, lay.master_cert(spec.name), lay.master_key(spec.name))
        doc["masters"] = [*doc["masters"], {
            "name": spec.name, "ip": spec.ip, "apiPort": spec.api_port,
            "raftPort": spec.raft_port, "nodePort": spec.node_port,
            "certFile": str(lay.master_cert(spec.name)),
            "keyFile": str(lay.master_key(spec.name))}]
        pki.write_public(lay.cluster_file, yaml.safe_dump(doc, sort_keys=False).encode())
    except BaseException:
        shutil.rmtree(master_dir, ignore_errors=True)
        raise
    return lay.cluster_file
