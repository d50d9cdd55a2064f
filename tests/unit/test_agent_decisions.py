"""Pure decisions and status of the agent: plan_pod, pod_status, back-off, probes."""

from __future__ import annotations

from datetime import UTC, datetime

from raftkube.api.v1 import pod_pb2
from raftkube.workers.agent.decisions import (
    ActionKind,
    ContainerMemory,
    Observed,
    PodFacts,
    RestartPolicy,
    instances_to_prune,
    next_backoff,
    plan_pod,
)
from raftkube.workers.agent.pod_status import StatusInputs, pod_status, qos_class
from raftkube.workers.agent.probes import READINESS, ProbeCounter, ProbeTiming
from raftkube.workers.runtime.interface import ContainerState, ContainerStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def inst(name: str, attempt: int, state: ContainerState, exit_code: int | None = None,
         init: bool = False, oom: bool = False) -> ContainerStatus:
    return ContainerStatus(
        container_id=f"{name}-{attempt}", name=name, pod_uid="u", namespace="ns",
        pod_name="p", node="n", attempt=attempt, image="img", state=state,
        exit_code=exit_code, created_at=T0, started_at=T0 if state is not ContainerState.CREATED
        else None, finished_at=T0 if state is ContainerState.EXITED else None,
        oom_suspected=oom, stopped_by_runtime=False, init_container=init, labels={})


def facts(policy: RestartPolicy = RestartPolicy.ALWAYS, init: tuple[str, ...] = (),
          containers: tuple[str, ...] = ("a",), terminating: bool = False) -> PodFacts:
    return PodFacts(uid="u", init_containers=init, containers=containers,
                    restart_policy=policy, terminating=terminating, grace_seconds=5)


def kinds(plan) -> list[tuple[ActionKind, str, int]]:
    return [(a.kind, a.name, a.attempt) for a in plan.actions]


def test_new_pod_gets_a_sandbox_then_containers_in_order() -> None:
    f = facts(containers=("a", "b"))
    assert kinds(plan_pod(f, Observed(False, ()), 0)) == [(ActionKind.ENSURE_SANDBOX, "", 0)]
    assert kinds(plan_pod(f, Observed(True, ()), 0)) == [
        (ActionKind.START, "a", 0), (ActionKind.START, "b", 0)]


def test_init_containers_run_one_at_a_time_and_gate_the_rest() -> None:
    f = facts(init=("i1", "i2"), containers=("a",))
    assert kinds(plan_pod(f, Observed(True, ()), 0)) == [(ActionKind.START, "i1", 0)]
    running = Observed(True, (inst("i1", 0, ContainerState.RUNNING, init=True),))
    assert kinds(plan_pod(f, running, 0)) == []
    first_done = Observed(True, (inst("i1", 0, ContainerState.EXITED, 0, init=True),))
    assert kinds(plan_pod(f, first_done, 0)) == [(ActionKind.START, "i2", 0)]
    both = Observed(True, (inst("i1", 0, ContainerState.EXITED, 0, init=True),
                           inst("i2", 0, ContainerState.EXITED, 0, init=True)))
    assert kinds(plan_pod(f, both, 0)) == [(ActionKind.START, "a", 0)]


def test_failed_init_container_fails_the_pod_with_restart_never() -> None:
    f = facts(RestartPolicy.NEVER, init=("i1",))
    failed = Observed(True, (inst("i1", 0, ContainerState.EXITED, 1, init=True),))
    assert kinds(plan_pod(f, failed, 0)) == []
    status = pod_status(StatusInputs(pod=_pod(init=("i1",)), facts=f, observed=failed,
                                     waiting=()))
    assert status.phase == "Failed"
    retried = plan_pod(facts(RestartPolicy.ON_FAILURE, init=("i1",)), failed, 0)
    assert kinds(retried) == [(ActionKind.START, "i1", 1)]


def test_restart_policy_decides_restarts() -> None:
    ok = Observed(True, (inst("a", 0, ContainerState.EXITED, 0),))
    bad = Observed(True, (inst("a", 0, ContainerState.EXITED, 2),))
    assert kinds(plan_pod(facts(RestartPolicy.ALWAYS), ok, 0)) == [(ActionKind.START, "a", 1)]
    assert kinds(plan_pod(facts(RestartPolicy.ON_FAILURE), ok, 0)) == []
    assert kinds(plan_pod(facts(RestartPolicy.ON_FAILURE), bad, 0)) == [
        (ActionKind.START, "a", 1)]
    assert kinds(plan_pod(facts(RestartPolicy.NEVER), bad, 0)) == []


def test_back_off_waits_with_crash_loop_reason() -> None:
    mem = {"a": ContainerMemory(backoff_seconds=20, next_try=100.0)}
    observed = Observed(True, (inst("a", 3, ContainerState.EXITED, 1),), mem)
    plan = plan_pod(facts(), observed, 90.0)
    assert plan.actions == ()
    assert [(w.name, w.reason) for w in plan.waiting] == [("a", "CrashLoopBackOff")]
    assert "back-off 20s" in plan.waiting[0].message and plan.wake_at == 100.0
    assert kinds(plan_pod(facts(), observed, 100.0)) == [(ActionKind.START, "a", 4)]
    status = pod_status(StatusInputs(pod=_pod(), facts=facts(), observed=observed,
                                     waiting=plan.waiting))
    cs = status.container_statuses[0]
    assert cs.state.waiting.reason == "CrashLoopBackOff" and cs.restart_count == 3
    assert cs.last_state.terminated.exit_code == 1 and status.phase == "Running"


def test_back_off_doubles_to_the_cap() -> None:
    steps, current = [], 0.0
    for _ in range(7):
        current = next_backoff(current, 10, 300)
        steps.append(current)
    assert steps == [10, 20, 40, 80, 160, 300, 300]


def test_create_errors_wait_with_their_reason() -> None:
    mem = {"a": ContainerMemory(error_reason="ErrImageNeverPull", error_message="no image",
                                next_try=50.0, backoff_seconds=10)}
    plan = plan_pod(facts(), Observed(True, (), mem), 10.0)
    assert plan.actions == () and plan.waiting[0].reason == "ImagePullBackOff"
    mem2 = {"a": ContainerMemory(error_reason="CreateContainerConfigError",
                                 error_message="couldn't find key k", next_try=50.0)}
    plan2 = plan_pod(facts(), Observed(True, (), mem2), 10.0)
    assert plan2.waiting[0].reason == "CreateContainerConfigError"
    status = pod_status(StatusInputs(pod=_pod(), facts=facts(), observed=Observed(True, (), mem2),
                                     waiting=plan2.waiting))
    assert status.container_statuses[0].state.waiting.message == "couldn't find key k"
    assert status.phase == "Pending"


def test_never_started_instance_is_removed_and_retried() -> None:
    observed = Observed(True, (inst("a", 2, ContainerState.CREATED),))
    assert kinds(plan_pod(facts(), observed, 0)) == [
        (ActionKind.REMOVE, "a", 2), (ActionKind.START, "a", 2)]


def test_liveness_failure_kills_the_instance() -> None:
    mem = {"a": ContainerMemory(liveness_failed_id="a-0")}
    observed = Observed(True, (inst("a", 0, ContainerState.RUNNING),), mem)
    plan = plan_pod(facts(), observed, 0)
    assert [(a.kind, a.container_id, a.grace_seconds) for a in plan.actions] == [
        (ActionKind.KILL, "a-0", 5)]


def test_terminating_pod_stops_then_finishes() -> None:
    f = facts(terminating=True)
    running = Observed(True, (inst("a", 0, ContainerState.RUNNING),))
    plan = plan_pod(f, running, 0)
    assert kinds(plan) == [(ActionKind.STOP_POD, "", 0)] and plan.actions[0].grace_seconds == 5
    stopped = Observed(True, (inst("a", 0, ContainerState.EXITED, 143),))
    assert kinds(plan_pod(f, stopped, 0)) == [(ActionKind.FINISH_DELETION, "", 0)]


def test_finished_pod_does_not_get_a_new_sandbox() -> None:
    done = Observed(False, (inst("a", 0, ContainerState.EXITED, 0),))
    assert kinds(plan_pod(facts(RestartPolicy.NEVER), done, 0)) == []
    assert kinds(plan_pod(facts(RestartPolicy.ALWAYS), done, 0)) == [
        (ActionKind.ENSURE_SANDBOX, "", 0)]


def test_prune_keeps_the_newest_two_instances() -> None:
    instances = (*(inst("a", i, ContainerState.EXITED, 1) for i in range(4)),
                 inst("a", 4, ContainerState.RUNNING))
    assert [c.attempt for c in instances_to_prune(instances)] == [0, 1, 2]


def _pod(init: tuple[str, ...] = (), containers: tuple[str, ...] = ("a",)) -> pod_pb2.Pod:
    pod = pod_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "p", "ns", "u"
    for name in init:
        pod.spec.init_containers.add(name=name, image="img")
    for name in containers:
        pod.spec.containers.add(name=name, image="img")
    return pod


def test_status_phases_conditions_and_oom() -> None:
    pod = _pod(containers=("a", "b"))
    f = facts(RestartPolicy.NEVER, containers=("a", "b"))
    running = Observed(True, (inst("a", 0, ContainerState.RUNNING),
                              inst("b", 0, ContainerState.RUNNING)))
    status = pod_status(StatusInputs(pod=pod, facts=f, observed=running, waiting=(),
                                     pod_ip="10.0.0.5", host_ip="1.2.3.4",
                                     start_time="2026-01-01T00:00:00Z", now="t"))
    assert status.phase == "Running" and status.pod_ip == "10.0.0.5"
    assert [p.ip for p in status.pod_ips] == ["10.0.0.5"] and status.host_ip == "1.2.3.4"
    assert {c.type: c.status for c in status.conditions} == {
        "PodScheduled": "True", "Initialized": "True", "ContainersReady": "True",
        "Ready": "True"}
    assert all(c.ready and c.started for c in status.container_statuses)
    assert status.container_statuses[0].container_id == "podman://a-0"
    done = Observed(True, (inst("a", 0, ContainerState.EXITED, 0),
                           inst("b", 0, ContainerState.EXITED, 137, oom=True)))
    final = pod_status(StatusInputs(pod=pod, facts=f, observed=done, waiting=()))
    assert final.phase == "Failed"
    assert final.container_statuses[1].state.terminated.reason == "OOMKilled"
    assert final.container_statuses[0].state.terminated.reason == "Completed"
    assert {c.type: c.status for c in final.conditions}["Ready"] == "False"
    ok = Observed(True, (inst("a", 0, ContainerState.EXITED, 0),
                         inst("b", 0, ContainerState.EXITED, 0)))
    assert pod_status(StatusInputs(pod=pod, facts=f, observed=ok, waiting=())).phase == \
        "Succeeded"


def test_readiness_from_probe_view() -> None:
    from raftkube.workers.agent.pod_status import ProbeView
    pod = _pod()
    observed = Observed(True, (inst("a", 0, ContainerState.RUNNING),))
    status = pod_status(StatusInputs(pod=pod, facts=facts(), observed=observed, waiting=(),
                                     probes={"a-0": ProbeView(ready=False, started=True)}))
    assert not status.container_statuses[0].ready
    assert {c.type: c.status for c in status.conditions}["Ready"] == "False"


def test_qos_class() -> None:
    pod = _pod()
    assert qos_class(pod) == "BestEffort"
    pod.spec.containers[0].resources.limits.update({"cpu": "1", "memory": "1Gi"})
    assert qos_class(pod) == "Guaranteed"
    pod.spec.containers[0].resources.requests["cpu"] = "500m"
    assert qos_class(pod) == "Burstable"


def test_probe_counter_thresholds() -> None:
    timing = ProbeTiming(0, 1, 1, success_threshold=2, failure_threshold=3)
    counter = ProbeCounter(timing)
    assert not counter.record(True) and counter.result is None
    assert counter.record(True) and counter.result is True
    assert not counter.record(False) and not counter.record(False)
    assert counter.record(False) and counter.result is False
    probe = pod_pb2.Probe()
    defaults = ProbeTiming.of(probe, READINESS)
    assert (defaults.period, defaults.timeout, defaults.failure_threshold) == (10, 1, 3)


def test_active_deadline_stops_the_pod_and_fails_it() -> None:
    from raftkube.workers.agent.pod_spec import pod_facts
    pod = _pod()
    pod.spec.active_deadline_seconds = 30
    pod.status.start_time = "2026-01-01T00:00:00Z"
    start = T0.timestamp()
    assert not pod_facts(pod, now=start + 29).deadline_exceeded
    f = pod_facts(pod, now=start + 30)
    assert f.deadline_exceeded
    running = Observed(True, (inst("a", 0, ContainerState.RUNNING),))
    assert kinds(plan_pod(f, running, 0)) == [(ActionKind.STOP_POD, "", 0)]
    stopped = Observed(True, (inst("a", 0, ContainerState.EXITED, 143),))
    assert kinds(plan_pod(f, stopped, 0)) == [], "nothing restarts after the deadline"
    status = pod_status(StatusInputs(pod=pod, facts=f, observed=stopped, waiting=()))
    assert (status.phase, status.reason) == ("Failed", "DeadlineExceeded")


def test_dead_sandbox_under_running_containers_stops_them_first() -> None:
    running = Observed(False, (inst("a", 0, ContainerState.RUNNING),))
    assert kinds(plan_pod(facts(), running, 0)) == [(ActionKind.STOP_POD, "", 0)]
    stopped = Observed(False, (inst("a", 0, ContainerState.EXITED, 137),))
    assert kinds(plan_pod(facts(), stopped, 0)) == [(ActionKind.ENSURE_SANDBOX, "", 0)]
