"""UsageSampler (rates from two samples), the worker's metrics collector, `top`'s rows and
the worker config's usage settings, on the fake runtime and a fake /proc."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from raftkube.cli.kubectl.cmd_top import node_rows, pod_rows
from raftkube.client.usage import ContainerTop, NodeTop, PodTop
from raftkube.workers.agent.config import WorkerConfigError, parse_worker_config
from raftkube.workers.agent.metrics import AgentFacts, WorkerCollector, WorkerMetrics
from raftkube.workers.agent.usage import MachineReader, UsageSampler
from raftkube.workers.runtime.fake_runtime import FakeBehavior, FakeRuntime, FakeRuntimeConfig
from raftkube.workers.runtime.interface import (
    ContainerSpec,
    PodSandboxSpec,
    RuntimeUnavailableError,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_proc(root: Path, busy_ticks: int, available_kb: int) -> None:
    (root / "stat").write_text(f"cpu  {busy_ticks} 0 0 5000 7 0 0 0 0 0\ncpu0 1 2 3 4\n")
    (root / "meminfo").write_text(f"MemTotal:       1000000 kB\nMemFree:   10 kB\n"
                                  f"MemAvailable:   {available_kb} kB\n")


@pytest.fixture
def setup(tmp_path: Path):
    clock = Clock()
    fake = FakeRuntime(FakeRuntimeConfig(node="n1", clock=clock, sleep=lambda s: None))
    write_proc(tmp_path, 0, 600000)
    sampler = UsageSampler(fake, 10.0, MachineReader(tmp_path), clock=clock,
                           wall_clock=clock)
    return clock, fake, sampler, tmp_path


def run(fake: FakeRuntime, pod: str, name: str, behavior: FakeBehavior) -> str:
    spec = PodSandboxSpec(uid=f"uid-{pod}", namespace="ns", name=pod, node="n1")
    fake.prepare_pod_sandbox(spec)
    fake.set_behavior(name, behavior)
    container_id = fake.create_container(
        spec.uid, ContainerSpec(name=name, image="localhost/busybox:latest"), 0)
    fake.start_container(container_id)
    return container_id


def test_rates_need_two_samples_and_follow_cpu_time(setup) -> None:
    clock, fake, sampler, proc = setup
    run(fake, "web", "app", FakeBehavior(cpu_millicores=500, memory_bytes=64 << 20))
    run(fake, "db", "main", FakeBehavior(cpu_millicores=0, memory_bytes=1 << 20))
    assert sampler.sample_once() is None and sampler.latest() is None
    clock.now += 10
    ticks = 100 * 15  # 15 CPU-seconds over 10 s: 1.5 cores
    write_proc(proc, ticks, 400000)
    usage = sampler.sample_once()
    assert usage is not None and sampler.latest() == usage
    assert usage.window_seconds == 10 and usage.timestamp == clock.now
    assert usage.cpu_nanocores == 1_500_000_000
    assert usage.memory_bytes == (1000000 - 400000) * 1024
    by_pod = {(c.namespace, c.pod, c.container): c for c in usage.containers}
    assert by_pod[("ns", "web", "app")].cpu_nanocores == 500_000_000
    assert by_pod[("ns", "web", "app")].memory_bytes == 64 << 20
    assert by_pod[("ns", "db", "main")].cpu_nanocores == 0
    assert by_pod[("ns", "web", "app")].pod_uid == "uid-web"


def test_new_containers_wait_for_a_second_sample_and_gone_ones_leave(setup) -> None:
    clock, fake, sampler, _ = setup
    first = run(fake, "web", "app", FakeBehavior(cpu_millicores=100))
    sampler.sample_once()
    clock.now += 5
    run(fake, "late", "app", FakeBehavior(cpu_millicores=100))
    usage = sampler.sample_once()
    assert usage is not None and [c.pod for c in usage.containers] == ["web"]
    fake.stop_container(first, 0)
    clock.now += 5
    usage = sampler.sample_once()
    assert usage is not None and [c.pod for c in usage.containers] == ["late"]


def test_a_failed_sample_keeps_the_previous_figures(setup, monkeypatch) -> None:
    clock, fake, sampler, _ = setup
    run(fake, "web", "app", FakeBehavior(cpu_millicores=100))
    sampler.sample_once()
    clock.now += 10
    good = sampler.sample_once()

    def down() -> dict:
        raise RuntimeUnavailableError("podman service is down")

    monkeypatch.setattr(fake, "container_usage", down)
    clock.now += 10
    assert sampler.sample_once() is None
    assert sampler.latest() is good


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_seconds"):
        UsageSampler(FakeRuntime(FakeRuntimeConfig(node="n1")), 0)


def test_metrics_expose_node_container_and_agent_figures(setup) -> None:
    clock, fake, sampler, proc = setup
    run(fake, "web", "app", FakeBehavior(cpu_millicores=250, memory_bytes=2048))
    facts = AgentFacts(pods=1, lease_age_seconds=0.5, fenced=False)
    metrics = WorkerMetrics(WorkerCollector("n1", sampler.latest, lambda: facts))
    text = generate_latest(metrics.registry).decode()
    assert 'raftkube_agent_pods{node="n1"} 1.0' in text
    assert "raftkube_node_cpu_usage_cores" not in text, "no figures before two samples"
    sampler.sample_once()
    clock.now += 4
    write_proc(proc, 200, 600000)
    sampler.sample_once()
    text = generate_latest(metrics.registry).decode()
    assert 'raftkube_container_cpu_usage_cores{container="app",namespace="ns",pod="web"} 0.25' \
        in text
    assert ('raftkube_container_memory_usage_bytes{container="app",namespace="ns",pod="web"} '
            '2048.0') in text
    assert 'raftkube_node_cpu_usage_cores{node="n1"} 0.5' in text
    assert 'raftkube_agent_fenced{node="n1"} 0.0' in text


def test_top_rows_look_like_kubectl() -> None:
    rows = node_rows([NodeTop("w1", 250, 300 << 20, 2000, 1 << 30),
                      NodeTop("w2", error="agent down")])
    assert rows == [["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"],
                    ["w1", "250m", "12%", "300Mi", "29%"],
                    ["w2", "<unknown>", "<unknown>", "<unknown>", "<unknown>"]]
    pods = [PodTop("ns", "web", "w1", (ContainerTop("app", 5, 3 << 20),
                                       ContainerTop("side", 1, 1 << 20)))]
    assert pod_rows(pods, False, False) == [["NAME", "CPU(cores)", "MEMORY(bytes)"],
                                            ["web", "6m", "4Mi"]]
    assert pod_rows(pods, True, True) == [
        ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
        ["ns", "web", "app", "5m", "3Mi"], ["ns", "web", "side", "1m", "1Mi"]]


@pytest.mark.parametrize(("doc", "message"), [
    ({"metricsAddress": "nonsense"}, "metricsAddress: 'nonsense' is not HOST:PORT"),
    ({"metricsAddress": "127.0.0.1:99999"}, "metricsAddress: '127.0.0.1:99999'"),
    ({"statsIntervalSeconds": 0}, "statsIntervalSeconds: must be greater than 0"),
])
def test_worker_config_checks_usage_settings(doc: dict, message: str) -> None:
    base = {"nodeName": "w1", "clientConfig": "/c.yaml"}
    with pytest.raises(WorkerConfigError, match=message):
        parse_worker_config({**base, **doc}, "w.yaml", Path("/"))
    config = parse_worker_config({**base, "metricsAddress": "0.0.0.0:9102",
                                  "statsIntervalSeconds": 2}, "w.yaml", Path("/"))
    assert (config.metrics_address, config.stats_interval_seconds) == ("0.0.0.0:9102", 2.0)
