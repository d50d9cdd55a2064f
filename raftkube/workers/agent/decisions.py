"""Pure decisions of a pod worker: from what the pod asks, what the runtime shows and the
back-off/probe state, to the next actions. No I/O, no clock: `now` is an argument.

    plan_pod(PodFacts, Observed, now) -> Plan(actions, waiting)

The pod worker (pod_worker.py) executes the actions, records their outcome in the
`ContainerMemory` of each container, observes again and plans again, until the plan is
empty. Kubernetes semantics kept here:

- init containers run one at a time in spec order, each to exit 0; a failed one is retried
  (restartPolicy Always/OnFailure) with back-off or fails the pod (Never);
- regular containers start in spec order once every init container has succeeded;
- an exited container is restarted per restartPolicy (Always: always; OnFailure: on a
  non-zero exit; Never: never), the first restart at once, then after a back-off that
  starts at `initial` seconds and doubles up to `maximum` (CrashLoopBackOff meanwhile);
- a container whose liveness probe failed is killed and then restarted the same way;
- a pod being deleted (or fenced) has all its containers stopped with its grace period;
- a sandbox that died under running containers: they are stopped, a new sandbox made.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from raftkube.workers.runtime.interface import ContainerState, ContainerStatus


class RestartPolicy(enum.Enum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """"" means Always (the API defaults it)."""
        return cls(text) if text else cls.ALWAYS


@dataclass(frozen=True)
class PodFacts:
    """What the plan needs from the pod object.

    init_containers / containers: container names in spec order.
    restart_policy: the pod's restartPolicy.
    terminating: deletionTimestamp is set, or the agent fences the pod: stop everything.
    grace_seconds: how long containers get between the stop signal and SIGKILL.
    deadline_exceeded: activeDeadlineSeconds has passed since the pod started: its
        containers are stopped and it fails (DeadlineExceeded); nothing is restarted.
    """

    uid: str
    init_containers: tuple[str, ...]
    containers: tuple[str, ...]
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    terminating: bool = False
    grace_seconds: float = 30.0
    deadline_exceeded: bool = False


@dataclass
class ContainerMemory:
    """What the worker remembers about one container of a pod across plans.

    error_reason / error_message: why the last create/start failed (ErrImageNeverPull,
        CreateContainerConfigError, CreateContainerError, RunContainerError), "" if not.
    next_try: monotonic time before which no new instance is created (back-off).
    backoff_seconds: the current back-off step (0 = the next restart is immediate).
    liveness_failed_id: container id whose liveness probe failed (kill it).
    """

    error_reason: str = ""
    error_message: str = ""
    next_try: float = 0.0
    backoff_seconds: float = 0.0
    liveness_failed_id: str = ""


@dataclass(frozen=True)
class Observed:
    """What the runtime shows of the pod, plus the worker's memory.

    sandbox_ready: the sandbox exists and runs.
    instances: every container instance of the pod (all attempts).
    memory: ContainerMemory by container name (absent = fresh).
    """

    sandbox_ready: bool
    instances: tuple[ContainerStatus, ...]
    memory: dict[str, ContainerMemory] = field(default_factory=dict)

    def latest(self, name: str) -> ContainerStatus | None:
        found = [c for c in self.instances if c.name == name]
        return max(found, key=lambda c: c.attempt) if found else None

    def mem(self, name: str) -> ContainerMemory:
        return self.memory.get(name) or ContainerMemory()


class ActionKind(enum.Enum):
    ENSURE_SANDBOX = "ensure-sandbox"
    START = "start"                # create + start instance `attempt` of `name`
    REMOVE = "remove"              # remove a container instance that never started
    KILL = "kill"                  # stop a running instance (grace, then SIGKILL)
    STOP_POD = "stop-pod"          # stop every running container of the pod
    FINISH_DELETION = "finish-deletion"  # everything stopped: remove sandbox, delete object


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    name: str = ""
    attempt: int = 0
    container_id: str = ""
    init: bool = False
    reason: str = ""
    grace_seconds: float = 0.0


@dataclass(frozen=True)
class Waiting:
    """A container that waits for its back-off: shown as Waiting(reason) until `until`."""

    name: str
    reason: str
    message: str
    until: float


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    waiting: tuple[Waiting, ...] = ()

    @property
    def wake_at(self) -> float | None:
        """The earliest back-off expiry: plan again then."""
        return min((w.until for w in self.waiting), default=None)


def should_restart(policy: RestartPolicy, exit_code: int | None) -> bool:
    if policy is RestartPolicy.ALWAYS:
        return True
    if policy is RestartPolicy.ON_FAILURE:
        return exit_code != 0
    return False


def next_backoff(current: float, initial: float, maximum: float) -> float:
    """The back-off after one more restart: 0 -> initial -> 2*initial ... capped."""
    return min(maximum, initial if current <= 0 else current * 2)


def init_outcome(facts: PodFacts, observed: Observed) -> str:
    """"done" (all init containers exited 0), "failed" (one failed and will not be
    retried) or "running" (still in progress)."""
    for name in facts.init_containers:
        latest = observed.latest(name)
        if latest is None or latest.state is not ContainerState.EXITED:
            return "running"
        if latest.exit_code != 0:
            return "running" if facts.restart_policy is not RestartPolicy.NEVER else "failed"
    return "done"


def _restart_or_wait(name: str, latest: ContainerStatus, mem: ContainerMemory, now: float,
                     init: bool, reason: str) -> tuple[Action | None, Waiting | None]:
    if now < mem.next_try:
        message = (f"back-off {mem.backoff_seconds:g}s restarting failed container={name} "
                   f"pod={latest.pod_name}_{latest.namespace}({latest.pod_uid})")
        return None, Waiting(name, reason, message, mem.next_try)
    return Action(ActionKind.START, name, latest.attempt + 1, init=init), None


def _fresh_or_error(name: str, attempt: int, mem: ContainerMemory, now: float,
                    init: bool) -> tuple[Action | None, Waiting | None]:
    """A container with no started instance: start it, unless its last try failed and its
    back-off has not expired."""
    if mem.error_reason and now < mem.next_try:
        reason = "ImagePullBackOff" if mem.error_reason == "ErrImageNeverPull" \
            else mem.error_reason
        return None, Waiting(name, reason, mem.error_message, mem.next_try)
    return Action(ActionKind.START, name, attempt, init=init), None


def _container_step(name: str, facts: PodFacts, observed: Observed, now: float,
                    init: bool) -> tuple[list[Action], Waiting | None, bool]:
    """(actions, waiting, done) for one container; done: an init container finished OK."""
    latest = observed.latest(name)
    mem = observed.mem(name)
    if latest is None:
        action, waiting = _fresh_or_error(name, 0, mem, now, init)
        return ([action] if action else []), waiting, False
    if latest.state is ContainerState.CREATED:
        # created but never started (its start failed): remove it, then try again.
        actions = [Action(ActionKind.REMOVE, name, latest.attempt, latest.container_id)]
        action, waiting = _fresh_or_error(name, latest.attempt, mem, now, init)
        return actions + ([action] if action else []), waiting, False
    if latest.state is ContainerState.RUNNING:
        if not init and mem.liveness_failed_id == latest.container_id:
            return [Action(ActionKind.KILL, name, latest.attempt, latest.container_id,
                           reason="liveness", grace_seconds=facts.grace_seconds)], None, False
        return [], None, False
    # EXITED
    if init and latest.exit_code == 0:
        return [], None, True
    if not should_restart(facts.restart_policy, latest.exit_code):
        return [], None, False
    action, waiting = _restart_or_wait(name, latest, mem, now, init, "CrashLoopBackOff")
    return ([action] if action else []), waiting, False


def plan_pod(facts: PodFacts, observed: Observed, now: float) -> Plan:
    """The next actions for one pod; empty when it is where it should be."""
    if facts.terminating:
        running = [c for c in observed.instances if c.state is ContainerState.RUNNING]
        if running:
            return Plan((Action(ActionKind.STOP_POD, grace_seconds=facts.grace_seconds),))
        return Plan((Action(ActionKind.FINISH_DELETION),))
    if facts.deadline_exceeded:
        if any(c.state is ContainerState.RUNNING for c in observed.instances):
            return Plan((Action(ActionKind.STOP_POD, grace_seconds=facts.grace_seconds),))
        return Plan()
    if not observed.sandbox_ready:
        if _pod_finished(facts, observed):
            return Plan()
        if any(c.state is ContainerState.RUNNING for c in observed.instances):
            # the sandbox died under running containers (their network is gone): stop
            # them, then a new sandbox; they restart per restartPolicy
            return Plan((Action(ActionKind.STOP_POD, grace_seconds=facts.grace_seconds),))
        return Plan((Action(ActionKind.ENSURE_SANDBOX),))
    actions: list[Action] = []
    waiting: list[Waiting] = []
    for name in facts.init_containers:
        step, wait, done = _container_step(name, facts, observed, now, init=True)
        actions.extend(step)
        if wait:
            waiting.append(wait)
        if not done:
            return Plan(tuple(actions), tuple(waiting))
    for name in facts.containers:
        step, wait, _ = _container_step(name, facts, observed, now, init=False)
        actions.extend(step)
        if wait:
            waiting.append(wait)
    return Plan(tuple(actions), tuple(waiting))


def _pod_finished(facts: PodFacts, observed: Observed) -> bool:
    """Every container exited and none will be restarted (a Succeeded/Failed pod)."""
    if init_outcome(facts, observed) == "failed":
        return True
    if not facts.containers:
        return False
    for name in facts.containers:
        latest = observed.latest(name)
        if latest is None or latest.state is not ContainerState.EXITED:
            return False
        if should_restart(facts.restart_policy, latest.exit_code):
            return False
    return True


def instances_to_prune(instances: tuple[ContainerStatus, ...], keep: int = 2,
                       ) -> list[ContainerStatus]:
    """Old exited instances beyond the newest `keep` per container (logs --previous needs
    the one before the newest)."""
    by_name: dict[str, list[ContainerStatus]] = {}
    for c in instances:
        by_name.setdefault(c.name, []).append(c)
    prune = []
    for group in by_name.values():
        group.sort(key=lambda c: c.attempt)
        prune.extend(c for c in group[:-keep] if c.state is ContainerState.EXITED)
    return prune
