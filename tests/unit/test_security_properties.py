"""Property tests: no input crashes the authorizer or the token checker, and encryption
round-trips any value bound to any key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkube.security import encryption, tokens
from raftkube.security.principal import Principal
from raftkube.security.rbac import Decision, Policy, authorize, bind

RING = encryption.KeyRing([encryption.new_key("k2"), encryption.new_key("k1")])
POLICY = Policy().with_bindings(bind("b", "edit", users=["bob"], namespace="dev"))
names = st.text(max_size=20)


@settings(max_examples=300, deadline=None)
@given(value=st.binary(max_size=2000), key=st.text(max_size=100))
def test_encryption_round_trips_and_binds_to_the_key(value: bytes, key: str) -> None:
    sealed = RING.encrypt(value, key)
    assert RING.decrypt(sealed, key) == value
    with pytest.raises(encryption.EncryptionError):
        RING.decrypt(sealed, key + "x")


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=200))
def test_any_bytes_either_decrypt_or_raise_encryption_error(garbage: bytes) -> None:
    try:
        RING.decrypt(encryption.PREFIX + b"k1:" + garbage, "/k")
    except encryption.EncryptionError:
        return
    pytest.fail("random bytes decrypted")


@settings(max_examples=500, deadline=None)
@given(user=names, groups=st.lists(names, max_size=3), verb=names, kind=names,
       namespace=st.one_of(st.none(), names), name=st.one_of(st.none(), names),
       sub=st.one_of(st.none(), names), node=st.one_of(st.none(), names))
def test_authorize_always_decides_with_a_reason(user, groups, verb, kind, namespace, name,
                                                sub, node) -> None:
    d = authorize(Principal(user, tuple(groups)), verb, kind, namespace, name,
                  subresource=sub, object_node=node, policy=POLICY)
    assert isinstance(d, Decision) and d.reason


@settings(max_examples=300, deadline=None)
@given(token=st.text(max_size=60))
def test_any_token_text_is_refused_with_token_error(token: str) -> None:
    table, _good = tokens.issue_token({}, user="u", now=0.0)
    with pytest.raises(tokens.TokenError):
        tokens.authenticate(table, token, now=0.0)
