"""Which ConfigMaps, Secrets and claims the pods bound to a node use (node restriction).

Pure: `pod_references(pod)` lists (resource, namespace, name) triples; the API server's
check lists the node's pods in the namespace and asks whether any references the object.
"""

from __future__ import annotations

from collections.abc import Callable

from raftkube.api.v1 import pod_pb2


def pod_references(pod: pod_pb2.Pod) -> set[tuple[str, str, str]]:
    """Objects a pod needs to start: env sources, envFrom, volumes."""
    ns = pod.metadata.namespace
    refs: set[tuple[str, str, str]] = set()
    for container in [*pod.spec.init_containers, *pod.spec.containers]:
        for env in container.env:
            source = env.value_from
            if source.config_map_key_ref.name:
                refs.add(("configmaps", ns, source.config_map_key_ref.name))
            if source.secret_key_ref.name:
                refs.add(("secrets", ns, source.secret_key_ref.name))
        for env_from in container.env_from:
            if env_from.config_map_ref.name:
                refs.add(("configmaps", ns, env_from.config_map_ref.name))
            if env_from.secret_ref.name:
                refs.add(("secrets", ns, env_from.secret_ref.name))
    for volume in pod.spec.volumes:
        if volume.config_map.name:
            refs.add(("configmaps", ns, volume.config_map.name))
        if volume.secret.secret_name:
            refs.add(("secrets", ns, volume.secret.secret_name))
        if volume.persistent_volume_claim.claim_name:
            refs.add(("persistentvolumeclaims", ns, volume.persistent_volume_claim.claim_name))
    return refs


def reference_check(pods_on_node: Callable[[str, str], list[pod_pb2.Pod]],
                    volume_of_claim: Callable[[str, str], str | None],
                    ) -> Callable[[str, str, str, str], bool]:
    """A node-reference check for the authorizer.

    pods_on_node(node, namespace): pods bound to `node` (namespace "" = all namespaces).
    volume_of_claim(namespace, claim): the PersistentVolume bound to a claim, or None.
    """

    def check(node: str, resource: str, namespace: str, name: str) -> bool:
        if resource == "persistentvolumes":
            for pod in pods_on_node(node, ""):
                for _, ns, claim in (r for r in pod_references(pod)
                                     if r[0] == "persistentvolumeclaims"):
                    if volume_of_claim(ns, claim) == name:
                        return True
            return False
        return any((resource, namespace, name) in pod_references(pod)
                   for pod in pods_on_node(node, namespace))

    return check
