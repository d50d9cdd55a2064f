"""Three real master processes: CRUD through any master, TLS and tokens required, watch
resume after the serving master dies, secrets never on disk in plaintext, leader loops
following leadership."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import grpc
import pytest
import yaml

from raftkube import apierrors
from raftkube.api.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    core_pb2,
    resources_pb2,
    resources_pb2_grpc,
)
from raftkube.objects import registry
from raftkube.security.grpc_auth import channel_credentials
from raftkube.testing.master_cluster import MasterCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    with MasterCluster(3, workers=("w1",)) as c:
        yield c


def call(fn, *args, **kwargs):
    """Run a gRPC call and turn its failure into the typed API error."""
    try:
        return fn(*args, timeout=10, **kwargs)
    except grpc.RpcError as e:
        raise apierrors.from_rpc_error(e) from None


def config_map(name: str, **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.data.update(data)
    return cm


def create(stub, obj):
    return registry.unwrap(call(stub.Create, resources_pb2.CreateRequest(
        object=registry.wrap(obj))))


def test_writes_through_any_master_are_read_everywhere(cluster: MasterCluster) -> None:
    created = [create(cluster.resources(i), config_map(f"from-m{i}", origin=str(i)))
               for i in range(3)]
    assert len({c.metadata.uid for c in created}) == 3
    for reader in range(3):
        listed = call(cluster.resources(reader).List,
                      resources_pb2.ListRequest(kind="ConfigMap", namespace="default",
                                                linearizable=True))
        names = {registry.unwrap(i).metadata.name for i in listed.items}
        assert {"from-m0", "from-m1", "from-m2"} <= names


def test_conflicting_update_names_both_versions(cluster: MasterCluster) -> None:
    obj = create(cluster.resources(0), config_map("contended", v="0"))
    first = config_map("contended", v="1")
    first.metadata.resource_version = obj.metadata.resource_version
    call(cluster.resources(1).Update, resources_pb2.UpdateRequest(object=registry.wrap(first)))
    second = config_map("contended", v="2")
    second.metadata.resource_version = obj.metadata.resource_version
    with pytest.raises(apierrors.Conflict) as raised:
        call(cluster.resources(2).Update,
             resources_pb2.UpdateRequest(object=registry.wrap(second)))
    assert raised.value.details["given"] == obj.metadata.resource_version
    assert int(raised.value.details["current"]) > int(obj.metadata.resource_version)


def test_tls_and_credentials_are_required(cluster: MasterCluster) -> None:
    address = cluster.members[0].api_address
    plain = grpc.insecure_channel(address)
    try:
        with pytest.raises(grpc.RpcError) as raised:
            resources_pb2_grpc.ResourcesStub(plain).Get(
                resources_pb2.GetRequest(kind="ConfigMap", name="x"), timeout=3)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        plain.close()
    anonymous = grpc.secure_channel(address, channel_credentials(cluster.ca_pem))
    try:
        with pytest.raises(grpc.RpcError) as raised:
            resources_pb2_grpc.ResourcesStub(anonymous).Get(
                resources_pb2.GetRequest(kind="ConfigMap", name="x"), timeout=3)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        anonymous.close()
    with pytest.raises(apierrors.Unauthenticated, match="invalid bearer token"):
        call(cluster.resources(0, token="abcdef.0123456789abcdef").Get,
             resources_pb2.GetRequest(kind="ConfigMap", name="x"))


def test_node_token_is_restricted(cluster: MasterCluster) -> None:
    node_token = cluster.layout.worker_token("w1").read_text().strip()
    node = cluster.resources(0, token=node_token)
    secret = core_pb2.Secret(api_version="v1", kind="Secret")
    secret.metadata.name = "not-for-w1"
    secret.string_data["password"] = "hunter2"
    create(cluster.resources(0), secret)
    with pytest.raises(apierrors.Forbidden, match='not referenced by any pod bound to node "w1"'):
        call(node.Get, resources_pb2.GetRequest(kind="Secret", namespace="default",
                                                name="not-for-w1"))
    own = core_pb2.Node(api_version="v1", kind="Node")
    own.metadata.name = "w1"
    create(node, own)
    other = core_pb2.Node(api_version="v1", kind="Node")
    other.metadata.name = "w2"
    with pytest.raises(apierrors.Forbidden, match="only their own Node"):
        create(node, other)


def test_secret_is_not_on_disk_in_plaintext(cluster: MasterCluster) -> None:
    marker = "plaintext-marker-7f3a9c"
    secret = core_pb2.Secret(api_version="v1", kind="Secret")
    secret.metadata.name = "db-password"
    secret.string_data["password"] = marker
    create(cluster.resources(0), secret)
    got = registry.unwrap(call(cluster.resources(1).Get, resources_pb2.GetRequest(
        kind="Secret", namespace="default", name="db-password", linearizable=True)))
    assert got.data["password"] == marker.encode()
    needles = [marker.encode(), base64.b64encode(marker.encode())]
    time.sleep(0.5)
    scanned = 0
    for path in Path(cluster.root).rglob("*"):
        if path.is_file() and "data" in path.parts:
            content = path.read_bytes()
            scanned += 1
            for needle in needles:
                assert needle not in content, f"{path} holds the secret in plaintext"
    assert scanned > 0


def test_watch_resumes_on_another_master_after_a_kill(cluster: MasterCluster) -> None:
    start = create(cluster.resources(0), config_map("watch-start"))
    rv = start.metadata.resource_version
    seen: list[tuple[str, str, int]] = []
    victim = next(i for i in range(3) if i != cluster.leader_index())
    stop_writing = threading.Event()

    def writer() -> None:
        writer_index = next(i for i in range(3) if i != victim)
        for n in range(40):
            if stop_writing.is_set():
                return
            create(cluster.resources(writer_index), config_map(f"watched-{n}"))
            time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    stream = cluster.resources(victim).Watch(resources_pb2.WatchRequest(
        kind="ConfigMap", namespace="default", resource_version=rv))
    last_rv = int(rv)
    try:
        for event in stream:
            last_rv = int(event.resource_version)
            seen.append((event.type, registry.unwrap(event.object).metadata.name, last_rv))
            if len(seen) == 10:
                cluster.kill(victim)
                break
    except grpc.RpcError:
        pass
    resumed_on = next(i for i in range(3) if i != victim)
    stream = cluster.resources(resumed_on).Watch(resources_pb2.WatchRequest(
        kind="ConfigMap", namespace="default", resource_version=str(last_rv)))
    for event in stream:
        seen.append((event.type, registry.unwrap(event.object).metadata.name,
                     int(event.resource_version)))
        if len([s for s in seen if s[1].startswith("watched-")]) == 40:
            stream.cancel()
            break
    thread.join(30)
    stop_writing.set()
    revisions = [s[2] for s in seen]
    assert revisions == sorted(set(revisions)), "revisions must strictly increase (no duplicates)"
    names = [s[1] for s in seen if s[1].startswith("watched-")]
    assert names == [f"watched-{n}" for n in range(40)]
    cluster.restart(victim)


def test_leader_loops_move_with_leadership(cluster: MasterCluster) -> None:
    ns = call(cluster.resources(0).Get, resources_pb2.GetRequest(kind="Namespace",
                                                                 name="kube-system"))
    assert registry.unwrap(ns).metadata.name == "kube-system"
    old = cluster.leader_index()
    old_term = call(cluster.admin(old).LocalStatus, admin_pb2.LocalStatusRequest()).term
    cluster.kill(old)
    new = cluster.leader_index()
    assert new != old
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = cluster.members[new].log_path.read_text()
        started = [line for line in log.splitlines() if "leader loops started" in line]
        if any(f'"term": {t}' in line or f"term={t}" in line
               for line in started for t in range(old_term + 1, old_term + 20)):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"new leader did not start its loops:\n{cluster.log_tail(new)}")
    cluster.restart(old)
    status = call(cluster.admin(old).ClusterStatus, admin_pb2.ClusterStatusRequest())
    assert sorted(m.name for m in status.masters) == ["m1", "m2", "m3"]
    assert [m.role for m in status.masters].count("leader") == 1
    assert all(m.health == "ok" and m.pid > 0 for m in status.masters)


def test_secret_encryption_keys_rotate(cluster: MasterCluster) -> None:
    from raftkube.api.v1 import kv_pb2, kv_pb2_grpc
    from raftkube.cli import raftkube_main

    secret = core_pb2.Secret(api_version="v1", kind="Secret")
    secret.metadata.name = "rotated"
    secret.string_data["token"] = "s3cr3t"
    create(cluster.resources(0), secret)
    key_file = cluster.layout.encryption_keys

    def stored_key_name() -> bytes:
        kv = kv_pb2_grpc.KVStub(cluster.channel(0))
        reply = call(kv.Range, kv_pb2.StoreRangeRequest(
            key=b"/registry/secrets/default/rotated"))
        return reply.kvs[0].value.split(b":")[4]  # k8s:enc:aesgcm:v1:KEY:...

    assert stored_key_name() == b"key1"
    assert raftkube_main.main(["encryption", "add-key", "--file", str(key_file),
                               "--name", "key2"]) == 0
    time.sleep(1.5)  # every master re-reads its key file within a second
    from raftkube.cli import raftkubectl_main

    assert raftkubectl_main.main(["cluster", "rotate-secrets", "--config",
                                  str(cluster.layout.admin_config)]) == 0
    assert stored_key_name() == b"key2"
    assert raftkube_main.main(["encryption", "remove-key", "--file", str(key_file),
                               "--name", "key1"]) == 0
    time.sleep(1.5)
    for i in range(3):
        got = registry.unwrap(call(cluster.resources(i).Get, resources_pb2.GetRequest(
            kind="Secret", namespace="default", name="rotated", linearizable=True)))
        assert got.data["token"] == b"s3cr3t"


def test_a_worker_joins_with_a_join_token(cluster: MasterCluster, tmp_path: Path) -> None:
    from raftkube.cli.cmd_join import join
    from raftkube.client import Client

    reply = call(cluster.admin(0).CreateJoinToken,
                 admin_pb2.CreateJoinTokenRequest(ttl_seconds=600))
    joined = join(reply.token, cluster.members[1].api_address, cluster.layout.ca_cert,
                  "joined-1", tmp_path, node_ip="127.0.0.1")
    assert joined.worker_config.exists() and joined.node_agent
    node_client = Client.from_config(tmp_path / "node" / "config.yaml")
    try:
        me = core_pb2.Node(api_version="v1", kind="Node")
        me.metadata.name = "joined-1"
        node_client.create(me)
        other = core_pb2.Node(api_version="v1", kind="Node")
        other.metadata.name = "someone-else"
        with pytest.raises(apierrors.Forbidden):
            node_client.create(other)
    finally:
        node_client.close()
    with pytest.raises(apierrors.Unauthenticated):
        join("abcdef.0123456789abcdef", cluster.members[0].api_address,
             cluster.layout.ca_cert, "joined-2", tmp_path / "x")
    node_token = (tmp_path / "node" / "token").read_text().strip()
    with pytest.raises(apierrors.Forbidden, match="join token"):
        join(node_token, cluster.members[0].api_address, cluster.layout.ca_cert,
             "joined-3", tmp_path / "y")


def test_a_joining_node_gets_a_serving_certificate_for_itself_only(
        cluster: MasterCluster, tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from raftkube.cli.cmd_join import join
    from raftkube.security.node_serving import serving_request

    join_token = call(cluster.admin(0).CreateJoinToken,
                      admin_pb2.CreateJoinTokenRequest(ttl_seconds=600)).token
    joined = join(join_token, cluster.members[2].api_address, cluster.layout.ca_cert,
                  "serving-1", tmp_path, node_ip="127.0.0.1")
    agent = yaml.safe_load(joined.worker_config.read_text())["nodeAgent"]
    assert agent["listen"] == "127.0.0.1:10250"
    assert oct(Path(agent["keyFile"]).stat().st_mode & 0o777) == "0o600"
    cert = x509.load_pem_x509_certificate(Path(agent["certFile"]).read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["serving-1"]

    # A request naming another node is refused with the reason.
    channel = grpc.secure_channel(cluster.members[0].api_address, channel_credentials(
        cluster.ca_pem, token=join_token))
    try:
        csr = serving_request(ec.generate_private_key(ec.SECP256R1()), "w1")
        with pytest.raises(apierrors.Invalid, match="names 'system:node:w1'"):
            call(admin_pb2_grpc.AdminStub(channel).JoinNode,
                 admin_pb2.JoinNodeRequest(node_name="serving-2", serving_csr=csr))
    finally:
        channel.close()

    # The serving certificate is no client certificate: the node port refuses it in the
    # TLS handshake, where the node's real client certificate is accepted.
    def node_port_get(cert: Path, key: Path) -> grpc.StatusCode:
        creds = channel_credentials(cluster.ca_pem, client_cert_pem=cert.read_bytes(),
                                    client_key_pem=key.read_bytes())
        with grpc.secure_channel(cluster.members[0].node_address, creds) as node_channel:
            try:
                call(resources_pb2_grpc.ResourcesStub(node_channel).Get,
                     resources_pb2.GetRequest(kind="Node", name="w1"))
            except apierrors.ApiError as e:
                return e.code
            return grpc.StatusCode.OK

    assert node_port_get(cluster.layout.worker_cert("w1"),
                         cluster.layout.worker_key("w1")) != grpc.StatusCode.UNAVAILABLE
    assert node_port_get(Path(agent["certFile"]),
                         Path(agent["keyFile"])) == grpc.StatusCode.UNAVAILABLE


def test_masters_of_a_directory_made_before_the_node_serving_ca_sign_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Clusters made before the node serving CA keep working: join succeeds, writes no
    nodeAgent, and says that logs/exec need the node serving CA or add-worker."""
    from raftkube.cli import raftkube_main
    from raftkube.security.cluster_init import load_cluster_file

    old = MasterCluster(1)
    doc = load_cluster_file(old.layout.cluster_file)
    del doc["nodeServingCA"]
    old.layout.cluster_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    with old:
        token = call(old.admin(0).CreateJoinToken,
                     admin_pb2.CreateJoinTokenRequest(ttl_seconds=600)).token
        assert raftkube_main.main([
            "join", "--token", token, "--name", "old-1", "--master",
            old.members[0].api_address, "--ca-file", str(old.layout.ca_cert),
            "--node-ip", "127.0.0.1", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "hold no node serving CA" in out and "add-node-serving-ca" in out
    assert "add-worker" in out
    config = yaml.safe_load((tmp_path / "worker.yaml").read_text())
    assert "nodeAgent" not in config and config["nodeName"] == "old-1"
    assert not (tmp_path / "node" / "serving.key").exists()


def test_nodes_get_distinct_pod_subnets_at_registration(cluster: MasterCluster) -> None:
    def register(name: str, cidr: str = "") -> core_pb2.Node:
        node = core_pb2.Node(api_version="v1", kind="Node")
        node.metadata.name = name
        node.spec.pod_cidr = cidr
        return create(cluster.resources(0), node)

    a, b = register("cidr-a"), register("cidr-b")
    assert a.spec.pod_cidr and b.spec.pod_cidr and a.spec.pod_cidr != b.spec.pod_cidr
    with pytest.raises(apierrors.Invalid, match="already allocated"):
        register("cidr-c", a.spec.pod_cidr)
    call(cluster.resources(1).Delete, resources_pb2.DeleteRequest(kind="Node", name="cidr-a"))
    assert register("cidr-c", a.spec.pod_cidr).spec.pod_cidr == a.spec.pod_cidr


def test_a_serving_master_already_holds_the_system_namespaces() -> None:
    """Health SERVING means usable: no client sees `namespace "default" not found`, and
    agents can renew leases, right after every master reported SERVING."""
    with MasterCluster(3) as fresh:
        for index in range(3):
            for name in ("default", "kube-system", "raftkube-node-lease"):
                ns = call(fresh.resources(index).Get,
                          resources_pb2.GetRequest(kind="Namespace", name=name))
                assert registry.unwrap(ns).metadata.name == name, (index, name)
