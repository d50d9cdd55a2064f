"""The sample application `raftkube up --demo` deploys: the manifests in demo/ (the same
files as the repository's examples/): a Deployment of 3 busybox web servers behind a
ClusterIP and a NodePort Service and an Ingress, a StatefulSet with a volume per replica
behind a headless Service, a ConfigMap, a Secret, a PersistentVolume and its claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from raftkube.cluster.local_cluster import LocalClusterConfig, LocalClusterError

DEMO_DIR = Path(__file__).resolve().parent / "demo"


def deploy_demo(config: LocalClusterConfig, timeout: float = 240.0,
                progress: Callable[[str], None] = print) -> None:
    """Apply the demo manifests and wait until the web Deployment is available."""
    from raftkube.client import Client

    client = Client.from_config(config.client_config)
    try:
        for obj, action in client.apply_manifests([DEMO_DIR]):
            progress(f"{obj.kind.lower()}/{obj.metadata.name} {action}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            web = client.deployments.get("web", "demo")
            if web.status.available_replicas >= web.spec.replicas:
                break
            time.sleep(1)
        else:
            raise LocalClusterError("the demo's web Deployment did not become available "
                                    f"within {timeout:.0f} s (raftkubectl describe "
                                    "deployment web -n demo says why)")
    finally:
        client.close()
    progress("""
demo deployed in namespace "demo". Look at it with:
  raftkubectl get pods -n demo -o wide
  raftkubectl get deployments,statefulsets,services,ingresses -n demo
  raftkubectl describe deployment web -n demo
  raftkubectl logs data-writer -n demo
  raftkubectl exec kv-0 -n demo -- cat /data/history
  raftkubectl exec -it kv-0 -n demo -- sh   (a shell in the pod)
  raftkubectl top pod -n demo        (CPU and memory, after ~10 s)
  raftkubectl get nodes -o wide      (worker addresses)
  curl http://<worker address>:30080/ (the NodePort Service)
""")
