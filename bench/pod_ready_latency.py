"""Pod create -> Ready latency through raftkube (3 real masters, the real agent, real
Podman) next to bare `podman run -d` on the same Podman store, in the same run.

    python bench/pod_ready_latency.py [--pods 50] [--rounds 1]

For each pod: create it bound to the node (spec.nodeName), then wait until a watch on the
namespace shows condition Ready=True; latency = that moment - just before Create.
Bare Podman: `podman run -d --network NET busybox sleep 3600` wall time (returns when the
container runs). Pods and runs alternate, one at a time, so both see the same machine load.
Target (issue 7): p99 within 3x bare Podman and under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raftkube.api.v1 import pod_pb2
from raftkube.testing.agent_harness import AgentHarness, container


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def is_ready(pod: pod_pb2.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=50)
    args = parser.parse_args()
    harness = AgentHarness.start(workers=("w1",))
    try:
        harness.start_agent("w1", lease_interval_seconds=2.0)
        ns = harness.namespace()
        ready_at: dict[str, float] = {}
        seen = threading.Condition()
        watch = harness.admin.pods.watch(ns)

        def follow() -> None:
            for event in watch:
                if event.type in ("ADDED", "MODIFIED") and is_ready(event.object):
                    with seen:
                        ready_at.setdefault(event.object.metadata.name, time.monotonic())
                        seen.notify_all()

        threading.Thread(target=follow, daemon=True).start()
        podman = harness.podman
        assert podman is not None
        raftkube_lat: list[float] = []
        bare_lat: list[float] = []
        for i in range(args.pods):
            name = f"p{i}"
            pod = harness.pod(name, ns, containers=[container("main", ["sleep", "3600"])])
            pod.spec.termination_grace_period_seconds = 0
            began = time.monotonic()
            harness.admin.create(pod)
            with seen:
                if not seen.wait_for(lambda n=name: n in ready_at, timeout=60):
                    raise TimeoutError(f"pod {name} not Ready in 60 s")
            raftkube_lat.append(ready_at[name] - began)
            began = time.monotonic()
            podman.podman("run", "-d", "--name", f"bare{i}", "--network", podman.network,
                          podman.image, "sleep", "3600")
            bare_lat.append(time.monotonic() - began)
        watch.stop()
        rows = [("raftkube pod create->Ready", raftkube_lat), ("bare podman run -d", bare_lat)]
        print(f"{'':30} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for label, values in rows:
            print(f"{label:30} {len(values):4d} {1000 * statistics.median(values):8.0f} "
                  f"{1000 * percentile(values, 0.99):8.0f} {1000 * max(values):8.0f}")
        ratio = percentile(raftkube_lat, 0.99) / percentile(bare_lat, 0.99)
        print(f"p99 ratio raftkube/bare = {ratio:.2f} (target <= 3) ; "
              f"raftkube p99 = {1000 * percentile(raftkube_lat, 0.99):.0f} ms (target < 1000)")
        podman.podman("rm", "-f", "-t", "0", *[f"bare{i}" for i in range(args.pods)],
                      check=False)
    finally:
        harness.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
