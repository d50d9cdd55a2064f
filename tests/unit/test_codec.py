"""Plain data <-> protobuf: Kubernetes names and scalars, full error paths, exact round trips."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkube.api.v1 import apps_pb2, core_pb2, meta_pb2, pod_pb2
from raftkube.objects.codec import (
    decode,
    decode_partial,
    encode,
    int_or_string,
    int_or_string_value,
)
from raftkube.objects.defaulting import apply_defaults
from raftkube.objects.errors import ObjectInvalid
from raftkube.objects.manifests import dump_json, dump_yaml, load_text
from raftkube.objects.validation import validate
from raftkube.testing.object_strategies import random_objects


def test_kubernetes_field_names_are_used_including_acronyms() -> None:
    pod = pod_pb2.Pod()
    pod.status.pod_ip = "10.244.1.5"
    pod.status.host_ip = "192.168.1.2"
    pod.spec.containers.add(name="a").ports.add(container_port=80, host_ip="0.0.0.0")
    service = core_pb2.Service()
    service.spec.cluster_ip = "None"
    node = core_pb2.Node()
    node.spec.pod_cidr = "10.244.1.0/24"
    assert encode(pod) == {
        "spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80,
                                                          "hostIP": "0.0.0.0"}]}]},
        "status": {"hostIP": "192.168.1.2", "podIP": "10.244.1.5"},
    }
    assert encode(service) == {"spec": {"clusterIP": "None"}}
    assert encode(node) == {"spec": {"podCIDR": "10.244.1.0/24"}}


def test_int_or_string_reads_and_writes_plain_scalars() -> None:
    data = {"strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}}
    spec = decode(apps_pb2.DeploymentSpec, data)
    assert spec.strategy.rolling_update.max_surge.str_val == "25%"
    assert spec.strategy.rolling_update.max_unavailable.WhichOneof("value") == "int_val"
    assert encode(spec) == data
    assert int_or_string_value(int_or_string(8080)) == 8080
    assert int_or_string_value(int_or_string("http")) == "http"


def test_bytes_are_base64_and_empty_messages_and_zero_optionals_survive() -> None:
    data = {
        "data": {"k": base64.b64encode(b"\x00\xffbinary").decode()},
        "immutable": False,
    }
    secret = decode(core_pb2.Secret, data)
    assert secret.data["k"] == b"\x00\xffbinary"
    assert secret.HasField("immutable")
    assert encode(secret) == data
    volume = decode(pod_pb2.Volume, {"name": "v", "emptyDir": {}})
    assert encode(volume) == {"name": "v", "emptyDir": {}}
    spec = decode(apps_pb2.DeploymentSpec, {"replicas": 0})
    assert spec.HasField("replicas") and encode(spec) == {"replicas": 0}


def test_null_means_absent() -> None:
    assert encode(decode(pod_pb2.Volume, {"name": "v", "emptyDir": None})) == {"name": "v"}


@pytest.mark.parametrize(
    ("cls", "data", "errors"),
    [
        (pod_pb2.Container, {"nmae": "a"}, ["nmae: unknown field (did you mean 'name'?)"]),
        (pod_pb2.Container, {"ports": [{"containerPort": "80"}]},
         ["ports[0].containerPort: must be an integer, got string '80'"]),
        (pod_pb2.Container, {"ports": [{"containerPort": True}]},
         ["ports[0].containerPort: must be an integer, got boolean true"]),
        (pod_pb2.Container, {"ports": [{"containerPort": 1.5}]},
         ["ports[0].containerPort: must be an integer, got number 1.5"]),
        (pod_pb2.Container, {"ports": [{"containerPort": 2**31}]},
         ["ports[0].containerPort: 2147483648 is out of range"]),
        (pod_pb2.Container, {"ports": {"containerPort": 80}},
         ["ports: must be a list, got object"]),
        (pod_pb2.Container, {"env": [{"name": "N", "value": 8080}]},
         ["env[0].value: must be a string, got integer 8080 (quote it)"]),
        (pod_pb2.Container, {"stdin": "yes"}, ["stdin: must be true or false, got string 'yes'"]),
        (pod_pb2.Container, {"resources": {"limits": {"cpu": 1}}},
         ["resources.limits[cpu]: must be a string, got integer 1 (quote it)"]),
        (pod_pb2.Container, {"resources": {"limits": ["cpu"]}},
         ["resources.limits: must be an object (a map), got list"]),
        (pod_pb2.Container, {"readinessProbe": {"httpGet": {"port": [80]}}},
         ["readinessProbe.httpGet.port: must be an integer or a string, got list"]),
        (pod_pb2.Container, {"ports": [None]}, ["ports[0]: must not be null"]),
        (pod_pb2.Container, "web", ["must be an object, got string 'web'"]),
        (core_pb2.Secret, {"data": {"k": "not base64!"}}, ["data[k]: is not valid base64 data"]),
        (meta_pb2.ObjectMeta, {"labels": {1: "x"}}, ["labels: key 1 must be a string (quote it)"]),
        (pod_pb2.Container, {"name": 5, "image": 6, "extra": {}},
         ["name: must be a string, got integer 5 (quote it)",
          "image: must be a string, got integer 6 (quote it)", "extra: unknown field"]),
    ],
)
def test_decoding_errors_name_every_bad_field(cls, data, errors) -> None:
    with pytest.raises(ObjectInvalid) as info:
        decode(cls, data)
    assert [str(e) for e in info.value.errors] == errors


def test_decode_partial_keeps_the_good_fields() -> None:
    container, errors = decode_partial(pod_pb2.Container, {"name": "web", "image": 7})
    assert container.name == "web"
    assert [str(e) for e in errors] == ["image: must be a string, got integer 7 (quote it)"]


# ---- property: random objects of every kind round-trip proto -> YAML/JSON -> proto -------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_objects())
def test_random_objects_round_trip_through_yaml_unchanged(obj) -> None:
    loaded = load_text(dump_yaml([obj]), "random.yaml", default=False, check=False)
    assert len(loaded) == 1
    assert loaded[0].obj == obj


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(random_objects(), min_size=1, max_size=3))
def test_random_objects_round_trip_through_json_unchanged(objs) -> None:
    loaded = load_text(dump_json(objs), "random.json", default=False, check=False)
    assert [item.obj for item in loaded] == objs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_objects())
def test_defaulting_and_validation_never_crash_and_defaulting_is_idempotent(obj) -> None:
    defaulted = apply_defaults(obj)
    assert apply_defaults(defaulted) == defaulted
    errors = validate(defaulted)
    assert all(isinstance(e.path, str) and e.reason for e in errors)
