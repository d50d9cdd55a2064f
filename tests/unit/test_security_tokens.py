"""Bearer and join tokens: hashes only, expiry, revocation, serialization."""

from __future__ import annotations

import json

import pytest

from raftkube.security import tokens
from raftkube.security.principal import Principal

T0 = 1_700_000_000.0


def test_bearer_token_authenticates_as_its_user_and_groups() -> None:
    table, token = tokens.issue_token({}, user="bob", groups=["dev"], now=T0)
    assert tokens.authenticate(table, token, now=T0 + 10) == Principal("bob", ("dev",))


def test_table_holds_a_hash_not_the_secret() -> None:
    table, token = tokens.issue_token({}, user="bob", now=T0)
    token_id, secret = tokens.split_token(token)
    text = tokens.dumps(table)
    assert secret not in text
    assert token not in text
    assert json.loads(text)[token_id]["secret_hash"] != secret


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda t: t[:-1] + ("a" if t[-1] != "a" else "b"), "wrong secret"),
    (lambda t: "zzzzzz" + t[6:], "unknown token id 'zzzzzz'"),
    (lambda t: t.replace(".", ":"), "malformed token"),
    (lambda t: t.upper(), "malformed token"),
    (lambda t: "", "malformed token"),
])
def test_bad_tokens_are_refused_with_a_reason(mangle, message) -> None:
    table, token = tokens.issue_token({}, user="bob", now=T0)
    with pytest.raises(tokens.TokenError, match=message) as info:
        tokens.authenticate(table, mangle(token), now=T0)
    assert tokens.split_token(token)[1] not in str(info.value)


def test_token_with_ttl_expires() -> None:
    table, token = tokens.issue_token({}, user="bob", now=T0, ttl=60)
    assert tokens.authenticate(table, token, now=T0 + 59).name == "bob"
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.authenticate(table, token, now=T0 + 60)


def test_join_token_valid_until_expiry_then_rejected() -> None:
    table, join = tokens.issue_join_token({}, now=T0, ttl=3600)
    record = tokens.validate_join_token(table, join, now=T0 + 3599)
    assert record.usage == tokens.USAGE_JOIN
    assert record.user == f"system:bootstrap:{record.token_id}"
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.validate_join_token(table, join, now=T0 + 3600)
    assert tokens.prune_expired(table, now=T0 + 3600) == {}


def test_a_bearer_token_is_not_a_join_token() -> None:
    table, token = tokens.issue_token({}, user="bob", now=T0)
    with pytest.raises(tokens.TokenError, match="not a join token"):
        tokens.validate_join_token(table, token, now=T0)


def test_join_token_authenticates_only_as_a_bootstrapper() -> None:
    table, join = tokens.issue_join_token({}, now=T0)
    principal = tokens.authenticate(table, join, now=T0)
    assert principal.groups == ("system:bootstrappers",)
    assert principal.node_name is None


def test_node_token_is_a_node_identity() -> None:
    table, token = tokens.issue_node_token({}, "w1", now=T0)
    principal = tokens.authenticate(table, token, now=T0)
    assert principal.name == "system:node:w1"
    assert principal.node_name == "w1"


def test_revoke_removes_only_that_token_and_functions_do_not_mutate() -> None:
    t1, a = tokens.issue_token({}, user="a", now=T0)
    t2, b = tokens.issue_token(t1, user="b", now=T0)
    assert len(t1) == 1 and len(t2) == 2
    t3 = tokens.revoke(t2, tokens.split_token(a)[0])
    assert tokens.revoke(t3, tokens.split_token(a)[0]) == t3  # idempotent
    with pytest.raises(tokens.TokenError, match="unknown token id"):
        tokens.authenticate(t3, a, now=T0)
    assert tokens.authenticate(t3, b, now=T0).name == "b"
    assert tokens.authenticate(t2, a, now=T0).name == "a"


def test_table_round_trips_through_json() -> None:
    table, token = tokens.issue_token({}, user="bob", groups=["g1", "g2"], now=T0, ttl=5)
    table, join = tokens.issue_join_token(table, now=T0)
    again = tokens.loads(tokens.dumps(table))
    assert again == table
    assert tokens.authenticate(again, token, now=T0).groups == ("g1", "g2")
    assert tokens.validate_join_token(again, join, now=T0).usage == "join"


@pytest.mark.parametrize(("text", "message"), [
    ("[]", "expected a JSON object"),
    ("{", "not JSON"),
    ('{"abcdef": {"token_id": "abcdef"}}', "abcdef.*missing field"),
    ('{"abcdef": {"token_id": "abcdef", "secret_hash": "x", "usage": "root", "user": "u",'
     ' "created": 1}}', "usage 'root'"),
])
def test_bad_table_text_is_refused_naming_the_entry(text, message) -> None:
    with pytest.raises(tokens.TokenError, match=message):
        tokens.loads(text, "tokens.json")


def test_duplicate_ids_are_refused() -> None:
    table, token = tokens.issue_token({}, user="a", now=T0)
    record = tokens.make_record(token, user="b", now=T0)
    with pytest.raises(tokens.TokenError, match="already exists"):
        tokens.add_record(table, record)


def test_a_token_with_trailing_whitespace_inside_is_malformed() -> None:
    table, token = tokens.issue_token({}, user="bob", now=T0)
    with pytest.raises(tokens.TokenError, match="malformed"):
        tokens.authenticate(table, token + "\n", now=T0)
