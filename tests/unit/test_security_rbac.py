"""Every authorization rule, as a table: who, what, expected decision, and why."""

from __future__ import annotations

import pytest

from raftkube.security.principal import Principal, node_principal
from raftkube.security.rbac import (
    Authorizer,
    Policy,
    Role,
    Rule,
    authorize,
    bind,
    resource_of,
)

ADMIN = Principal("admin", ("system:masters",))
ALICE = Principal("alice", ())  # cluster-wide view
BOB = Principal("bob", ())  # view in prod, edit in dev
CAROL = Principal("carol", ("team-a",))  # edit in team-a via a group binding
DAVE = Principal("dave", ())  # admin of dev
ERIN = Principal("erin", ())  # custom namespaced Role in dev: read configmaps only
OPS = Principal("ops", ())  # cluster-wide edit
NOBODY = Principal("mallory", ())
BOOT = Principal("system:bootstrap:abc123", ("system:bootstrappers",))
FAKE_NODE = Principal("system:node:w1", ())  # right name, missing group: plain user
W1 = node_principal("w1")

POLICY = Policy().with_roles(
    Role("configmap-reader", (Rule(frozenset({"get", "list"}), frozenset({"configmaps"})),),
         namespace="dev"),
).with_bindings(
    bind("alice-view", "view", users=["alice"]),
    bind("bob-view", "view", users=["bob"], namespace="prod"),
    bind("bob-edit", "edit", users=["bob"], namespace="dev"),
    bind("team-a-edit", "edit", groups=["team-a"], namespace="team-a"),
    bind("dave-admin", "admin", users=["dave"], namespace="dev"),
    bind("erin-cm", "configmap-reader", users=["erin"], namespace="dev", role_kind="Role"),
    bind("erin-cm-prod", "configmap-reader", users=["erin"], namespace="prod",
         role_kind="Role"),
    bind("ops-edit", "edit", users=["ops"]),
)

# The objects pods on w1 reference (resource, namespace, name).
W1_REFS = {("secrets", "prod", "db"), ("configmaps", "prod", "web"),
           ("persistentvolumeclaims", "prod", "data"), ("persistentvolumes", "", "pv-1")}

# principal, verb, kind, namespace, name, subresource, object_node, allowed, reason fragment
CASES = [
    # system:masters: everything, everywhere.
    (ADMIN, "delete", "Node", "", "w1", None, None, True, 'group "system:masters"'),
    (ADMIN, "get", "Secret", "prod", "db", None, None, True, "full access"),
    (ADMIN, "create", "pods", "prod", "x", "exec", None, True, "full access"),
    # view: reads workloads, not secrets; no writes; no nodes; logs yes, exec no.
    (BOB, "get", "Pod", "prod", "web", None, None, True, 'RoleBinding "bob-view"'),
    (BOB, "list", "Deployment", "prod", None, None, None, True, '(ClusterRole "view")'),
    (BOB, "watch", "ConfigMap", "prod", None, None, None, True, "bob-view"),
    (BOB, "get", "pods", "prod", "web", "log", None, True, "bob-view"),
    (BOB, "get", "Secret", "prod", "db", None, None, False,
     'user "bob" cannot get secrets in namespace "prod": not allowed by RoleBinding '
     '"bob-view" in namespace "prod" (ClusterRole "view")'),
    (BOB, "list", "Secret", "prod", None, None, None, False, "cannot list secrets"),
    (BOB, "delete", "Secret", "prod", "db", None, None, False,
     'user "bob" cannot delete secrets in namespace "prod"'),
    (BOB, "create", "Pod", "prod", "x", None, None, False, "cannot create pods"),
    (BOB, "create", "pods", "prod", "web", "exec", None, False, "cannot create pods/exec"),
    (BOB, "get", "Role", "prod", "r", None, None, False, "cannot get roles"),
    # A namespace binding grants nothing in other namespaces or at the cluster scope.
    (BOB, "get", "Pod", "staging", "web", None, None, False,
     'user "bob" cannot get pods in namespace "staging": no role binding in namespace '
     '"staging" names user "bob" or its groups'),
    (BOB, "list", "Pod", "", None, None, None, False,
     'user "bob" cannot list pods at the cluster scope'),
    # edit: workloads, configmaps, secrets, services; exec and port-forward; not roles,
    # not nodes, not namespaces, not status.
    (BOB, "create", "Deployment", "dev", "web", None, None, True, 'RoleBinding "bob-edit"'),
    (BOB, "update", "StatefulSet", "dev", "db", None, None, True, "bob-edit"),
    (BOB, "delete", "Pod", "dev", "web-1", None, None, True, "bob-edit"),
    (BOB, "patch", "ConfigMap", "dev", "cfg", None, None, True, "bob-edit"),
    (BOB, "create", "Secret", "dev", "db", None, None, True, "bob-edit"),
    (BOB, "get", "Secret", "dev", "db", None, None, True, "bob-edit"),
    (BOB, "delete", "Service", "dev", "web", None, None, True, "bob-edit"),
    (BOB, "create", "Ingress", "dev", "web", None, None, True, "bob-edit"),
    (BOB, "create", "PersistentVolumeClaim", "dev", "data", None, None, True, "bob-edit"),
    (BOB, "create", "pods", "dev", "web-1", "exec", None, True, "bob-edit"),
    (BOB, "create", "pods", "dev", "web-1", "portforward", None, True, "bob-edit"),
    (BOB, "create", "Role", "dev", "r", None, None, False, "cannot create roles"),
    (BOB, "create", "RoleBinding", "dev", "rb", None, None, False, "cannot create rolebindings"),
    (BOB, "update", "pods", "dev", "web-1", "status", None, False, "cannot update pods/status"),
    (OPS, "update", "Node", "", "w1", None, None, False,
     'user "ops" cannot update nodes at the cluster scope: not allowed by '
     'ClusterRoleBinding "ops-edit"'),
    (OPS, "get", "Node", "", "w1", None, None, False, "cannot get nodes"),
    (OPS, "delete", "Namespace", "", "prod", None, None, False, "cannot delete namespaces"),
    (OPS, "create", "Secret", "anything", "s", None, None, True, 'ClusterRoleBinding "ops-edit"'),
    # cluster-wide view: reads every namespace and lists across them, still no secrets.
    (ALICE, "list", "Pod", "", None, None, None, True, 'ClusterRoleBinding "alice-view"'),
    (ALICE, "get", "Namespace", "", "prod", None, None, True, "alice-view"),
    (ALICE, "get", "Secret", "prod", "db", None, None, False, "cannot get secrets"),
    (ALICE, "get", "PersistentVolume", "", "pv-1", None, None, False,
     "cannot get persistentvolumes"),
    # group subjects.
    (CAROL, "create", "Deployment", "team-a", "api", None, None, True, "team-a-edit"),
    (CAROL, "create", "Deployment", "team-b", "api", None, None, False,
     "cannot create deployments"),
    # namespace admin: edit plus roles and role bindings in its namespace.
    (DAVE, "create", "RoleBinding", "dev", "x", None, None, True, 'RoleBinding "dave-admin"'),
    (DAVE, "create", "Role", "dev", "x", None, None, True, "dave-admin"),
    (DAVE, "create", "Role", "prod", "x", None, None, False, "cannot create roles"),
    # custom namespaced Role: only its rules, only in its namespace; a binding in another
    # namespace cannot use it.
    (ERIN, "get", "ConfigMap", "dev", "cfg", None, None, True, 'RoleBinding "erin-cm"'),
    (ERIN, "update", "ConfigMap", "dev", "cfg", None, None, False,
     'not allowed by RoleBinding "erin-cm" in namespace "dev" (Role "configmap-reader")'),
    (ERIN, "get", "ConfigMap", "prod", "cfg", None, None, False, "role not found"),
    # no binding at all.
    (NOBODY, "get", "Pod", "prod", "web", None, None, False,
     'user "mallory" cannot get pods in namespace "prod": no role binding'),
    (BOOT, "list", "Node", "", None, None, None, False,
     'user "system:bootstrap:abc123" cannot list nodes'),
    (FAKE_NODE, "get", "Node", "", "w1", None, None, False, "no role binding"),
    # unknown verbs and subresources are refused by name.
    (ADMIN, "escalate", "Role", "dev", "r", None, None, False, "unknown verb 'escalate'"),
    (ADMIN, "get", "pods", "dev", "p", "attach", None, False, "unknown subresource 'attach'"),
    # node restriction: reads.
    (W1, "get", "Service", "prod", "web", None, None, True, "may read services"),
    (W1, "list", "Endpoints", "", None, None, None, True, "may read services"),
    (W1, "watch", "Node", "", None, None, None, True,
     "may read services, endpoints, nodes and ingresses"),
    (W1, "list", "Ingress", "", None, None, None, True, "nodes and ingresses"),
    (W1, "get", "Node", "", "w2", None, None, True, "nodes"),
    (W1, "get", "Pod", "prod", "web-1", None, "w1", True, 'pod bound to node "w1"'),
    (W1, "watch", "Pod", "", None, None, "w1", True, 'pod bound to node "w1"'),
    (W1, "get", "Pod", "prod", "web-2", None, "w2", False,
     'user "system:node:w1" cannot get pods in namespace "prod": node restriction: pod is '
     'bound to node "w2", not to node "w1"'),
    (W1, "list", "Pod", "", None, None, None, False, "select them with spec.nodeName=w1"),
    (W1, "get", "pods", "prod", "web-1", "log", "w1", False, "node restriction"),
    (W1, "get", "Secret", "prod", "db", None, None, True,
     'secrets "db" is referenced by a pod bound to node "w1"'),
    (W1, "get", "ConfigMap", "prod", "web", None, None, True, "referenced"),
    (W1, "get", "PersistentVolumeClaim", "prod", "data", None, None, True, "referenced"),
    (W1, "get", "PersistentVolume", "", "pv-1", None, None, True, "referenced"),
    (W1, "get", "Secret", "prod", "other", None, None, False,
     'user "system:node:w1" cannot get secrets in namespace "prod": node restriction: '
     'secrets "other" is not referenced by any pod bound to node "w1"'),
    (W1, "get", "Secret", "dev", "db", None, None, False, "not referenced"),
    (W1, "list", "Secret", "prod", None, None, None, False, "only one by one, by name"),
    (W1, "get", "Deployment", "prod", "web", None, None, False, "node restriction: nodes may "
     "read only what their pods need"),
    # node restriction: writes.
    (W1, "create", "Node", "", "w1", None, None, True, 'own Node "w1"'),
    (W1, "update", "Node", "", "w1", None, None, True, 'own Node "w1"'),
    (W1, "patch", "nodes", "", "w1", "status", None, True, 'own Node "w1"'),
    (W1, "update", "Node", "", "w2", None, None, False, 'only their own Node "w1"'),
    (W1, "patch", "nodes", "", "w2", "status", None, False, "only their own Node"),
    (W1, "update", "Lease", "raftkube-node-lease", "w1", None, None, True, 'own Lease "w1"'),
    (W1, "create", "Lease", "raftkube-node-lease", "w1", None, None, True, "own Lease"),
    (W1, "update", "Lease", "raftkube-node-lease", "w2", None, None, False,
     'only their own Lease "w1"'),
    (W1, "update", "Lease", "default", "w1", None, None, False, "only their own Lease"),
    (W1, "update", "pods", "prod", "web-1", "status", "w1", True,
     'status of a pod bound to node "w1"'),
    (W1, "patch", "pods", "prod", "web-2", "status", "w2", False,
     'this pod is bound to node "w2"'),
    (W1, "update", "pods", "prod", "web-3", "status", None, False, "bound to no node"),
    (W1, "update", "Pod", "prod", "web-1", None, "w1", False, "node restriction"),
    (W1, "delete", "Pod", "prod", "web-1", None, "w1", True,
     'delete of a pod bound to node "w1"'),
    (W1, "delete", "Pod", "prod", "web-2", None, "w2", False, 'this pod is bound to node "w2"'),
    (W1, "create", "Pod", "prod", "x", None, "w1", False, "node restriction"),
    (W1, "update", "Secret", "prod", "db", None, None, False, "node restriction"),
    (W1, "create", "Event", "prod", "e1", None, None, True, "may create events"),
    (W1, "update", "Event", "prod", "e1", None, None, False, "node restriction"),
    (W1, "create", "pods", "prod", "web-1", "exec", "w1", False, "node restriction"),
]


@pytest.mark.parametrize(
    ("principal", "verb", "kind", "namespace", "name", "sub", "node", "allowed", "reason"),
    CASES,
    ids=[f"{c[0].name}-{c[1]}-{c[2]}{'/' + c[5] if c[5] else ''}-{c[3] or 'cluster'}-{i}"
         for i, c in enumerate(CASES)],
)
def test_rule_table(principal, verb, kind, namespace, name, sub, node, allowed, reason) -> None:
    decision = authorize(principal, verb, kind, namespace, name, subresource=sub,
                         object_node=node, policy=POLICY, node_references=W1_REFS)
    assert decision.allowed is allowed, decision.reason
    assert reason in decision.reason


def test_the_table_covers_every_verb_and_subresource() -> None:
    verbs = {c[1] for c in CASES}
    subs = {c[5] for c in CASES}
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= verbs
    assert {"status", "log", "exec", "portforward"} <= subs


def test_authorizer_uses_a_reference_callback_and_a_live_policy() -> None:
    seen = []

    def refs(node, resource, namespace, name):
        seen.append((node, resource, namespace, name))
        return name == "mine"

    policies = [Policy()]
    authz = Authorizer(policy_source=lambda: policies[-1], node_references=refs)
    assert authz.authorize(W1, "get", "Secret", "prod", "mine").allowed
    assert not authz.authorize(W1, "get", "Secret", "prod", "theirs").allowed
    assert seen == [("w1", "secrets", "prod", "mine"), ("w1", "secrets", "prod", "theirs")]
    assert not authz.authorize(BOB, "get", "Pod", "prod", "p").allowed
    policies.append(Policy().with_bindings(bind("b", "view", users=["bob"])))
    assert authz.authorize(BOB, "get", "Pod", "prod", "p").allowed


def test_policy_round_trips_through_a_plain_dict() -> None:
    again = Policy.from_dict(POLICY.to_dict())
    for c in CASES:
        a = authorize(c[0], c[1], c[2], c[3], c[4], subresource=c[5], object_node=c[6],
                      policy=again, node_references=W1_REFS)
        assert a.allowed is c[7]


def test_kinds_and_resource_names_are_equivalent() -> None:
    assert resource_of("Secret") == "secrets"
    assert resource_of("secrets") == "secrets"
    assert resource_of("NetworkPolicy") == "networkpolicies"
    assert resource_of("Widget") == "widgets"
    assert resource_of("Gateway") == "gateways"
    assert resource_of("Ingress") == "ingresses"
