"""Fuzzing the object API with random objects of every kind: it never crashes, and nothing
invalid is ever stored."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkube import apierrors
from raftkube.masters.gatekeeper import Gatekeeper
from raftkube.masters.object_api import ObjectApi
from raftkube.masters.object_store import ObjectStore
from raftkube.objects import registry
from raftkube.objects.validation import validate
from raftkube.security.grpc_auth import acting_as
from raftkube.security.principal import MASTERS_GROUP, Principal
from raftkube.security.rbac import Authorizer
from raftkube.testing.object_strategies import random_objects
from raftkube.testing.single_store import single_member_store

ADMIN = Principal("admin", (MASTERS_GROUP,))


@pytest.fixture(scope="module")
def api():
    with single_member_store() as store:
        yield ObjectApi(ObjectStore(store), Gatekeeper(Authorizer()))


@st.composite
def named_objects(draw):
    obj = draw(random_objects())
    obj.metadata.name = draw(st.one_of(st.sampled_from(["a", "b", "web-1"]),
                                       st.text(max_size=10)))
    obj.metadata.namespace = draw(st.sampled_from(["", "default", "kube-system", "nope"]))
    obj.metadata.resource_version = draw(st.sampled_from(["", "1", "x", "99999"]))
    return obj


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["create", "update", "apply", "status"]),
                          named_objects()), min_size=1, max_size=4))
def test_random_requests_never_crash_or_store_invalid_objects(api: ObjectApi, requests) -> None:
    with acting_as(ADMIN):
        for verb, obj in requests:
            try:
                if verb == "create":
                    api.create(obj)
                elif verb == "update":
                    api.update(obj)
                elif verb == "apply":
                    api.apply(obj)
                else:
                    api.update_status(obj)
            except apierrors.ApiError as e:
                assert e.message  # every rejection says why
        for info in registry.all_kinds():
            items, _, _ = api.objects.list(info)
            for stored in items:
                assert validate(stored) == [], (info.kind, stored)
