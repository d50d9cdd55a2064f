"""Authorization: role-based access control plus the node restriction, as pure functions.

Order of evaluation for `authorize(principal, verb, kind, namespace, name, ...)`:

1. group `system:masters` may do everything (hard-wired, like Kubernetes);
2. a node identity (`system:node:NAME` in `system:nodes`) is judged by the node
   restriction alone (see `_authorize_node`), never by role bindings;
3. everyone else by role bindings: a cluster binding grants its role everywhere (every
   namespace and cluster-scoped kinds); a namespace binding only inside its namespace.

Kinds may be given as Kubernetes kinds ("Secret") or resource names ("secrets"); both
become the lower-case plural resource name used in rules and messages. A subresource
("status", "log", "exec", "portforward") is matched as `pods/exec` the Kubernetes way.
`namespace` is "" or None for cluster-scoped kinds and for lists across all namespaces.

Denials read `user "bob" cannot delete secrets in namespace "prod": <rule>`; an API
server may prefix `secrets "db" is forbidden: ` as Kubernetes does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from raftkube.security.principal import MASTERS_GROUP, Principal

READ_VERBS = frozenset({"get", "list", "watch"})
WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})
ALL_VERBS = READ_VERBS | WRITE_VERBS
SUBRESOURCES = frozenset({"status", "log", "exec", "portforward", "binding", "stats"})

# Kubernetes kind -> resource name. Unknown kinds are lower-cased and pluralized.
KIND_TO_RESOURCE: Mapping[str, str] = MappingProxyType({
    "Pod": "pods", "Service": "services", "Endpoints": "endpoints",
    "EndpointSlice": "endpointslices", "Node": "nodes", "Namespace": "namespaces",
    "ConfigMap": "configmaps", "Secret": "secrets",
    "PersistentVolume": "persistentvolumes", "PersistentVolumeClaim": "persistentvolumeclaims",
    "StorageClass": "storageclasses", "Deployment": "deployments",
    "ReplicaSet": "replicasets", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets",
    "Job": "jobs", "CronJob": "cronjobs", "Ingress": "ingresses", "Event": "events",
    "Lease": "leases", "ServiceAccount": "serviceaccounts",
    "ResourceQuota": "resourcequotas", "LimitRange": "limitranges",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "PodDisruptionBudget": "poddisruptionbudgets", "NetworkPolicy": "networkpolicies",
    "Role": "roles", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
})

# Readable by `view` (and so by `edit` and `admin`). Secrets are deliberately absent.
_VIEW_RESOURCES = frozenset({
    "pods", "pods/log", "pods/status", "services", "services/status", "endpoints",
    "endpointslices", "configmaps", "persistentvolumeclaims", "persistentvolumeclaims/status",
    "deployments", "deployments/status", "replicasets", "replicasets/status",
    "statefulsets", "statefulsets/status", "daemonsets", "daemonsets/status", "jobs",
    "jobs/status", "cronjobs", "cronjobs/status", "ingresses", "ingresses/status", "events",
    "namespaces", "namespaces/status", "serviceaccounts", "resourcequotas",
    "resourcequotas/status", "limitranges", "horizontalpodautoscalers",
    "horizontalpodautoscalers/status", "poddisruptionbudgets",
    "poddisruptionbudgets/status", "networkpolicies",
})
# Writable by `edit`: workloads, config, secrets, services. Not roles, nodes, namespaces.
_EDIT_RESOURCES = frozenset({
    "pods", "pods/exec", "pods/portforward", "services", "endpoints", "endpointslices",
    "configmaps", "secrets", "persistentvolumeclaims", "deployments", "replicasets",
    "statefulsets", "daemonsets", "jobs", "cronjobs", "ingresses", "serviceaccounts",
    "horizontalpodautoscalers", "poddisruptionbudgets", "networkpolicies",
})
_ADMIN_RESOURCES = frozenset({"roles", "rolebindings"})

# Node restriction: what any node may read, whatever its pods are.
_NODE_READABLE = frozenset({"services", "endpoints", "endpointslices", "nodes", "ingresses"})
# What a node may get when a pod bound to it references the object.
_NODE_REFERENCED = frozenset({
    "configmaps", "secrets", "persistentvolumeclaims", "persistentvolumes",
})

# (node_name, resource, namespace, name) -> True when a pod bound to the node uses it.
ReferenceCheck = Callable[[str, str, str, str], bool]


def resource_of(kind: str) -> str:
    """The resource name of `kind`: "Secret" -> "secrets", "pods" -> "pods"."""
    if kind in KIND_TO_RESOURCE:
        return KIND_TO_RESOURCE[kind]
    if kind.islower() or kind == "*":
        return kind
    low = kind.lower()
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return low[:-1] + "ies"
    if low.endswith(("s", "x", "ch", "sh")):
        return low + "es"
    return low + "s"


@dataclass(frozen=True)
class Decision:
    """The outcome of one authorization check; `reason` names the rule that decided."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Rule:
    """Allows `verbs` on `resources` ("pods", "pods/exec"; "*" matches anything)."""

    verbs: frozenset[str]
    resources: frozenset[str]

    def allows(self, verb: str, resource: str) -> bool:
        return ("*" in self.verbs or verb in self.verbs) and (
            "*" in self.resources or resource in self.resources
        )

    def to_dict(self) -> dict:
        return {"verbs": sorted(self.verbs), "resources": sorted(self.resources)}

    @classmethod
    def from_dict(cls, d: Mapping) -> Rule:
        return cls(frozenset(d["verbs"]), frozenset(d["resources"]))


@dataclass(frozen=True)
class Role:
    """A named set of rules. `namespace` None = a ClusterRole (usable by any binding);
    otherwise a Role usable only by bindings in that namespace."""

    name: str
    rules: tuple[Rule, ...]
    namespace: str | None = None

    def allows(self, verb: str, resource: str) -> bool:
        return any(r.allows(verb, resource) for r in self.rules)

    def to_dict(self) -> dict:
        return {"name": self.name, "namespace": self.namespace,
                "rules": [r.to_dict() for r in self.rules]}

    @classmethod
    def from_dict(cls, d: Mapping) -> Role:
        return cls(d["name"], tuple(Rule.from_dict(r) for r in d["rules"]), d.get("namespace"))


@dataclass(frozen=True)
class Subject:
    """Who a binding names: kind "User" or "Group", and the name."""

    kind: str
    name: str

    def matches(self, principal: Principal) -> bool:
        if self.kind == "User":
            return principal.name == self.name
        if self.kind == "Group":
            return self.name in principal.groups
        return False


@dataclass(frozen=True)
class Binding:
    """Grants role `role` to `subjects`. `namespace` None = a ClusterRoleBinding (grants
    everywhere); otherwise a RoleBinding (grants inside that namespace only).
    `role_kind` is "ClusterRole" or "Role" (a Role of the binding's own namespace)."""

    name: str
    role: str
    subjects: tuple[Subject, ...]
    namespace: str | None = None
    role_kind: str = "ClusterRole"

    def describe(self) -> str:
        if self.namespace is None:
            return f'ClusterRoleBinding "{self.name}" ({self.role_kind} "{self.role}")'
        return (f'RoleBinding "{self.name}" in namespace "{self.namespace}" '
                f'({self.role_kind} "{self.role}")')

    def to_dict(self) -> dict:
        return {"name": self.name, "role": self.role, "role_kind": self.role_kind,
                "namespace": self.namespace,
                "subjects": [{"kind": s.kind, "name": s.name} for s in self.subjects]}

    @classmethod
    def from_dict(cls, d: Mapping) -> Binding:
        return cls(d["name"], d["role"],
                   tuple(Subject(s["kind"], s["name"]) for s in d["subjects"]),
                   d.get("namespace"), d.get("role_kind", "ClusterRole"))


@functools.cache
def builtin_cluster_roles() -> Mapping[str, Role]:
    """cluster-admin, admin, edit and view with Kubernetes semantics (one read-only
    mapping, shared: the master builds a Policy for every authorization)."""
    view = (Rule(READ_VERBS, _VIEW_RESOURCES),)
    edit = (*view, Rule(ALL_VERBS, _EDIT_RESOURCES), Rule(READ_VERBS, frozenset({"secrets"})))
    admin = (*edit, Rule(ALL_VERBS, _ADMIN_RESOURCES))
    return MappingProxyType({
        "cluster-admin": Role("cluster-admin", (Rule(frozenset("*"), frozenset("*")),)),
        "admin": Role("admin", admin),
        "edit": Role("edit", edit),
        "view": Role("view", view),
    })


@dataclass(frozen=True)
class Policy:
    """Roles and bindings: the RBAC state (kept in the replicated store by the master).

    cluster_roles: name -> Role usable by any binding (the built-ins by default).
    roles: (namespace, name) -> Role usable by bindings in that namespace.
    bindings: ClusterRoleBindings (namespace None) and RoleBindings.
    """

    cluster_roles: Mapping[str, Role] = field(default_factory=builtin_cluster_roles)
    roles: Mapping[tuple[str, str], Role] = field(default_factory=dict)
    bindings: tuple[Binding, ...] = ()

    def with_bindings(self, *bindings: Binding) -> Policy:
        """A copy with `bindings` added."""
        return Policy(self.cluster_roles, self.roles, (*self.bindings, *bindings))

    def with_roles(self, *roles: Role) -> Policy:
        """A copy with `roles` added (namespaced ones to `roles`, others to cluster_roles)."""
        cluster = dict(self.cluster_roles)
        spaced = dict(self.roles)
        for role in roles:
            if role.namespace is None:
                cluster[role.name] = role
            else:
                spaced[(role.namespace, role.name)] = role
        return Policy(cluster, spaced, self.bindings)

    def role_for(self, binding: Binding) -> Role | None:
        """The role a binding refers to; None when it does not exist (grants nothing)."""
        if binding.role_kind == "Role":
            if binding.namespace is None:
                return None
            return self.roles.get((binding.namespace, binding.role))
        return self.cluster_roles.get(binding.role)

    def to_dict(self) -> dict:
        return {
            "cluster_roles": [r.to_dict() for r in self.cluster_roles.values()],
            "roles": [r.to_dict() for r in self.roles.values()],
            "bindings": [b.to_dict() for b in self.bindings],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Policy:
        """Parse `to_dict` output; the built-in cluster roles are always present."""
        policy = Policy(bindings=tuple(Binding.from_dict(b) for b in d.get("bindings", ())))
        return policy.with_roles(
            *(Role.from_dict(r) for r in (*d.get("cluster_roles", ()), *d.get("roles", ())))
        )


def _scope(namespace: str | None) -> str:
    return f'in namespace "{namespace}"' if namespace else "at the cluster scope"


def _denial(principal: Principal, verb: str, resource: str, namespace: str | None,
            why: str) -> Decision:
    return Decision(False, f'user "{principal.name}" cannot {verb} {resource} '
                           f"{_scope(namespace)}: {why}")


def _authorize_rbac(policy: Policy, principal: Principal, verb: str, resource: str,
                    namespace: str | None) -> Decision:
    considered: list[str] = []
    for binding in policy.bindings:
        if not any(s.matches(principal) for s in binding.subjects):
            continue
        if binding.namespace is not None and binding.namespace != namespace:
            continue
        role = policy.role_for(binding)
        if role is None:
            considered.append(f"{binding.describe()}: role not found")
            continue
        if role.allows(verb, resource):
            return Decision(True, f"allowed by {binding.describe()}")
        considered.append(binding.describe())
    if not considered:
        return _denial(principal, verb, resource, namespace,
                       f"no role binding {_scope(namespace)} names user "
                       f'"{principal.name}" or its groups')
    return _denial(principal, verb, resource, namespace,
                   "not allowed by " + "; ".join(considered))


def _references(check: ReferenceCheck | Collection[tuple[str, str, str]] | None,
                node: str, resource: str, namespace: str, name: str) -> bool:
    if check is None:
        return False
    if callable(check):
        return bool(check(node, resource, namespace, name))
    return (resource, namespace, name) in check


def _authorize_node(
    node: str, principal: Principal, verb: str, base: str, resource: str,
    subresource: str | None, namespace: str | None, name: str | None,
    object_node: str | None, references: ReferenceCheck | Collection | None,
    lease_namespace: str,
) -> Decision:
    def allow(rule: str) -> Decision:
        return Decision(True, f"allowed by the node restriction: {rule}")

    def deny(why: str) -> Decision:
        return _denial(principal, verb, resource, namespace, f"node restriction: {why}")

    ns = namespace or ""
    if base in _NODE_READABLE and verb in READ_VERBS and subresource in (None, "status"):
        return allow("nodes may read services, endpoints, nodes and ingresses")
    if base == "pods" and subresource in (None, "status") and verb in READ_VERBS:
        if object_node is None:
            return deny(f"nodes may read only pods bound to them: select them with "
                        f"spec.nodeName={node}")
        if object_node != node:
            return deny(f'pod is bound to node "{object_node}", not to node "{node}"')
        return allow(f'pod bound to node "{node}"')
    if base == "pods" and subresource == "status" and verb in ("update", "patch"):
        if object_node != node:
            bound = f'node "{object_node}"' if object_node else "no node"
            return deny(f"nodes may write the status only of pods bound to them; this pod "
                        f"is bound to {bound}")
        return allow(f'status of a pod bound to node "{node}"')
    if base == "pods" and subresource is None and verb == "delete":
        # The agent finishes the graceful deletion of pods it has stopped (kubelet does).
        if object_node != node:
            bound = f'node "{object_node}"' if object_node else "no node"
            return deny(f"nodes may delete only pods bound to them; this pod is bound to "
                        f"{bound}")
        return allow(f'delete of a pod bound to node "{node}"')
    if base in _NODE_REFERENCED and subresource is None and verb in READ_VERBS:
        if not name:
            return deny(f"nodes may read {base} only one by one, by name")
        if not _references(references, node, base, ns, name):
            return deny(f'{base} "{name}" is not referenced by any pod bound to node "{node}"')
        return allow(f'{base} "{name}" is referenced by a pod bound to node "{node}"')
    if base == "nodes" and subresource in (None, "status") and verb in WRITE_VERBS:
        if name != node:
            return deny(f'nodes may write only their own Node "{node}"')
        return allow(f'own Node "{node}"')
    if base == "leases" and subresource is None and verb in ALL_VERBS:
        if name != node or ns != lease_namespace:
            return deny(f'nodes may use only their own Lease "{node}" in namespace '
                        f'"{lease_namespace}"')
        return allow(f'own Lease "{node}"')
    if base == "events" and subresource is None and verb == "create":
        return allow("nodes may create events")
    return deny("nodes may read only what their pods need and write only their own Node, "
                "Lease, their pods' status and new events")


@dataclass(frozen=True)
class AuthorizerConfig:
    """Settings of the authorizer.

    lease_namespace: the namespace holding node Leases (one Lease per node, named after it).
    """

    lease_namespace: str = "raftkube-node-lease"


def authorize(
    principal: Principal,
    verb: str,
    kind: str,
    namespace: str | None,
    name: str | None,
    *,
    subresource: str | None = None,
    object_node: str | None = None,
    policy: Policy | None = None,
    node_references: ReferenceCheck | Collection[tuple[str, str, str]] | None = None,
    config: AuthorizerConfig | None = None,
) -> Decision:
    """May `principal` do `verb` on `kind` (+`subresource`) `namespace`/`name`?

    object_node: for pods, the node the pod is bound to (spec.nodeName), or for a list or
      watch of pods the node named by the `spec.nodeName=` field selector; None otherwise.
    policy: roles and bindings (default: built-in roles, no bindings).
    node_references: for node principals, which configmaps/secrets/PVCs/PVs their pods
      reference: a callable (node, resource, namespace, name) -> bool, or a collection of
      (resource, namespace, name) tuples for that node. None = nothing referenced.
    Pure: no I/O, no clock. Unknown verbs or subresources are denied with a reason.
    """
    cfg = config or AuthorizerConfig()
    base = resource_of(kind)
    resource = f"{base}/{subresource}" if subresource else base
    if verb not in ALL_VERBS:
        return _denial(principal, verb, resource, namespace, f"unknown verb {verb!r}")
    if subresource is not None and subresource not in SUBRESOURCES:
        return _denial(principal, verb, resource, namespace,
                       f"unknown subresource {subresource!r}")
    if MASTERS_GROUP in principal.groups:
        return Decision(True, f'allowed: group "{MASTERS_GROUP}" has full access')
    node = principal.node_name
    if node is not None:
        return _authorize_node(node, principal, verb, base, resource, subresource, namespace,
                               name, object_node, node_references, cfg.lease_namespace)
    return _authorize_rbac(policy or Policy(), principal, verb, resource, namespace)


@dataclass
class Authorizer:
    """`authorize` bound to a policy source and a reference check (for the API server).

    policy_source: returns the current Policy (e.g. built from the store on each call or
      cached by an informer); called once per check.
    node_references: as in `authorize`.
    """

    policy_source: Callable[[], Policy] = Policy
    node_references: ReferenceCheck | None = None
    config: AuthorizerConfig = field(default_factory=AuthorizerConfig)

    def authorize(self, principal: Principal, verb: str, kind: str, namespace: str | None,
                  name: str | None, *, subresource: str | None = None,
                  object_node: str | None = None) -> Decision:
        return authorize(principal, verb, kind, namespace, name, subresource=subresource,
                         object_node=object_node, policy=self.policy_source(),
                         node_references=self.node_references, config=self.config)


def bind(name: str, role: str, *, users: Iterable[str] = (), groups: Iterable[str] = (),
         namespace: str | None = None, role_kind: str = "ClusterRole") -> Binding:
    """Shorthand for a Binding of `role` to the given users and groups."""
    subjects = tuple(Subject("User", u) for u in users) + tuple(
        Subject("Group", g) for g in groups)
    return Binding(name, role, subjects, namespace, role_kind)
