"""WorkerConfig parsing, pod spec translation and the atomic configMap/secret views."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftkube.api.v1 import core_pb2, pod_pb2
from raftkube.workers.agent.config import WorkerConfigError, load_worker_config
from raftkube.workers.agent.node_status import allocatable_of
from raftkube.workers.agent.pod_spec import ConfigError, container_env, container_spec
from raftkube.workers.agent.volumes import DATA_LINK, write_view


def test_config_reads_every_section(tmp_path: Path) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text("""
nodeName: w1
clientConfig: creds/config.yaml
runtime: {kind: podman, podmanSocket: /run/p.sock, hostDir: store, network: net1}
nodeIP: 10.0.0.5
podCIDR: 10.244.1.0/24
labels: {disk: ssd}
taints: [{key: a, value: b, effect: NoExecute}]
capacity: {pods: "20"}
reserved: {cpu: 100m}
dataDir: data
leaseIntervalSeconds: 1.5
fencingTimeoutSeconds: 4
resolvConf: {nameservers: [10.96.0.10], searches: [svc.cluster.local], options: [ndots:5]}
backoff: {initialSeconds: 2, maxSeconds: 30}
""")
    config = load_worker_config(path)
    assert config.client_config == tmp_path / "creds/config.yaml"
    assert config.runtime.host_dir == tmp_path / "store"
    assert config.runtime.podman_socket == Path("/run/p.sock")
    assert config.labels == {"disk": "ssd"} and config.capacity == {"pods": "20"}
    assert config.taints == ({"key": "a", "value": "b", "effect": "NoExecute"},)
    assert config.lease_interval_seconds == 1.5 and config.fencing_timeout_seconds == 4
    assert config.resolv_conf.options == ("ndots:5",)
    assert config.backoff.initial_seconds == 2


@pytest.mark.parametrize("text, message", [
    ("clientConfig: c", "nodeName: required"),
    ("nodeName: W1\nclientConfig: c", "not a lower-case DNS name"),
    ("nodeName: w\nclientConfig: c\npodCIDR: nope", "podCIDR"),
    ("nodeName: w\nclientConfig: c\ntaints: [{key: a, effect: Sometimes}]", "taints[0].effect"),
    ("nodeName: w\nclientConfig: c\ncapacity: {cpu: lots}", "capacity.cpu"),
    ("nodeName: w\nclientConfig: c\nresolvConf: {nameserver: [x]}", "resolvConf.nameserver"),
    ("nodeName: w\nclientConfig: c\nnodeAgent: {listen: ':1'}", "needs certFile"),
])
def test_config_errors_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(WorkerConfigError) as err:
        load_worker_config(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_allocatable_subtracts_reserved() -> None:
    out = allocatable_of({"cpu": "2", "memory": "1Gi", "pods": "110"},
                         {"cpu": "250m", "memory": "256Mi"})
    assert out == {"cpu": "1750m", "memory": f"{768 * 1024}Ki", "pods": "110"}


class Objects:
    def __init__(self) -> None:
        self.cms: dict[str, core_pb2.ConfigMap] = {}
        self.secrets: dict[str, core_pb2.Secret] = {}

    def configmap(self, namespace: str, name: str):
        return self.cms.get(name)

    def secret(self, namespace: str, name: str):
        return self.secrets.get(name)


def test_env_sources_and_missing_keys() -> None:
    objects = Objects()
    objects.cms["cm"] = core_pb2.ConfigMap(data={"k": "v", "other": "o"})
    objects.secrets["s"] = core_pb2.Secret(data={"p": b"pw"})
    pod = pod_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "p", "ns", "uid-1"
    pod.metadata.labels["app"] = "web"
    pod.spec.node_name = "w1"
    c = pod.spec.containers.add(name="c", image="img", command=["echo", "$(A)"])
    c.env_from.add(prefix="X_").config_map_ref.name = "cm"
    c.env.add(name="A", value="lit")
    c.env.add(name="B").value_from.secret_key_ref.CopyFrom(pod_pb2.SecretKeySelector(
        name="s", key="p"))
    c.env.add(name="L").value_from.field_ref.field_path = "metadata.labels['app']"
    c.env.add(name="IP").value_from.field_ref.field_path = "status.podIP"
    c.env.add(name="UID").value_from.field_ref.field_path = "metadata.uid"
    env = container_env(pod, c, objects, "10.1.1.1", "1.2.3.4")
    assert env == {"X_k": "v", "X_other": "o", "A": "lit", "B": "pw", "L": "web",
                   "IP": "10.1.1.1", "UID": "uid-1"}
    spec = container_spec(pod, c, init=False, env=env, mounts=())
    assert spec.command == ("echo", "lit")
    c.env.add(name="M").value_from.config_map_key_ref.CopyFrom(pod_pb2.ConfigMapKeySelector(
        name="cm", key="missing"))
    with pytest.raises(ConfigError, match="couldn't find key missing in ConfigMap ns/cm"):
        container_env(pod, c, objects, "", "")
    del c.env[-1]
    c.env.add(name="O").value_from.config_map_key_ref.CopyFrom(pod_pb2.ConfigMapKeySelector(
        name="absent", key="k", optional=True))
    assert "O" not in container_env(pod, c, objects, "", "")


def test_resources_become_runtime_limits() -> None:
    pod = pod_pb2.Pod()
    c = pod.spec.containers.add(name="c", image="img")
    c.resources.limits.update({"cpu": "500m", "memory": "64Mi"})
    spec = container_spec(pod, c, init=False, env={}, mounts=())
    assert spec.cpu_limit_millicores == 500 and spec.memory_limit_bytes == 64 * 1024 * 1024
    c.resources.limits["memory"] = "lots"
    with pytest.raises(ConfigError, match="resources"):
        container_spec(pod, c, init=False, env={}, mounts=())


def test_view_swaps_atomically_and_removes_old_keys(tmp_path: Path) -> None:
    view = tmp_path / "vol"
    assert write_view(view, {"a": (b"1", 0o644), "dir/b": (b"2", 0o400)})
    first = os.readlink(view / DATA_LINK)
    assert (view / "a").read_bytes() == b"1" and (view / "dir" / "b").read_bytes() == b"2"
    assert oct((view / "dir" / "b").stat().st_mode & 0o777) == "0o400"
    assert not write_view(view, {"a": (b"1", 0o644), "dir/b": (b"2", 0o400)}), "unchanged"
    assert write_view(view, {"a": (b"new", 0o644)})
    assert os.readlink(view / DATA_LINK) != first
    assert not (tmp_path / "vol" / first).exists(), "the old generation is removed"
    assert (view / "a").read_bytes() == b"new" and not (view / "dir").exists()
