"""The agent on real Podman with real masters: what a user of pods checks."""

from __future__ import annotations

import ipaddress
import os
import signal
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from raftkube.api.v1 import apps_pb2, core_pb2, node_agent_pb2, pod_pb2, storage_pb2
from raftkube.testing.agent_harness import (
    AgentHarness,
    condition,
    container,
    container_state,
)

pytestmark = [pytest.mark.podman, pytest.mark.timeout(300)]

HTTPD = ["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && "
         "exec httpd -f -p 8080 -h /www"]


def ready(pod: pod_pb2.Pod) -> bool:
    return condition(pod, "Ready") == "True"


def http_probe(port: int = 8080, path: str = "/", period: int = 1,
               failure: int = 3) -> pod_pb2.Probe:
    probe = pod_pb2.Probe(period_seconds=period, failure_threshold=failure, timeout_seconds=2)
    probe.http_get.path = path
    probe.http_get.port.int_val = port
    return probe


def host_pid(harness: AgentHarness, container_id: str) -> int:
    out = harness.podman.podman("inspect", "-f", "{{.State.Pid}}",  # type: ignore[union-attr]
                                container_id.removeprefix("podman://"))
    return int(out.stdout.decode().strip())


def test_node_registered_with_lease(harness: AgentHarness, agent) -> None:
    node = harness.admin.nodes.get("w1")
    assert node.metadata.labels["kubernetes.io/hostname"] == "w1"
    assert int(node.status.capacity["pods"]) == 110
    assert int(node.status.capacity["cpu"]) == os.cpu_count()
    # no podCIDR configured: the masters allocate one from the cluster range
    assert ipaddress.ip_network(node.spec.pod_cidr).subnet_of(
        ipaddress.ip_network("10.244.0.0/16"))
    assert condition(node, "Ready") == "True"
    assert {a.type for a in node.status.addresses} == {"InternalIP", "Hostname"}
    assert any("localhost/busybox:latest" in i.names for i in node.status.images)
    lease = harness.admin.resource("Lease").get("w1", "raftkube-node-lease")
    first = lease.spec.renew_time
    assert lease.spec.holder_identity == "w1" and "." in first
    time.sleep(1.5)
    assert harness.admin.resource("Lease").get("w1", "raftkube-node-lease").spec.renew_time \
        > first


def test_httpd_readiness_kill_and_restart(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    web = container("web", HTTPD, readiness_probe=http_probe(),
                    ports=[pod_pb2.ContainerPort(container_port=8080, name="http")])
    pod = harness.create(harness.pod("web", ns, containers=[web]))
    running = harness.wait_pod(pod, ready, what="Ready")
    assert running.status.phase == "Running" and running.status.pod_ip
    assert running.status.host_ip == "127.0.0.1" and running.status.start_time
    with urllib.request.urlopen(f"http://{running.status.pod_ip}:8080/", timeout=5) as r:
        assert r.read() == b"hello\n"
    first = container_state(running, "web")
    assert first is not None and first.restart_count == 0 and first.ready and first.started
    os.kill(host_pid(harness, first.container_id), signal.SIGKILL)
    restarted = harness.wait_pod(
        pod, lambda p: container_state(p, "web").restart_count == 1 and ready(p),
        what="restart 1 and Ready again")
    again = container_state(restarted, "web")
    assert again.container_id != first.container_id
    assert again.last_state.terminated.exit_code == 137
    assert again.last_state.terminated.reason == "Error"
    reasons = {e.reason for e in harness.events(pod)}
    assert {"Pulled", "Created", "Started"} <= reasons


def test_crash_loop_back_off(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    pod = harness.create(harness.pod("crash", ns, containers=[
        container("c", ["sh", "-c", "echo boom; exit 3"])]))
    looping = harness.wait_pod(
        pod, lambda p: container_state(p, "c").state.waiting.reason == "CrashLoopBackOff",
        what="CrashLoopBackOff")
    state = container_state(looping, "c")
    assert state.last_state.terminated.exit_code == 3
    assert state.last_state.terminated.reason == "Error"
    assert "back-off" in state.state.waiting.message
    assert looping.status.phase == "Running" and not ready(looping)
    later = harness.wait_pod(pod, lambda p: container_state(p, "c").restart_count >= 2,
                             what="two restarts")
    assert container_state(later, "c").restart_count >= 2
    assert "BackOff" in {e.reason for e in harness.events(pod)}


def test_oom_killed(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    hog = container("hog", ["sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"],
                    resources=pod_pb2.ResourceRequirements(limits={"memory": "16Mi"}))
    pod = harness.create(harness.pod("hog", ns, containers=[hog], restart_policy="Never"))
    done = harness.wait_pod(pod, lambda p: p.status.phase == "Failed", what="Failed")
    term = container_state(done, "hog").state.terminated
    assert term.exit_code == 137 and term.reason == "OOMKilled"


def test_restart_policies_and_init_containers(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    pod = pod_pb2.Pod()
    pod.CopyFrom(harness.pod("job", ns, restart_policy="OnFailure", containers=[
        container("main", ["sh", "-c", "cat /work/from-init && exit 0"],
                  volume_mounts=[pod_pb2.VolumeMount(name="work", mount_path="/work")])]))
    pod.spec.init_containers.append(container(
        "first", ["sh", "-c", "echo one > /work/from-init"],
        volume_mounts=[pod_pb2.VolumeMount(name="work", mount_path="/work")]))
    pod.spec.init_containers.append(container("second", ["true"]))
    pod.spec.volumes.append(pod_pb2.Volume(name="work", empty_dir=pod_pb2.EmptyDirVolumeSource()))
    created = harness.create(pod)
    done = harness.wait_pod(created, lambda p: p.status.phase == "Succeeded", what="Succeeded")
    assert [s.state.terminated.reason for s in done.status.init_container_statuses] == [
        "Completed", "Completed"]
    assert container_state(done, "main").state.terminated.exit_code == 0
    assert condition(done, "Initialized") == "True"
    logs = b"".join(harness.podman.runtime.logs(  # type: ignore[union-attr]
        container_state(done, "main").container_id.removeprefix("podman://")))
    assert logs == b"one\n"

    failing = harness.create(harness.pod("fails", ns, restart_policy="Never", containers=[
        container("main", ["sh", "-c", "exit 7"])]))
    failed = harness.wait_pod(failing, lambda p: p.status.phase == "Failed", what="Failed")
    assert container_state(failed, "main").state.terminated.exit_code == 7
    assert container_state(failed, "main").restart_count == 0


def _configmap(ns: str, name: str, data: dict[str, str]) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap", data=data)
    cm.metadata.name, cm.metadata.namespace = name, ns
    return cm


def _secret(ns: str, name: str, data: dict[str, bytes]) -> core_pb2.Secret:
    secret = core_pb2.Secret(api_version="v1", kind="Secret", data=data)
    secret.metadata.name, secret.metadata.namespace = name, ns
    return secret


def _exec(harness: AgentHarness, pod: pod_pb2.Pod, name: str, command: list[str]) -> bytes:
    cid = container_state(pod, name).container_id.removeprefix("podman://")
    result = harness.podman.runtime.exec(cid, command, timeout_seconds=20)  # type: ignore[union-attr]
    assert result.exit_code == 0, result
    return result.stdout


def test_env_config_and_secret_volumes(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    harness.create(_configmap(ns, "settings", {"color": "blue", "size": "L"}))
    harness.create(_secret(ns, "creds", {"password": b"s3cret"}))
    env = [
        pod_pb2.EnvVar(name="LITERAL", value="x-$(COLOR)"),
        pod_pb2.EnvVar(name="POD_NAME", value_from=pod_pb2.EnvVarSource(
            field_ref=pod_pb2.ObjectFieldSelector(field_path="metadata.name"))),
        pod_pb2.EnvVar(name="POD_NS", value_from=pod_pb2.EnvVarSource(
            field_ref=pod_pb2.ObjectFieldSelector(field_path="metadata.namespace"))),
        pod_pb2.EnvVar(name="POD_IP", value_from=pod_pb2.EnvVarSource(
            field_ref=pod_pb2.ObjectFieldSelector(field_path="status.podIP"))),
        pod_pb2.EnvVar(name="NODE", value_from=pod_pb2.EnvVarSource(
            field_ref=pod_pb2.ObjectFieldSelector(field_path="spec.nodeName"))),
        pod_pb2.EnvVar(name="PASSWORD", value_from=pod_pb2.EnvVarSource(
            secret_key_ref=pod_pb2.SecretKeySelector(name="creds", key="password"))),
    ]
    env_from = [pod_pb2.EnvFromSource(prefix="CFG_", config_map_ref=pod_pb2.ConfigMapEnvSource(
        name="settings"))]
    c = container("app", ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"],
                  env=[pod_pb2.EnvVar(name="COLOR", value="red"), *env], env_from=env_from,
                  volume_mounts=[pod_pb2.VolumeMount(name="cfg", mount_path="/etc/cfg"),
                                 pod_pb2.VolumeMount(name="sec", mount_path="/etc/sec",
                                                     read_only=True)])
    pod = harness.pod("envy", ns, containers=[c])
    pod.spec.volumes.append(pod_pb2.Volume(name="cfg", config_map=pod_pb2.ConfigMapVolumeSource(
        name="settings", items=[pod_pb2.KeyToPath(key="color", path="colors/main")])))
    pod.spec.volumes.append(pod_pb2.Volume(name="sec", secret=pod_pb2.SecretVolumeSource(
        secret_name="creds", default_mode=0o400)))
    created = harness.create(pod)
    running = harness.wait_pod(created, ready, what="Ready")
    lines = dict(line.split("=", 1) for line in _exec(
        harness, running, "app", ["env"]).decode().splitlines() if "=" in line)
    assert lines["LITERAL"] == "x-red"
    assert lines["POD_NAME"] == "envy" and lines["POD_NS"] == ns and lines["NODE"] == "w1"
    assert lines["POD_IP"] == running.status.pod_ip
    assert lines["PASSWORD"] == "s3cret"
    assert lines["CFG_color"] == "blue" and lines["CFG_size"] == "L"
    assert _exec(harness, running, "app", ["cat", "/etc/cfg/colors/main"]) == b"blue"
    assert _exec(harness, running, "app", ["cat", "/etc/sec/password"]) == b"s3cret"
    mode = _exec(harness, running, "app", ["stat", "-L", "-c", "%a", "/etc/sec/password"])
    assert mode.strip() == b"400"
    # the secret's view is on a tmpfs on the host, never on disk
    volume_dir = agent.volumes.pod_dir(running.metadata.uid) / "volumes" / "sec"
    mounts = Path("/proc/mounts").read_text().split("\n")
    assert any(m.split()[1] == str(volume_dir) and m.split()[2] == "tmpfs"
               for m in mounts if m)
    # updates propagate (the agent re-reads referenced objects on resync)
    cm = harness.admin.configmaps.get("settings", ns)
    cm.data["color"] = "green"
    harness.admin.update(cm)
    secret = harness.admin.secrets.get("creds", ns)
    secret.data["password"] = b"rotated"
    harness.admin.update(secret)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if (_exec(harness, running, "app", ["cat", "/etc/cfg/colors/main"]) == b"green"
                and _exec(harness, running, "app", ["cat", "/etc/sec/password"]) == b"rotated"):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("configMap/secret update did not reach the pod's files")


def test_bad_input_gives_reasons_and_leaves_others_alone(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    neighbour = harness.create(harness.pod("neighbour", ns))
    harness.wait_pod(neighbour, ready, what="neighbour Ready")
    before = container_state(harness.get_pod(neighbour), "main").container_id
    no_image = harness.create(harness.pod("noimage", ns, containers=[
        container("c", ["true"], image="localhost/missing:1")]))
    bad_command = harness.create(harness.pod("badcmd", ns, containers=[
        container("c", ["/no/such/binary"])]))
    missing_key = harness.create(harness.pod("nokey", ns, containers=[
        container("c", ["true"], env=[pod_pb2.EnvVar(name="X", value_from=pod_pb2.EnvVarSource(
            config_map_key_ref=pod_pb2.ConfigMapKeySelector(name="absent-cm", key="k")))])]))
    harness.create(_configmap(ns, "present", {"a": "1"}))
    missing_key2 = harness.create(harness.pod("nokey2", ns, containers=[
        container("c", ["true"], env=[pod_pb2.EnvVar(name="X", value_from=pod_pb2.EnvVarSource(
            config_map_key_ref=pod_pb2.ConfigMapKeySelector(name="present", key="nope")))])]))

    def waiting(pod, reasons):
        return harness.wait_pod(pod, lambda p: container_state(p, "c") is not None and
                                container_state(p, "c").state.waiting.reason in reasons,
                                what=f"waiting {reasons}")

    img = container_state(waiting(no_image, {"ErrImageNeverPull", "ImagePullBackOff"}), "c")
    assert "localhost/missing:1" in img.state.waiting.message
    cmd = container_state(waiting(bad_command, {"RunContainerError", "CreateContainerError",
                                                "CrashLoopBackOff"}), "c")
    assert cmd.state.waiting.message
    key = container_state(waiting(missing_key, {"CreateContainerConfigError"}), "c")
    assert "absent-cm" in key.state.waiting.message
    key2 = container_state(waiting(missing_key2, {"CreateContainerConfigError"}), "c")
    assert "nope" in key2.state.waiting.message
    after = harness.get_pod(neighbour)
    assert ready(after) and container_state(after, "main").container_id == before
    assert container_state(after, "main").restart_count == 0


def test_graceful_delete(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    pod = harness.pod("polite", ns, containers=[
        container("c", ["sh", "-c", "trap 'echo bye; exit 0' TERM; "
                        "while true; do sleep 0.2; done"])])
    pod.spec.termination_grace_period_seconds = 20
    created = harness.create(pod)
    running = harness.wait_pod(created, ready, what="Ready")
    began = time.monotonic()
    harness.admin.pods.delete("polite", ns)
    harness.wait_gone(running, timeout=30)
    assert time.monotonic() - began < 15, "a container that exits on SIGTERM is not waited for"
    assert harness.podman.runtime.list_containers(running.metadata.uid) == []  # type: ignore[union-attr]
    assert harness.podman.runtime.pod_sandbox_status(running.metadata.uid) is None  # type: ignore[union-attr]

    stubborn = harness.pod("stubborn", ns, containers=[
        container("c", ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"])])
    stubborn.spec.termination_grace_period_seconds = 2
    created = harness.create(stubborn)
    harness.wait_pod(created, ready, what="Ready")
    began = time.monotonic()
    harness.admin.pods.delete("stubborn", ns)
    harness.wait_gone(created, timeout=30)
    assert 1.5 <= time.monotonic() - began < 15, "SIGKILL after the grace period"
    assert "Killing" in {e.reason for e in harness.events(created)}


def test_liveness_and_startup_probes(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    live = pod_pb2.Probe(period_seconds=1, failure_threshold=2, timeout_seconds=2)
    live.exec.command.extend(["test", "-f", "/tmp/healthy"])
    startup = pod_pb2.Probe(period_seconds=1, failure_threshold=30, timeout_seconds=2)
    startup.exec.command.extend(["test", "-f", "/tmp/started"])
    c = container("app", ["sh", "-c", "touch /tmp/healthy; sleep 2; touch /tmp/started; "
                          "trap 'exit 0' TERM; while true; do sleep 0.2; done"],
                  liveness_probe=live, startup_probe=startup)
    created = harness.create(harness.pod("probed", ns, containers=[c]))
    early = harness.wait_pod(created, lambda p: p.status.phase == "Running", what="Running")
    assert not ready(early) or container_state(early, "app").started
    started = harness.wait_pod(created, ready, what="Ready after startup")
    assert container_state(started, "app").started
    _exec(harness, started, "app", ["rm", "/tmp/healthy"])
    restarted = harness.wait_pod(
        created, lambda p: container_state(p, "app").restart_count >= 1, what="liveness kill")
    assert container_state(restarted, "app").restart_count >= 1
    assert "Unhealthy" in {e.reason for e in harness.events(created)}


def test_agent_restart_adopts_running_containers(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    created = harness.create(harness.pod("adopted", ns))
    running = harness.wait_pod(created, ready, what="Ready")
    state = container_state(running, "main")
    inspect = harness.podman.podman("inspect", "-f", "{{.State.StartedAt}}",  # type: ignore[union-attr]
                                    state.container_id.removeprefix("podman://"))
    harness.stop_agent("w1")
    # while the agent is away: a pod deleted for good leaves an orphan behind
    orphan = harness.create(harness.pod("orphan", ns))
    harness.restart_agent("w1")
    harness.wait_pod(orphan, ready, what="orphan Ready")
    orphan_uid = harness.get_pod(orphan).metadata.uid
    harness.stop_agent("w1")
    harness.admin.pods.delete("orphan", ns, grace_period_seconds=0)
    new_agent = harness.restart_agent("w1")
    assert new_agent.synced.wait(30)
    deadline = time.monotonic() + 30
    rt = harness.podman.runtime  # type: ignore[union-attr]
    while rt.list_containers(orphan_uid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rt.list_containers(orphan_uid) == [], "containers no pod owns are removed"
    after = harness.wait_pod(created, ready, what="still Ready")
    again = container_state(after, "main")
    assert again.container_id == state.container_id and again.restart_count == 0
    assert harness.podman.podman("inspect", "-f", "{{.State.StartedAt}}",  # type: ignore[union-attr]
                                 state.container_id.removeprefix("podman://")
                                 ).stdout == inspect.stdout


def test_statefulset_pods_fenced_when_masters_unreachable(harness: AgentHarness) -> None:
    """Uses node w2 with its own agent; kills every master, then brings them back."""
    agent = harness.start_agent("w2", fencing_timeout_seconds=3.0)
    ns = harness.namespace()
    sts = apps_pb2.StatefulSet(api_version="apps/v1", kind="StatefulSet")
    sts.metadata.name, sts.metadata.namespace = "db", ns
    sts.spec.replicas = 1
    sts.spec.service_name = "db"
    sts.spec.selector.match_labels["app"] = "db"
    template = sts.spec.template
    template.metadata.labels["app"] = "db"
    template.spec.node_selector["kubernetes.io/hostname"] = "w2"
    template.spec.termination_grace_period_seconds = 2
    template.spec.containers.append(container("main", ["sleep", "3600"]))
    harness.create(sts)
    sts_pod = harness.pod("db-0", ns, node="w2")  # made by the StatefulSet controller
    plain = harness.pod("web", ns, node="w2")
    plain_pod = harness.create(plain)
    sts_running = harness.wait_pod(sts_pod, ready, what="sts Ready")
    harness.wait_pod(plain_pod, ready, what="plain Ready")
    sts_uid = sts_running.metadata.uid
    plain_uid = harness.get_pod(plain_pod).metadata.uid
    rt = harness.podman.runtime  # type: ignore[union-attr]

    def running(uid: str) -> bool:
        return any(c.state.value == "running" for c in rt.list_containers(uid))

    for index in range(3):
        harness.cluster.kill(index)
    try:
        deadline = time.monotonic() + 30
        while running(sts_uid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running(sts_uid), "the StatefulSet pod is stopped by fencing"
        assert agent.fenced()
        assert running(plain_uid), "ordinary pods keep running"
    finally:
        harness.cluster.start()  # all three at once: none serves before a quorum is back
    deadline = time.monotonic() + 60
    while agent.fenced() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not agent.fenced()
    harness.stop_agent("w2")


def test_logs_and_exec_over_node_agent_service(harness: AgentHarness, agent) -> None:
    agent = harness.agents["w1"]  # the current one (other tests restart it)
    ns = harness.namespace()
    created = harness.create(harness.pod("talker", ns, containers=[container(
        "talk", ["sh", "-c", "echo line-one; echo line-two; trap 'exit 0' TERM; "
                 "while true; do sleep 0.2; done"])]))
    running = harness.wait_pod(created, ready, what="Ready")
    stub = harness.node_agent_stub(agent)
    target = node_agent_pb2.ContainerRef(namespace=ns, pod="talker")
    deadline = time.monotonic() + 10
    text = b""
    while b"line-two" not in text and time.monotonic() < deadline:
        text = b"".join(c.data for c in stub.Logs(node_agent_pb2.LogsRequest(target=target),
                                                   timeout=10))
        time.sleep(0.2)
    assert text == b"line-one\nline-two\n"
    tail = b"".join(c.data for c in stub.Logs(
        node_agent_pb2.LogsRequest(target=target, tail_lines=1), timeout=10))
    assert tail == b"line-two\n"

    def exec_messages():
        yield node_agent_pb2.ExecInput(start=node_agent_pb2.ExecStart(
            target=target, command=["sh", "-c", "cat; echo err >&2; exit 4"], stdin=True))
        yield node_agent_pb2.ExecInput(stdin=b"from stdin\n")
        yield node_agent_pb2.ExecInput(stdin_eof=True)

    out, err, code = b"", b"", None
    for message in stub.Exec(exec_messages(), timeout=20):
        if message.HasField("exit_code"):
            code = message.exit_code
        elif message.stream == "stderr":
            err += message.data
        else:
            out += message.data
    assert (out, err, code) == (b"from stdin\n", b"err\n", 4)

    with pytest.raises(grpc.RpcError) as missing:
        list(stub.Logs(node_agent_pb2.LogsRequest(target=node_agent_pb2.ContainerRef(
            namespace=ns, pod="nope")), timeout=10))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as denied:
        list(harness.node_agent_stub(agent, admin=False).Logs(
            node_agent_pb2.LogsRequest(target=target), timeout=10))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # previous: after a restart, the earlier instance's log
    os.kill(host_pid(harness, container_state(running, "talk").container_id), signal.SIGKILL)
    harness.wait_pod(created, lambda p: container_state(p, "talk").restart_count == 1,
                     what="restart")
    previous = b"".join(c.data for c in stub.Logs(
        node_agent_pb2.LogsRequest(target=target, previous=True), timeout=10))
    assert previous == b"line-one\nline-two\n"


def test_persistent_volume_survives_the_pod_and_host_path_checks(harness: AgentHarness,
                                                                  agent) -> None:
    ns = harness.namespace()
    storage = harness.root / f"pv-{ns}"
    pv = storage_pb2.PersistentVolume(api_version="v1", kind="PersistentVolume")
    pv.metadata.name = f"pv-{ns}"
    pv.spec.capacity["storage"] = "1Gi"
    pv.spec.access_modes.append("ReadWriteOnce")
    pv.spec.local.path = str(storage)
    pv.spec.node_affinity.required.node_selector_terms.add().match_expressions.add(
        key="kubernetes.io/hostname", operator="In", values=["w1"])
    harness.create(pv)
    pvc = storage_pb2.PersistentVolumeClaim(api_version="v1", kind="PersistentVolumeClaim")
    pvc.metadata.name, pvc.metadata.namespace = "data", ns
    pvc.spec.access_modes.append("ReadWriteOnce")
    pvc.spec.resources.requests["storage"] = "1Gi"
    pvc.spec.volume_name = pv.metadata.name
    harness.create(pvc)

    def with_claim(name: str, command: str) -> pod_pb2.Pod:
        pod = harness.pod(name, ns, restart_policy="Never", containers=[container(
            "c", ["sh", "-c", command],
            volume_mounts=[pod_pb2.VolumeMount(name="data", mount_path="/data"),
                           pod_pb2.VolumeMount(name="scratch", mount_path="/scratch")])])
        pod.spec.volumes.append(pod_pb2.Volume(
            name="data", persistent_volume_claim=pod_pb2.PersistentVolumeClaimVolumeSource(
                claim_name="data")))
        pod.spec.volumes.append(pod_pb2.Volume(
            name="scratch", empty_dir=pod_pb2.EmptyDirVolumeSource(medium="Memory")))
        return pod

    writer = harness.create(with_claim(
        "writer", "echo kept > /data/file && grep -q ' /scratch tmpfs' /proc/mounts"))
    done = harness.wait_pod(writer, lambda p: p.status.phase in ("Succeeded", "Failed"),
                            what="writer done")
    assert done.status.phase == "Succeeded", done.status
    scratch = agent.volumes.pod_dir(done.metadata.uid)
    harness.admin.pods.delete("writer", ns, grace_period_seconds=0)
    harness.wait_gone(writer)
    deadline = time.monotonic() + 20
    while scratch.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not scratch.exists(), "emptyDir goes with the pod"
    assert (storage / "file").read_text() == "kept\n", "the persistent volume stays"
    reader = harness.create(with_claim("reader", "cat /data/file"))
    read = harness.wait_pod(reader, lambda p: p.status.phase == "Succeeded", what="reader")
    logs = b"".join(harness.podman.runtime.logs(  # type: ignore[union-attr]
        container_state(read, "c").container_id.removeprefix("podman://")))
    assert logs == b"kept\n"

    missing = harness.pod("hostpath", ns, containers=[container(
        "c", ["true"], volume_mounts=[pod_pb2.VolumeMount(name="h", mount_path="/h")])])
    missing.spec.volumes.append(pod_pb2.Volume(name="h", host_path=pod_pb2.HostPathVolumeSource(
        path=str(harness.root / "no-such-dir"), type="Directory")))
    created = harness.create(missing)
    harness.wait_pod(created, lambda p: "FailedMount" in {e.reason for e in harness.events(p)},
                     what="FailedMount event")
    waiting = harness.get_pod(created)
    assert waiting.status.phase == "Pending"
    assert "not a directory" in container_state(waiting, "c").state.waiting.message


def test_agent_carries_on_when_the_leader_master_dies(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    leader = harness.cluster.leader_index()
    harness.cluster.kill(leader)
    try:
        harness.cluster.leader_index(timeout=60)
        pod = harness.create(harness.pod("after-failover", ns))
        running = harness.wait_pod(pod, ready, what="Ready after a leader change", timeout=90)
        assert running.status.phase == "Running"
        lease = harness.admin.resource("Lease").get("w1", "raftkube-node-lease").spec.renew_time
        time.sleep(2)
        assert harness.admin.resource("Lease").get("w1", "raftkube-node-lease").spec.renew_time \
            > lease, "the Lease is renewed through the surviving masters"
    finally:
        harness.cluster.restart(leader)


def _infra_pid(harness: AgentHarness, sandbox_id: str) -> int:
    """The host PID of the sandbox's infra process (0 while it is not running)."""
    infra = harness.podman.podman("pod", "inspect", "-f", "{{.InfraContainerID}}",  # type: ignore[union-attr]
                                  sandbox_id).stdout.decode().strip()
    return host_pid(harness, infra)


def test_dead_sandbox_is_restarted_with_its_containers(harness: AgentHarness, agent) -> None:
    ns = harness.namespace()
    pod = harness.pod("netless", ns)
    pod.spec.termination_grace_period_seconds = 1
    created = harness.create(pod)
    running = harness.wait_pod(created, ready, what="Ready")
    rt = harness.podman.runtime  # type: ignore[union-attr]
    sandbox = rt.pod_sandbox_status(running.metadata.uid)
    assert sandbox is not None
    old_pid = _infra_pid(harness, sandbox.sandbox_id)
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = rt.pod_sandbox_status(running.metadata.uid)
        # Its infra process replaced (right after the kill, the old one still looks ready).
        if current is not None and _infra_pid(harness, current.sandbox_id) not in (0, old_pid) \
                and current.ready and any(
                c.state.value == "running" for c in rt.list_containers(running.metadata.uid)):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the sandbox was not brought back with a running container")
    again = harness.wait_pod(created, lambda p: ready(p) and p.status.pod_ip == current.ip,
                             what="Ready with the new sandbox's IP")
    assert "Killing" in {e.reason for e in harness.events(again)}


def test_a_pod_marked_not_ready_by_the_masters_is_reported_ready_again(
        harness: AgentHarness, agent) -> None:
    """The masters mark the pods of a node that stopped renewing its Lease not ready; an
    agent that was only cut off, on renewing again, must put Ready back, or its pods stay
    out of their Services for good."""
    ns = harness.namespace()
    created = harness.create(harness.pod("cut-off", ns))
    running = harness.wait_pod(created, ready, what="Ready")
    marked = pod_pb2.Pod()
    marked.CopyFrom(running)
    for cond in marked.status.conditions:
        if cond.type == "Ready":
            cond.status, cond.reason = "False", "NodeNotReady"
    harness.admin.pods.update_status(marked)
    assert not ready(harness.get_pod(created)), "the masters' mark took"
    # at once (0.1 s here): not at the next 10 s resync, as before the masters marked pods
    again = harness.wait_pod(created, ready, timeout=5, what="Ready again within 5 s")
    assert container_state(again, "main").restart_count == 0


def _node_ready(harness: AgentHarness, name: str) -> str:
    return next(c.status for c in harness.admin.nodes.get(name).status.conditions
                if c.type == "Ready")


def test_a_node_marked_not_ready_is_reported_ready_once_its_lease_is_renewed_again(
        harness: AgentHarness) -> None:
    """After renewals were missed long enough for the masters to mark the Node NotReady
    (Ready=Unknown), the first renewal that succeeds writes Node status at once, instead
    of at the next nodeStatusInterval (60 s)."""
    second = harness.start_agent("w2")
    try:
        node = harness.admin.nodes.get("w2")
        for cond in node.status.conditions:
            if cond.type == "Ready":
                cond.status, cond.reason = "Unknown", "NodeStatusUnknown"
        harness.admin.nodes.update_status(node)
        # The heartbeat's own thread is stopped so that no renewal in flight can overwrite
        # the made-up gap (a race that failed this test once on a loaded machine); the
        # test then drives the agent's heartbeat one tick at a time.
        second.heartbeat.stop()
        second.heartbeat.last_renewal -= 10  # as if the renewals of 10 s had failed
        renewed_at = time.monotonic()
        second.heartbeat.tick()
        assert _node_ready(harness, "w2") == "True", "the agent did not put its Ready back"
        print(f"Node Ready again {time.monotonic() - renewed_at:.2f} s after the renewal")
    finally:
        harness.stop_agent("w2")
