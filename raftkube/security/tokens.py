"""Bearer tokens and join tokens, as pure functions over a serializable token table.

A token reads `ID.SECRET` (the kubeadm shape): ID is 6 characters `[a-z0-9]` and names the
table entry; SECRET is 32 characters `[a-z0-9]` (about 165 bits). The table keeps only
`sha256("raftkube-token:" ID "." SECRET)`, never the secret; checking compares hashes in
constant time.

Two usages:
- "auth": a bearer credential for a user or a node (admin, bob, system:node:w1);
- "join": a short-lived token a new worker presents once to be issued its node
  credential; it authenticates as `system:bootstrap:ID` in group `system:bootstrappers`.

The table is a plain dict `{token_id: record_dict}` of JSON values, so the master can keep
it in the replicated store. Every function takes the table and returns a new one (never
mutates its argument) and takes the time as a parameter (`now`, Unix seconds): replicated
commands must not read the clock themselves. Only `new_token_string` draws randomness;
call it outside the state machine and put the resulting record into the command.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from raftkube.security.principal import (
    BOOTSTRAP_USER_PREFIX,
    BOOTSTRAPPERS_GROUP,
    NODE_USER_PREFIX,
    NODES_GROUP,
    Principal,
)

TokenTable = dict[str, dict]

USAGE_AUTH = "auth"
USAGE_JOIN = "join"
_USAGES = (USAGE_AUTH, USAGE_JOIN)
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ID_LEN = 6
_SECRET_LEN = 32
_TOKEN_RE = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{32})")
DEFAULT_JOIN_TTL = 24 * 3600.0


class TokenError(Exception):
    """A token was refused. The message says why but never repeats the secret."""


@dataclass(frozen=True)
class TokenRecord:
    """One entry of the token table (what the store keeps; no secret inside).

    token_id: the public half of the token.
    secret_hash: hex SHA-256 of the whole token with a fixed prefix.
    usage: "auth" (bearer credential) or "join" (worker bootstrap).
    user, groups: the principal the token authenticates as.
    created: Unix time of issue.
    expires: Unix time after which the token is refused; None = never.
    description: free text for humans ("admin", "node w1", "join token for rack 3").
    """

    token_id: str
    secret_hash: str
    usage: str
    user: str
    groups: tuple[str, ...]
    created: float
    expires: float | None
    description: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["groups"] = list(self.groups)
        return d

    @classmethod
    def from_dict(cls, token_id: str, d: Mapping) -> TokenRecord:
        """Parse one table entry; TokenError names the token id and the bad field."""
        try:
            record = cls(
                token_id=str(d["token_id"]),
                secret_hash=str(d["secret_hash"]),
                usage=str(d["usage"]),
                user=str(d["user"]),
                groups=tuple(str(g) for g in d.get("groups", ())),
                created=float(d["created"]),
                expires=None if d.get("expires") is None else float(d["expires"]),
                description=str(d.get("description", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TokenError(f"token table entry {token_id!r}: bad or missing field {exc}") from exc
        if record.token_id != token_id:
            raise TokenError(f"token table entry {token_id!r}: token_id is {record.token_id!r}")
        if record.usage not in _USAGES:
            raise TokenError(f"token table entry {token_id!r}: usage {record.usage!r} "
                             f"is not one of {_USAGES}")
        return record

    def principal(self) -> Principal:
        return Principal(self.user, self.groups, "token")


def _hash(token_id: str, secret: str) -> str:
    return hashlib.sha256(f"raftkube-token:{token_id}.{secret}".encode()).hexdigest()


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_token_string(table: Mapping[str, Mapping] | None = None) -> str:
    """A fresh random `ID.SECRET` whose ID is not in `table` (if given)."""
    while True:
        token_id = _random(_ID_LEN)
        if table is None or token_id not in table:
            return f"{token_id}.{_random(_SECRET_LEN)}"


def split_token(token: str) -> tuple[str, str]:
    """(id, secret) of a well-formed token; TokenError when malformed."""
    m = _TOKEN_RE.fullmatch(token)
    if m is None:
        raise TokenError("malformed token: expected ID.SECRET with a 6-character ID and a "
                         "32-character secret of [a-z0-9]")
    return m.group(1), m.group(2)


def make_record(
    token: str,
    *,
    user: str,
    groups: Sequence[str] = (),
    usage: str = USAGE_AUTH,
    now: float,
    ttl: float | None = None,
    description: str = "",
) -> TokenRecord:
    """The table record for `token` (which the caller generated and hands to its owner)."""
    token_id, secret = split_token(token)
    if usage not in _USAGES:
        raise TokenError(f"usage {usage!r} is not one of {_USAGES}")
    if not user:
        raise TokenError("a token needs a user name")
    if ttl is not None and ttl <= 0:
        raise TokenError(f"ttl must be positive, got {ttl}")
    return TokenRecord(
        token_id=token_id,
        secret_hash=_hash(token_id, secret),
        usage=usage,
        user=user,
        groups=tuple(groups),
        created=now,
        expires=None if ttl is None else now + ttl,
        description=description,
    )


def add_record(table: Mapping[str, Mapping], record: TokenRecord) -> TokenTable:
    """A new table with `record` added. TokenError if its id is already used."""
    if record.token_id in table:
        raise TokenError(f"token id {record.token_id!r} already exists")
    out = dict(table)
    out[record.token_id] = record.to_dict()
    return out


def issue_token(
    table: Mapping[str, Mapping],
    *,
    user: str,
    groups: Sequence[str] = (),
    now: float,
    ttl: float | None = None,
    description: str = "",
) -> tuple[TokenTable, str]:
    """(new table, token) for a bearer token that authenticates as `user` in `groups`.
    The token string is returned once and is not recoverable from the table."""
    token = new_token_string(table)
    record = make_record(token, user=user, groups=groups, now=now, ttl=ttl,
                         description=description)
    return add_record(table, record), token


def issue_node_token(
    table: Mapping[str, Mapping], node_name: str, *, now: float, ttl: float | None = None
) -> tuple[TokenTable, str]:
    """(new table, token) for worker `node_name`: user `system:node:NAME`, group
    `system:nodes`."""
    return issue_token(table, user=f"{NODE_USER_PREFIX}{node_name}", groups=[NODES_GROUP],
                       now=now, ttl=ttl, description=f"node {node_name}")


def issue_join_token(
    table: Mapping[str, Mapping],
    *,
    now: float,
    ttl: float = DEFAULT_JOIN_TTL,
    description: str = "join token",
) -> tuple[TokenTable, str]:
    """(new table, token) for a join token valid for `ttl` seconds."""
    token = new_token_string(table)
    token_id, _ = split_token(token)
    record = make_record(token, user=f"{BOOTSTRAP_USER_PREFIX}{token_id}",
                         groups=[BOOTSTRAPPERS_GROUP], usage=USAGE_JOIN, now=now, ttl=ttl,
                         description=description)
    return add_record(table, record), token


def _check(table: Mapping[str, Mapping], token: str, now: float) -> TokenRecord:
    token_id, secret = split_token(token)
    entry = table.get(token_id)
    # Hash even for unknown ids, so the time taken does not tell which ids exist.
    candidate = _hash(token_id, secret)
    if entry is None:
        hmac.compare_digest(candidate, "0" * 64)
        raise TokenError(f"unknown token id {token_id!r}")
    record = TokenRecord.from_dict(token_id, entry)
    if not hmac.compare_digest(candidate, record.secret_hash):
        raise TokenError(f"token {token_id!r}: wrong secret")
    if record.expires is not None and now >= record.expires:
        raise TokenError(f"token {token_id!r} expired at {record.expires:.0f} (now {now:.0f})")
    return record


def authenticate(table: Mapping[str, Mapping], token: str, *, now: float) -> Principal:
    """The principal a bearer token stands for.

    Raises TokenError (malformed, unknown id, wrong secret, expired). Join tokens
    authenticate too, as `system:bootstrap:ID` in `system:bootstrappers`, a principal
    that RBAC grants nothing: only the join call accepts it.
    """
    return _check(table, token, now).principal()


def validate_join_token(table: Mapping[str, Mapping], token: str, *, now: float) -> TokenRecord:
    """The record of a valid, unexpired join token. TokenError otherwise, including when
    the token is a valid bearer token of another usage."""
    record = _check(table, token, now)
    if record.usage != USAGE_JOIN:
        raise TokenError(f"token {record.token_id!r} is not a join token")
    return record


def revoke(table: Mapping[str, Mapping], token_id: str) -> TokenTable:
    """A new table without `token_id`. Idempotent: revoking an absent id is a no-op."""
    return {k: v for k, v in table.items() if k != token_id}


def prune_expired(table: Mapping[str, Mapping], *, now: float) -> TokenTable:
    """A new table without the entries expired at `now`."""
    return {
        k: v for k, v in table.items()
        if v.get("expires") is None or now < float(v["expires"])
    }


def validate_table(table: Mapping[str, Mapping]) -> TokenTable:
    """Check every entry; TokenError names the first bad one. Returns a plain-dict copy."""
    return {k: TokenRecord.from_dict(k, v).to_dict() for k, v in table.items()}


def dumps(table: Mapping[str, Mapping]) -> str:
    """The table as JSON text (stable key order)."""
    return json.dumps(dict(table), sort_keys=True, indent=2)


def loads(text: str, source: str = "token table") -> TokenTable:
    """Parse and validate JSON text made by `dumps`; TokenError names `source`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenError(f"{source}: not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise TokenError(f"{source}: expected a JSON object of token id -> record")
    try:
        return validate_table(data)
    except TokenError as exc:
        raise TokenError(f"{source}: {exc}") from exc
