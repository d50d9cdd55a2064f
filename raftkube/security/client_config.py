"""The client config file: which masters to dial and with which credentials.

Written by `raftkube init` (admin: DIR/config.yaml, each worker:
DIR/workers/NAME/config.yaml) and read by the SDK, raftkubectl and the agent. Found at
`$RAFTKUBECONFIG` when set, else `~/.raftkube/config`.

    apiVersion: raftkube/v1
    kind: ClientConfig
    user: admin                     # informative
    masters: [127.0.0.1:6443, ...]  # API addresses, tried in order
    caFile: /.../ca/ca.crt
    tokenFile: /.../admin/token     # optional: bearer token
    clientCertFile: /.../client.crt # optional, with clientKeyFile: client certificate
    clientKeyFile: /.../client.key

Relative file paths are relative to the config file's directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml

from raftkube.security.grpc_auth import channel_credentials
from raftkube.security.pki import write_private

CONFIG_ENV = "RAFTKUBECONFIG"
API_VERSION = "raftkube/v1"
KIND = "ClientConfig"


class ClientConfigError(Exception):
    """The client config file is missing or wrong; the message names file and field."""


@dataclass(frozen=True)
class ClientConfig:
    """Where the masters are and how to prove who we are.

    masters: "HOST:PORT" API addresses.
    ca_file: PEM CA that signed the masters' certificates.
    token_file: file holding a bearer token, or None.
    client_cert_file / client_key_file: PEM client certificate and key, or None.
    user: the user name these credentials stand for (informative).
    """

    masters: tuple[str, ...]
    ca_file: Path
    token_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    user: str = ""

    def token(self) -> str | None:
        """The bearer token, read from token_file; None when there is no token file."""
        if self.token_file is None:
            return None
        try:
            return self.token_file.read_text().strip()
        except OSError as exc:
            raise ClientConfigError(f"tokenFile {self.token_file}: {exc}") from exc

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials built from the files this config names."""
        try:
            ca = self.ca_file.read_bytes()
            cert = self.client_cert_file.read_bytes() if self.client_cert_file else None
            key = self.client_key_file.read_bytes() if self.client_key_file else None
        except OSError as exc:
            raise ClientConfigError(f"client config: cannot read {exc.filename}: "
                                    f"{exc.strerror}") from exc
        return channel_credentials(ca, client_cert_pem=cert, client_key_pem=key,
                                   token=self.token())

    def to_dict(self) -> dict:
        d: dict = {"apiVersion": API_VERSION, "kind": KIND, "user": self.user,
                   "masters": list(self.masters), "caFile": str(self.ca_file)}
        if self.token_file:
            d["tokenFile"] = str(self.token_file)
        if self.client_cert_file:
            d["clientCertFile"] = str(self.client_cert_file)
            d["clientKeyFile"] = str(self.client_key_file)
        return d


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$RAFTKUBECONFIG` when set and not empty, else `~/.raftkube/config`."""
    env = os.environ if environ is None else environ
    value = env.get(CONFIG_ENV, "")
    return Path(value).expanduser() if value else Path("~/.raftkube/config").expanduser()


def parse_client_config(doc: object, source: str, base_dir: Path) -> ClientConfig:
    """A ClientConfig from a parsed YAML document; ClientConfigError names the field."""
    if not isinstance(doc, dict):
        raise ClientConfigError(f"{source}: expected a mapping")
    unknown = set(doc) - {"apiVersion", "kind", "user", "masters", "caFile", "tokenFile",
                          "clientCertFile", "clientKeyFile"}
    if unknown:
        raise ClientConfigError(f"{source}: unknown field {sorted(unknown)[0]!r}")
    if doc.get("kind", KIND) != KIND:
        raise ClientConfigError(f"{source}: kind: expected {KIND!r}, got {doc['kind']!r}")
    masters = doc.get("masters")
    if not isinstance(masters, list) or not masters or not all(
            isinstance(m, str) and m for m in masters):
        raise ClientConfigError(f"{source}: masters: expected a non-empty list of HOST:PORT")
    if not isinstance(doc.get("caFile"), str):
        raise ClientConfigError(f"{source}: caFile: required (path of the cluster CA)")
    if ("clientCertFile" in doc) != ("clientKeyFile" in doc):
        raise ClientConfigError(f"{source}: clientCertFile and clientKeyFile go together")

    def path(field: str) -> Path | None:
        value = doc.get(field)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ClientConfigError(f"{source}: {field}: expected a path")
        p = Path(value).expanduser()
        return p if p.is_absolute() else base_dir / p

    return ClientConfig(
        masters=tuple(masters), ca_file=path("caFile"),  # type: ignore[arg-type]
        token_file=path("tokenFile"), client_cert_file=path("clientCertFile"),
        client_key_file=path("clientKeyFile"), user=str(doc.get("user", "")),
    )


def load_client_config(path: Path | None = None) -> ClientConfig:
    """Read a client config (default: `default_config_path()`)."""
    p = Path(path) if path is not None else default_config_path()
    try:
        text = p.read_text()
    except OSError as exc:
        raise ClientConfigError(f"{p}: cannot read the client config: {exc.strerror}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ClientConfigError(f"{p}: not YAML: {exc}") from exc
    return parse_client_config(doc, str(p), p.parent)


def write_client_config(path: Path, config: ClientConfig) -> None:
    """Write `config` as YAML with mode 0600 (it points at credentials)."""
    write_private(Path(path), yaml.safe_dump(config.to_dict(), sort_keys=False).encode())
