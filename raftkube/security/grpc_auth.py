"""gRPC over TLS: credentials for servers and clients, and per-call authentication.

Server side:

    creds = server_credentials_from_files(cert, key, ca, require_client_cert=False)
    server = grpc.server(pool, interceptors=[AuthInterceptor(AuthConfig(bearer=...))])
    server.add_secure_port(addr, creds)
    ...inside a handler:  principal = current_principal()

One limit of grpcio shapes the deployment: a server either requires a client certificate
(mutual TLS) or does not ask for one at all; there is no "optional" mode. So a master that
serves both token users and certificate-holding workers listens twice with the same
interceptor: a user port (TLS, bearer tokens) and a node port (mutual TLS required).

Each call is authenticated before its handler runs:
1. metadata `authorization: Bearer TOKEN` -> the configured BearerAuthenticator; a bad
   token is refused even if a client certificate is also present;
2. otherwise a client certificate verified by the TLS layer -> user = CN, groups = O;
3. otherwise UNAUTHENTICATED.
The principal is put in a context variable for the duration of the handler (and of the
iteration of a streamed response) and read with `current_principal()`.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
from cryptography import x509

from raftkube.security import tokens
from raftkube.security.pki import PKIError, identity_of
from raftkube.security.principal import Principal

AUTHORIZATION_HEADER = "authorization"

# The principal of the call being handled in this thread (set by AuthInterceptor).
_current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "raftkube_principal", default=None)


class AuthenticationError(Exception):
    """Credentials missing or refused; the message is sent to the client as is."""


class BearerAuthenticator(Protocol):
    """Turns a bearer token into a principal or raises AuthenticationError."""

    def authenticate_bearer(self, token: str) -> Principal: ...


@dataclass
class TokenTableAuthenticator:
    """Bearer tokens checked against a token table (see tokens.py).

    table_source: returns the current table (e.g. read from the replicated store); it is
      called on every call, so revocations and new tokens apply at once.
    clock: Unix time source used for expiry.
    """

    table_source: Callable[[], Mapping[str, Mapping]]
    clock: Callable[[], float] = time.time

    def authenticate_bearer(self, token: str) -> Principal:
        try:
            return tokens.authenticate(self.table_source(), token, now=self.clock())
        except tokens.TokenError as exc:
            raise AuthenticationError(f"invalid bearer token: {exc}") from exc


def current_principal() -> Principal:
    """The principal of the call this handler serves. LookupError outside an
    authenticated call (a handler not behind AuthInterceptor, or a public method)."""
    principal = _current_principal.get()
    if principal is None:
        raise LookupError("no authenticated principal: this call did not pass AuthInterceptor")
    return principal


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Run a block as `principal` (for in-process callers such as controllers and tests)."""
    token = _current_principal.set(principal)
    try:
        yield principal
    finally:
        _current_principal.reset(token)


def bearer_token_from_metadata(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """The token of an `authorization: Bearer TOKEN` entry; None when there is none.
    AuthenticationError when the entry exists but is not a bearer token."""
    for key, value in metadata or ():
        if key.lower() != AUTHORIZATION_HEADER:
            continue
        text = value.decode() if isinstance(value, bytes) else str(value)
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("authorization metadata must read 'Bearer <token>'")
        return token.strip()
    return None


def principal_from_auth_context(auth_context: Mapping[str, Sequence[bytes]]) -> Principal | None:
    """The identity of a verified client certificate (CN = user, O = groups), or None
    when the peer sent no certificate. The TLS layer has verified it against the CA;
    certificates are only present when the server requires them."""
    pems = auth_context.get("x509_pem_cert") or []
    if not pems:
        return None
    try:
        user, groups = identity_of(x509.load_pem_x509_certificate(pems[0]))
    except (ValueError, PKIError) as exc:
        raise AuthenticationError(f"client certificate unusable: {exc}") from exc
    return Principal(user, groups, "certificate")


@dataclass(frozen=True)
class AuthConfig:
    """How AuthInterceptor authenticates calls.

    bearer: checks bearer tokens; None = bearer tokens are refused.
    accept_certificates: whether a verified client certificate authenticates a call.
    public_methods: full method names served without authentication, e.g.
      "/grpc.health.v1.Health/Check" (no principal is set for them).
    """

    bearer: BearerAuthenticator | None = None
    accept_certificates: bool = True
    public_methods: frozenset[str] = field(default_factory=frozenset)


def authenticate_call(config: AuthConfig, metadata: Sequence[tuple[str, Any]] | None,
                      auth_context: Mapping[str, Sequence[bytes]]) -> Principal:
    """The principal of a call, from its metadata and TLS peer; AuthenticationError
    with a message fit for the client otherwise."""
    token = bearer_token_from_metadata(metadata)
    if token is not None:
        if config.bearer is None:
            raise AuthenticationError("bearer tokens are not accepted on this port")
        return config.bearer.authenticate_bearer(token)
    if config.accept_certificates:
        principal = principal_from_auth_context(auth_context)
        if principal is not None:
            return principal
    accepted = []
    if config.bearer is not None:
        accepted.append("metadata 'authorization: Bearer <token>'")
    if config.accept_certificates:
        accepted.append("a client certificate signed by the cluster CA")
    raise AuthenticationError("no credentials: send " + " or ".join(accepted))


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates every call (all four RPC shapes) before its handler runs; refuses
    with UNAUTHENTICATED and the reason. The handler reads `current_principal()`."""

    def __init__(self, config: AuthConfig) -> None:
        self._config = config

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[override]
        handler = continuation(handler_call_details)
        if handler is None:
            return handler
        public = handler_call_details.method in self._config.public_methods
        metadata = handler_call_details.invocation_metadata
        if handler.unary_unary is not None:
            return handler._replace(
                unary_unary=self._wrap_unary(handler.unary_unary, metadata, public))
        if handler.stream_unary is not None:
            return handler._replace(
                stream_unary=self._wrap_unary(handler.stream_unary, metadata, public))
        if handler.unary_stream is not None:
            return handler._replace(
                unary_stream=self._wrap_stream(handler.unary_stream, metadata, public))
        return handler._replace(
            stream_stream=self._wrap_stream(handler.stream_stream, metadata, public))

    def _principal(self, metadata, context: grpc.ServicerContext,
                   public: bool) -> Principal | None:
        """The caller, or None for a public method (which then runs anonymously, so no
        principal of an earlier call on this thread can leak into it)."""
        if public:
            return None
        try:
            return authenticate_call(self._config, metadata, context.auth_context())
        except AuthenticationError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise  # abort raises; this line only satisfies type checkers

    def _wrap_unary(self, behavior, metadata, public: bool):
        def wrapped(request, context):
            token = _current_principal.set(self._principal(metadata, context, public))
            try:
                return behavior(request, context)
            finally:
                _current_principal.reset(token)
        return wrapped

    def _wrap_stream(self, behavior, metadata, public: bool):
        def wrapped(request, context):
            _current_principal.set(self._principal(metadata, context, public))
            try:
                yield from behavior(request, context)
            finally:
                # The generator may be closed from another thread on cancellation;
                # clearing here only matters for this thread.
                _current_principal.set(None)
        return wrapped


def server_credentials(cert_pem: bytes, key_pem: bytes, ca_pem: bytes, *,
                       require_client_cert: bool) -> grpc.ServerCredentials:
    """TLS server credentials. require_client_cert=True: mutual TLS, clients without a
    certificate signed by `ca_pem` fail the handshake. False: no client certificate is
    requested (grpcio has no optional mode)."""
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)],
        root_certificates=ca_pem if require_client_cert else None,
        require_client_auth=require_client_cert,
    )


def server_credentials_from_files(cert: Path, key: Path, ca: Path, *,
                                  require_client_cert: bool) -> grpc.ServerCredentials:
    """`server_credentials` from PEM files."""
    return server_credentials(Path(cert).read_bytes(), Path(key).read_bytes(),
                              Path(ca).read_bytes(), require_client_cert=require_client_cert)


def channel_credentials(ca_pem: bytes, *, client_cert_pem: bytes | None = None,
                        client_key_pem: bytes | None = None,
                        token: str | None = None) -> grpc.ChannelCredentials:
    """Client credentials: trust `ca_pem`; present a client certificate if given; send
    `authorization: Bearer TOKEN` on every call if `token` is given."""
    if (client_cert_pem is None) != (client_key_pem is None):
        raise ValueError("give both the client certificate and its key, or neither")
    creds = grpc.ssl_channel_credentials(ca_pem, client_key_pem, client_cert_pem)
    if token:
        creds = grpc.composite_channel_credentials(
            creds, grpc.access_token_call_credentials(token))
    return creds


def secure_channel(target: str, credentials: grpc.ChannelCredentials, *,
                   server_name: str | None = None,
                   options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """A TLS channel to `target`. `server_name`: the name to check the server certificate
    against when it differs from the dialed host (e.g. dialing an IP not in the SANs)."""
    opts = list(options)
    if server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target, credentials, options=opts)
