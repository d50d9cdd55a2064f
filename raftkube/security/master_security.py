"""Everything a master's API server needs from this package, behind one object.

    sec = MasterSecurity(MasterSecurityConfig.from_cluster_file(cluster_yaml, "m1",
                                                                audit_path=data/"audit.log"),
                         token_table=lambda: store_table(), policy=lambda: store_policy(),
                         node_references=pods_reference)
    server = grpc.server(pool, interceptors=[sec.interceptor()])
    server.add_secure_port(user_addr, sec.user_port_credentials())    # TLS, tokens
    server.add_secure_port(node_addr, sec.node_port_credentials())    # mutual TLS
    ...in a handler:
        principal = current_principal()
        sec.enforce(context, principal, "delete", "Secret", ns, name)  # aborts if denied
        ...do the write...
        sec.record(principal, "delete", "Secret", ns, name, code="OK")

    stored = sec.keyring.encrypt(secret_bytes, storage_key)  # before the store sees it

Contract: `enforce` writes a "deny" audit line and aborts the call with
PERMISSION_DENIED and the authorizer's reason; `record` writes the outcome of an allowed
mutating call. Reads are audited only when `audit_reads` is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from raftkube.security import encryption, pki, tokens
from raftkube.security.audit import AuditConfig, AuditLog
from raftkube.security.cluster_init import load_cluster_file, node_serving_ca_files
from raftkube.security.grpc_auth import (
    AuthConfig,
    AuthInterceptor,
    TokenTableAuthenticator,
    server_credentials_from_files,
)
from raftkube.security.node_serving import NodeServingSigner
from raftkube.security.principal import Principal
from raftkube.security.rbac import (
    READ_VERBS,
    AuthorizerConfig,
    Decision,
    Policy,
    ReferenceCheck,
    authorize,
)

_MIN_RAFT_SECRET_BYTES = 32


class SecurityConfigError(Exception):
    """A security file of the master config is missing or unsafe; names the file."""


@dataclass(frozen=True)
class MasterSecurityConfig:
    """A master's security files and settings.

    cert_file / key_file: this master's serving certificate and key (PEM).
    ca_file: the cluster CA (PEM); verifies worker client certificates.
    encryption_key_file: the secrets-at-rest key file (see encryption.py).
    raft_secret_file: the Raft transport's shared secret.
    token_table_file: the token table written by `raftkube init`, used to seed the store.
    audit: where the audit log goes; None = no audit log.
    audit_reads: also audit get/list/watch (off: only writes and denials).
    public_methods: gRPC methods served without authentication (e.g. health checks).
    authorizer: authorizer settings (node lease namespace).
    node_serving_ca_cert_file / node_serving_ca_key_file: the node serving CA, which signs
        node agents' serving certificates when workers join and which the master trusts
        (besides the cluster CA) when it dials node agents; None = a cluster directory made
        before it existed: joining workers get no serving certificate.
    """

    cert_file: Path
    key_file: Path
    ca_file: Path
    encryption_key_file: Path
    raft_secret_file: Path
    token_table_file: Path
    audit: AuditConfig | None = None
    audit_reads: bool = False
    public_methods: frozenset[str] = field(default_factory=frozenset)
    authorizer: AuthorizerConfig = field(default_factory=AuthorizerConfig)
    node_serving_ca_cert_file: Path | None = None
    node_serving_ca_key_file: Path | None = None

    @classmethod
    def from_cluster_file(cls, cluster_file: Path, master: str, *,
                          audit_path: Path | None = None) -> MasterSecurityConfig:
        """The config of master `master` from the cluster.yaml `raftkube init` wrote."""
        doc = load_cluster_file(cluster_file)
        entry = next((m for m in doc.get("masters", []) if m.get("name") == master), None)
        if entry is None:
            raise SecurityConfigError(f"{cluster_file}: no master named {master!r}")
        try:
            node_ca = node_serving_ca_files(doc)
            return cls(
                cert_file=Path(entry["certFile"]), key_file=Path(entry["keyFile"]),
                ca_file=Path(doc["caFile"]),
                encryption_key_file=Path(doc["encryptionKeyFile"]),
                raft_secret_file=Path(doc["raftSecretFile"]),
                token_table_file=Path(doc["tokenTableFile"]),
                audit=AuditConfig(audit_path) if audit_path else None,
                node_serving_ca_cert_file=node_ca[0] if node_ca else None,
                node_serving_ca_key_file=node_ca[1] if node_ca else None,
            )
        except KeyError as exc:
            raise SecurityConfigError(f"{cluster_file}: missing field {exc}") from exc


def _load_node_serving_ca(config: MasterSecurityConfig) -> pki.KeyPair | None:
    """The node serving CA named by `config`, or None when it names none.
    SecurityConfigError names the file when one is given but unreadable."""
    cert, key = config.node_serving_ca_cert_file, config.node_serving_ca_key_file
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise SecurityConfigError("the node serving CA needs both certFile and keyFile")
    try:
        return pki.load_key_pair(cert, key)
    except pki.PKIError as exc:
        raise SecurityConfigError(f"node serving CA: {exc}") from exc


def load_raft_secret(path: Path) -> str:
    """The Raft transport secret (hex text). Refuses a file others can read or a secret
    shorter than 32 bytes, naming the file."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text().strip()
    except OSError as exc:
        raise SecurityConfigError(f"{path}: cannot read the Raft secret: {exc}") from exc
    if mode & 0o077:
        raise SecurityConfigError(f"{path}: mode {mode:o} lets others read the Raft secret; "
                                  f"chmod 600")
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise SecurityConfigError(f"{path}: the Raft secret must be hex text") from exc
    if len(raw) < _MIN_RAFT_SECRET_BYTES:
        raise SecurityConfigError(f"{path}: the Raft secret has {len(raw)} bytes; "
                                  f"at least {_MIN_RAFT_SECRET_BYTES} are required")
    return text


class MasterSecurity:
    """Credentials, authentication, authorization, audit and the secrets key ring of one
    master. Thread-safe: state lives in the sources it is given and in the audit log.

    token_table: returns the live token table (default: the seed file, read once).
    policy: returns the live RBAC Policy (default: built-in roles, no bindings).
    node_references: which objects pods bound to a node reference (see rbac.authorize).
    """

    def __init__(self, config: MasterSecurityConfig, *,
                 token_table: Callable[[], Mapping[str, Mapping]] | None = None,
                 policy: Callable[[], Policy] | None = None,
                 node_references: ReferenceCheck | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        for path in (config.cert_file, config.key_file, config.ca_file):
            if not Path(path).is_file():
                raise SecurityConfigError(f"{path}: missing (run `raftkube init`)")
        self.keyring = encryption.load_key_file(config.encryption_key_file)
        self._seed: tokens.TokenTable | None = None
        self._token_table = token_table or self.seed_token_table
        self._policy = policy or Policy
        self._node_references = node_references
        self._clock = clock
        self._audit = AuditLog(config.audit, clock) if config.audit else None
        self._node_serving_ca = _load_node_serving_ca(config)

    def node_serving_signer(self) -> NodeServingSigner | None:
        """The signer of node agents' serving certificates; None when this master holds
        no node serving CA."""
        return NodeServingSigner(self._node_serving_ca) if self._node_serving_ca else None

    def node_agent_trust_pem(self) -> bytes:
        """The CA certificates (PEM) a node agent's serving certificate may chain to when
        this master dials it: the cluster CA (workers made by `raftkube init` or
        `credentials add-worker`) and the node serving CA (workers that joined with a
        token), if held."""
        bundle = Path(self.config.ca_file).read_bytes()
        if self._node_serving_ca is not None:
            bundle = bundle.rstrip(b"\n") + b"\n" + self._node_serving_ca.cert_pem
        return bundle

    def seed_token_table(self) -> tokens.TokenTable:
        """The token table file written by init (read once, then cached)."""
        if self._seed is None:
            path = Path(self.config.token_table_file)
            try:
                text = path.read_text()
            except OSError as exc:
                raise SecurityConfigError(f"{path}: cannot read the token table: {exc}") from exc
            self._seed = tokens.loads(text, str(path))
        return self._seed

    def raft_secret(self) -> str:
        return load_raft_secret(self.config.raft_secret_file)

    def user_port_credentials(self) -> grpc.ServerCredentials:
        """TLS for the user API port (bearer tokens; no client certificate asked)."""
        return server_credentials_from_files(self.config.cert_file, self.config.key_file,
                                             self.config.ca_file, require_client_cert=False)

    def node_port_credentials(self) -> grpc.ServerCredentials:
        """Mutual TLS for the node API port (workers present their certificates)."""
        return server_credentials_from_files(self.config.cert_file, self.config.key_file,
                                             self.config.ca_file, require_client_cert=True)

    def interceptor(self) -> AuthInterceptor:
        """The per-call authenticator to install on the gRPC server."""
        return AuthInterceptor(AuthConfig(
            bearer=TokenTableAuthenticator(self._token_table, self._clock),
            accept_certificates=True, public_methods=self.config.public_methods))

    def authorize(self, principal: Principal, verb: str, kind: str, namespace: str | None,
                  name: str | None, *, subresource: str | None = None,
                  object_node: str | None = None,
                  node_references: ReferenceCheck | Collection | None = None) -> Decision:
        """rbac.authorize with this master's policy and reference check (a per-call
        `node_references` overrides the configured one). Pure, no audit."""
        return authorize(principal, verb, kind, namespace, name, subresource=subresource,
                         object_node=object_node, policy=self._policy(),
                         node_references=(self._node_references if node_references is None
                                          else node_references),
                         config=self.config.authorizer)

    def enforce(self, context: grpc.ServicerContext, principal: Principal, verb: str,
                kind: str, namespace: str | None, name: str | None, *,
                subresource: str | None = None, object_node: str | None = None,
                node_references: ReferenceCheck | Collection | None = None) -> Decision:
        """Authorize; on denial audit it and abort the call with PERMISSION_DENIED.
        Returns the (allowing) decision otherwise."""
        decision = self.authorize(principal, verb, kind, namespace, name,
                                  subresource=subresource, object_node=object_node,
                                  node_references=node_references)
        if not decision.allowed:
            self._write(principal, verb, kind, namespace, name, subresource, decision,
                        "PERMISSION_DENIED")
            context.abort(grpc.StatusCode.PERMISSION_DENIED, decision.reason)
        return decision

    def record(self, principal: Principal, verb: str, kind: str, namespace: str | None,
               name: str | None, *, code: str, subresource: str | None = None,
               reason: str = "") -> None:
        """Audit the outcome (`code`: gRPC status name) of an allowed call. Reads are
        skipped unless `audit_reads`."""
        if verb in READ_VERBS and not self.config.audit_reads:
            return
        self._write(principal, verb, kind, namespace, name, subresource,
                    Decision(True, reason or "allowed"), code)

    def _write(self, principal: Principal, verb: str, kind: str, namespace: str | None,
               name: str | None, subresource: str | None, decision: Decision,
               code: str) -> None:
        if self._audit is None:
            return
        self._audit.record(principal, verb, kind, namespace, name, allowed=decision.allowed,
                           reason=decision.reason, code=code, subresource=subresource)
