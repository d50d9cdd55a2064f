"""The scheduler's decision, pure: which node each pending pod goes to, or why none fits.

```
 nodes + bound pods ──> NodeState per node (free cpu/memory/pods, ports, replicas per owner)
 pending pods ──> PodNeeds ──> for each pod (oldest first):
        filters on nodes from a rotating start until `nodes_to_score` feasible ones are found
          (fixed filters answered once per node for all pods of the batch with the same
           selector/affinity/tolerations/volume terms; capacity filters per pod)
        scores (resources, spread, image, preferred affinity) ──> best node
        the node's state takes the pod (so the next pod in the batch sees it)
 ──> SchedulePlan(bindings, failures with "0/N nodes are available: ..." messages)
```

Nothing here writes or reads the clock; the same inputs give the same plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from google.protobuf.message import Message

from raftkube.api.v1 import core_pb2, pod_pb2, storage_pb2
from raftkube.masters.controllers.objects_util import (
    condition,
    controller_of,
    cpu_millis,
    pod_requests,
    quantity_units,
)

UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
SCORING_STRATEGIES = ("LeastAllocated", "MostAllocated")

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NOT_READY = "node(s) were not ready"
REASON_CPU = "Insufficient cpu"
REASON_MEMORY = "Insufficient memory"
REASON_PODS = "Too many pods"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_VOLUME = "node(s) had volume node affinity conflict"


@dataclass(frozen=True)
class SchedulerConfig:
    """Scheduler knobs (MasterConfig.controllers.scheduler).

    scoring: LeastAllocated (spread load) or MostAllocated (pack nodes).
    nodes_to_score: feasible nodes looked at per pod before choosing (Kubernetes'
      percentageOfNodesToScore idea: enough for a good choice, bounded cost per pod).
    batch_size: pods decided per cycle.
    bind_chunk: bindings per Raft transaction (each costs a compare and a put; the
      store takes at most 256 operations per transaction).
    retry_unschedulable_seconds: an unschedulable pod is retried at least this often
      even when nothing in the cluster changed.
    resource_weight / spread_weight / image_weight / affinity_weight: score weights.
    """

    scoring: str = "LeastAllocated"
    nodes_to_score: int = 50
    batch_size: int = 2000
    bind_chunk: int = 128
    retry_unschedulable_seconds: float = 10.0
    resource_weight: int = 1
    spread_weight: int = 2
    image_weight: int = 1
    affinity_weight: int = 1

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> SchedulerConfig:
        """Build from the `scheduler` mapping of the controllers options; ValueError
        names an unknown field or a bad scoring strategy."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"controllers.scheduler.{unknown[0]}: unknown field "
                             f"(known: {', '.join(sorted(known))})")
        config = cls(**options)  # type: ignore[arg-type]
        if config.scoring not in SCORING_STRATEGIES:
            raise ValueError(f"controllers.scheduler.scoring: {config.scoring!r} is not one "
                             f"of {', '.join(SCORING_STRATEGIES)}")
        return config


@dataclass
class NodeState:
    """A node as the scheduler sees it during one batch (mutated as pods are placed)."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[core_pb2.Taint, ...]
    ready: bool
    unschedulable: bool
    cpu: int
    memory: int
    max_pods: int
    images: frozenset[str]
    used_cpu: int = 0
    used_memory: int = 0
    pods: int = 0
    ports: set[tuple[str, int]] = field(default_factory=set)
    owners: Counter = field(default_factory=Counter)

    def take(self, needs: PodNeeds) -> None:
        self.used_cpu += needs.cpu
        self.used_memory += needs.memory
        self.pods += 1
        self.ports.update(needs.ports)
        if needs.owner:
            self.owners[needs.owner] += 1


@dataclass(frozen=True)
class PodNeeds:
    """What a pod asks of a node, extracted once per pod."""

    key: tuple[str, str]
    cpu: int
    memory: int
    ports: frozenset[tuple[str, int]]
    node_selector: Mapping[str, str]
    required_terms: tuple[pod_pb2.NodeSelectorTerm, ...]
    preferred_terms: tuple[pod_pb2.PreferredSchedulingTerm, ...]
    tolerations: tuple[pod_pb2.Toleration, ...]
    owner: str
    images: frozenset[str]
    volume_terms: tuple[tuple[pod_pb2.NodeSelectorTerm, ...], ...]
    volume_error: str = ""


@dataclass(frozen=True)
class SchedulePlan:
    """bindings: (namespace, name, node); failures: {(namespace, name): message}."""

    bindings: tuple[tuple[str, str, str], ...]
    failures: Mapping[tuple[str, str], str]


def node_state(node: core_pb2.Node) -> NodeState:
    alloc = node.status.allocatable or node.status.capacity
    ready_cond = condition(node.status.conditions, "Ready")
    images = frozenset(name for image in node.status.images for name in image.names)
    return NodeState(
        name=node.metadata.name, labels=dict(node.metadata.labels),
        taints=tuple(node.spec.taints),
        ready=ready_cond is not None and ready_cond.status == "True",
        unschedulable=node.spec.unschedulable,
        cpu=cpu_millis(alloc.get("cpu", "0")), memory=quantity_units(alloc.get("memory", "0")),
        max_pods=quantity_units(alloc.get("pods", "110")), images=images)


NodeStateMemo = dict[str, tuple[str, NodeState]]
"""node name -> (resourceVersion, state with nothing placed): lets `build_node_states`
skip re-reading nodes that did not change since the last batch."""


def unplaced_state(node: core_pb2.Node, memo: NodeStateMemo | None) -> NodeState:
    """`node`'s state with nothing placed on it (parsed once per resourceVersion when a
    `memo` is kept)."""
    if memo is None:
        return node_state(node)
    name, version = node.metadata.name, node.metadata.resource_version
    known = memo.get(name)
    if known is None or known[0] != version or not version:
        known = (version, node_state(node))
        memo[name] = known
    return replace(known[1], ports=set(), owners=Counter())


def build_node_states(nodes: Iterable[core_pb2.Node],
                      placed: Iterable[tuple[str, PodNeeds]],
                      memo: NodeStateMemo | None = None) -> dict[str, NodeState]:
    """Node states with the resources of the (node name, pod needs) already placed there
    (bound pods, including ones still terminating, and pods assumed bound). With `memo`
    (kept by the caller across batches) unchanged nodes are not parsed again; entries of
    nodes not in `nodes` are dropped from it."""
    states = {n.metadata.name: unplaced_state(n, memo) for n in nodes}
    if memo is not None:
        for name in [name for name in memo if name not in states]:
            del memo[name]
    for node_name, needs in placed:
        state = states.get(node_name)
        if state is not None:
            state.take(needs)
    return states


def pod_owner(pod: pod_pb2.Pod) -> str:
    ref = controller_of(pod)
    return ref.uid if ref is not None else ""


def pod_needs(pod: pod_pb2.Pod, claims: Mapping[tuple[str, str], storage_pb2.PersistentVolumeClaim],
              volumes: Mapping[str, storage_pb2.PersistentVolume]) -> PodNeeds:
    """Extract a pod's requirements; PVC/PV lookups resolve volume topology."""
    spec = pod.spec
    cpu, memory = pod_requests(spec)
    ports = frozenset((p.protocol or "TCP", p.host_port) for c in spec.containers
                      for p in c.ports if p.host_port)
    affinity = spec.affinity.node_affinity
    required = tuple(affinity.required_during_scheduling_ignored_during_execution
                     .node_selector_terms)
    volume_terms: list[tuple[pod_pb2.NodeSelectorTerm, ...]] = []
    volume_error = ""
    for volume in spec.volumes:
        if not volume.HasField("persistent_volume_claim"):
            continue
        claim_name = volume.persistent_volume_claim.claim_name
        if not claims and not volumes:
            continue  # bound pods: topology already decided
        claim = claims.get((pod.metadata.namespace, claim_name))
        if claim is None:
            volume_error = f'persistentvolumeclaim "{claim_name}" not found'
            continue
        if claim.metadata.deletion_timestamp:
            volume_error = f'persistentvolumeclaim "{claim_name}" is being deleted'
            continue
        if claim.spec.volume_name:
            pv = volumes.get(claim.spec.volume_name)
            if pv is None:
                volume_error = (f'persistentvolume "{claim.spec.volume_name}" of claim '
                                f'"{claim_name}" not found')
                continue
            terms = tuple(pv.spec.node_affinity.required.node_selector_terms)
            if terms:
                volume_terms.append(terms)
    return PodNeeds(
        key=(pod.metadata.namespace, pod.metadata.name), cpu=cpu, memory=memory, ports=ports,
        node_selector=dict(spec.node_selector), required_terms=required,
        preferred_terms=tuple(affinity.preferred_during_scheduling_ignored_during_execution),
        tolerations=tuple(spec.tolerations), owner=pod_owner(pod),
        images=frozenset(c.image for c in spec.containers),
        volume_terms=tuple(volume_terms), volume_error=volume_error)


# -- matching -----------------------------------------------------------------------------
def requirement_matches(req: pod_pb2.NodeSelectorRequirement, labels: Mapping[str, str]) -> bool:
    op, values = req.operator, req.values
    present = req.key in labels
    value = labels.get(req.key, "")
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(values) == 1:
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: pod_pb2.NodeSelectorTerm, node: NodeState) -> bool:
    """All expressions of a term hold (an empty term matches nothing, as in Kubernetes)."""
    if not term.match_expressions and not term.match_fields:
        return False
    fields = {"metadata.name": node.name}
    return (all(requirement_matches(r, node.labels) for r in term.match_expressions)
            and all(requirement_matches(r, fields) for r in term.match_fields))


def terms_match(terms: Sequence[pod_pb2.NodeSelectorTerm], node: NodeState) -> bool:
    """Terms are ORed."""
    return any(term_matches(t, node) for t in terms)


def tolerates(toleration: pod_pb2.Toleration, taint: core_pb2.Taint) -> bool:
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.operator == "Exists":
        return not toleration.key or toleration.key == taint.key
    return toleration.key == taint.key and toleration.value == taint.value


def untolerated_taint(needs: PodNeeds, node: NodeState,
                      effects: tuple[str, ...] = ("NoSchedule", "NoExecute")
                      ) -> core_pb2.Taint | None:
    for taint in node.taints:
        if taint.effect in effects and not any(tolerates(t, taint) for t in needs.tolerations):
            return taint
    return None


def fixed_filter_reason(needs: PodNeeds, node: NodeState) -> str:
    """The filters whose answer placing pods cannot change (cordon, readiness, selectors,
    affinity, taints, volume topology): the first failing one's reason in Kubernetes'
    words, '' when all pass. A node is filtered by these, then by
    `capacity_filter_reason`."""
    if node.unschedulable:
        return REASON_UNSCHEDULABLE
    if not node.ready:
        return REASON_NOT_READY
    for key, value in needs.node_selector.items():
        if node.labels.get(key) != value:
            return REASON_AFFINITY
    if needs.required_terms and not terms_match(needs.required_terms, node):
        return REASON_AFFINITY
    taint = untolerated_taint(needs, node)
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"
    for terms in needs.volume_terms:
        if not terms_match(terms, node):
            return REASON_VOLUME
    return ""


def capacity_filter_reason(needs: PodNeeds, node: NodeState) -> str:
    """The filters on what pods placed so far use (pod count, CPU, memory, host ports)."""
    if node.pods + 1 > node.max_pods:
        return REASON_PODS
    if needs.cpu and node.used_cpu + needs.cpu > node.cpu:
        return REASON_CPU
    if needs.memory and node.used_memory + needs.memory > node.memory:
        return REASON_MEMORY
    if needs.ports and not needs.ports.isdisjoint(node.ports):
        return REASON_PORTS
    return ""


def fixed_filter_key(needs: PodNeeds) -> Hashable:
    """Pods with equal keys get the same `fixed_filter_reason` on every node: the key
    covers node selector, required affinity, tolerations and volume topology."""
    if not (needs.node_selector or needs.required_terms or needs.tolerations
            or needs.volume_terms):
        return ()
    return (tuple(sorted(needs.node_selector.items())),
            tuple(_wire(t) for t in needs.required_terms),
            tuple(_wire(t) for t in needs.tolerations),
            tuple(tuple(_wire(t) for t in terms) for terms in needs.volume_terms))


def _wire(message: Message) -> bytes:
    return message.SerializeToString(deterministic=True)


def score_nodes(needs: PodNeeds, candidates: Sequence[NodeState], config: SchedulerConfig,
                ) -> list[float]:
    """Weighted score (higher is better) of each feasible candidate."""
    owner = needs.owner
    # Counter.get: a missing owner must not go through Counter.__missing__ (slow path)
    owned = [n.owners.get(owner, 0) for n in candidates] if owner else None
    max_owned = max(owned) if owned else 0
    preferred = needs.preferred_terms
    affinity_raw = [sum(p.weight for p in preferred if term_matches(p.preference, n))
                    for n in candidates] if preferred else None
    max_affinity = max(affinity_raw) if affinity_raw else 0
    most = config.scoring == "MostAllocated"
    cpu, memory = needs.cpu, needs.memory
    images = needs.images
    w_image_100 = config.image_weight * 100
    w_res_100, w_spread_100 = config.resource_weight * 100, config.spread_weight * 100
    w_affinity_100 = config.affinity_weight * 100
    scores = []
    for i, node in enumerate(candidates):
        node_cpu, node_memory = node.cpu, node.memory
        if node_cpu and node_memory:
            used = ((node.used_cpu + cpu) / node_cpu
                    + (node.used_memory + memory) / node_memory) / 2
        elif node_cpu:
            used = (node.used_cpu + cpu) / node_cpu
        elif node_memory:
            used = (node.used_memory + memory) / node_memory
        else:
            used = node.pods / max(node.max_pods, 1)
        score = w_res_100 * (used if most else 1 - used)
        if max_owned:
            score += w_spread_100 * (max_owned - owned[i]) / max_owned  # type: ignore[index]
        else:
            score += w_spread_100
        if images and node.images:
            score += (w_image_100 if images <= node.images
                      else w_image_100 * len(images & node.images) / len(images))
        if affinity_raw and max_affinity:
            score += w_affinity_100 * affinity_raw[i] / max_affinity
        scores.append(score)
    return scores


def failure_message(total: int, reasons: Counter) -> str:
    """Kubernetes' summary: '0/3 nodes are available: 2 Insufficient memory, 1 ...'."""
    if total == 0:
        return "0/0 nodes are available: no nodes registered."
    parts = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    return (f"0/{total} nodes are available: "
            + ", ".join(f"{count} {reason}" for reason, count in parts) + ".")


def schedule(pending: Sequence[PodNeeds], nodes: Mapping[str, NodeState],
             config: SchedulerConfig, start: int = 0) -> SchedulePlan:
    """Place `pending` (in order) on `nodes`; `nodes` is updated as pods are placed.

    Node i is considered starting at `start` (rotating), so successive pods and batches
    spread their filtering work and ties over all nodes.
    """
    ordered = [nodes[name] for name in sorted(nodes)]
    total = len(ordered)
    bindings: list[tuple[str, str, str]] = []
    failures: dict[tuple[str, str], str] = {}
    fixed_reasons: dict[Hashable, list[str | None]] = {}
    offset = start % total if total else 0
    for needs in pending:
        if needs.volume_error:
            failures[needs.key] = (f"0/{total} nodes are available: "
                                   f"{needs.volume_error}.")
            continue
        feasible: list[NodeState] = []
        reasons: Counter = Counter()
        examined = 0
        # fixed reasons per node, shared by the batch's pods with the same key (most
        # pods of a batch come from a few templates): only capacity is checked per pod
        fixed_key = fixed_filter_key(needs)
        fixed = fixed_reasons.get(fixed_key)
        if fixed is None:
            fixed = fixed_reasons[fixed_key] = [None] * total
        for step in range(total):
            index = (offset + step) % total
            node = ordered[index]
            examined += 1
            reason = fixed[index]
            if reason is None:
                reason = fixed[index] = fixed_filter_reason(needs, node)
            if not reason:
                reason = capacity_filter_reason(needs, node)
            if reason:
                reasons[reason] += 1
                continue
            feasible.append(node)
            if len(feasible) >= config.nodes_to_score:
                break
        offset = (offset + examined) % total if total else 0
        if not feasible:
            failures[needs.key] = failure_message(total, reasons)
            continue
        scores = score_nodes(needs, feasible, config)
        best = max(range(len(feasible)), key=lambda i: scores[i])
        chosen = feasible[best]
        chosen.take(needs)
        bindings.append((needs.key[0], needs.key[1], chosen.name))
    return SchedulePlan(tuple(bindings), failures)
