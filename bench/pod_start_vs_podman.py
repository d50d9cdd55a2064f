"""Pod start latency through raftkube's Podman runtime vs bare `podman run -d`, same run.

For each of N pods (interleaved so both sides see the same machine noise):
  raftkube : prepare_pod_sandbox (Podman pod + infra on a bridge network) -> create_container
             -> start_container -> container_status RUNNING        (through the REST API)
  podman   : `podman run -d --network NET IMAGE sleep 3600`, until the CLI returns
             (the container is running then)
  podman+pod: `podman pod create --network NET` then `podman run -d --pod` (the same
             objects raftkube makes, through the CLI)
Everything runs in a throwaway store (raftkube.testing.podman_node) that is removed after.

Usage: python bench/pod_start_vs_podman.py [--pods 50]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raftkube.testing.podman_node import ScratchPodmanNode
from raftkube.workers.runtime.interface import (
    ContainerSpec,
    ContainerState,
    PodSandboxSpec,
)

SLEEPER = ("sleep", "3600")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def raftkube_start(node: ScratchPodmanNode, index: int) -> float:
    rt = node.runtime
    began = time.perf_counter()
    sandbox = rt.prepare_pod_sandbox(PodSandboxSpec(
        uid=uuid.uuid4().hex, namespace="bench", name=f"p{index}", node=node.node,
        network=node.network))
    container_id = rt.create_container(sandbox.uid, ContainerSpec(
        name="app", image=node.image, command=SLEEPER), 0)
    rt.start_container(container_id)
    if rt.container_status(container_id).state is not ContainerState.RUNNING:
        raise RuntimeError(f"pod {index} is not running")
    return time.perf_counter() - began


def cli(node: ScratchPodmanNode, *args: str) -> None:
    # Output goes to a file: conmon inherits the CLI's stdout, and a pipe would keep the
    # call waiting until the container exits.
    with tempfile.TemporaryFile() as out:
        result = subprocess.run(["podman", *args], env=node.podman_env(), stdout=out,
                                stderr=out, stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"podman {' '.join(args[:2])}: {out.read().decode()[-400:]}")


def bare_start(node: ScratchPodmanNode, index: int) -> float:
    began = time.perf_counter()
    cli(node, "run", "-d", "--name", f"bare{index}", "--network", node.network, node.image,
        *SLEEPER)
    return time.perf_counter() - began


def bare_pod_start(node: ScratchPodmanNode, index: int) -> float:
    began = time.perf_counter()
    cli(node, "pod", "create", "--name", f"barepod{index}", "--network", node.network)
    cli(node, "run", "-d", "--pod", f"barepod{index}", "--name", f"barepodc{index}",
        node.image, *SLEEPER)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=50, help="pods per side")
    args = parser.parse_args()
    node = ScratchPodmanNode.start(prefix="rkbench")
    try:
        results: dict[str, list[float]] = {"raftkube runtime (pod)": [],
                                           "bare podman run -d": [],
                                           "bare podman pod create + run": []}
        sides = list(zip(results.values(), (raftkube_start, bare_start, bare_pod_start),
                         strict=True))
        raftkube_start(node, -1)  # warm-up: pause image build, first network setup
        for index in range(args.pods):
            for samples, start in sides:
                samples.append(start(node, index))
        print(f"pod start latency, {args.pods} pods per side, sequential, interleaved "
              f"(podman {podman_version()}, busybox sleep, bridge network)")
        print(f"{'':32} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}")
        for label, samples in results.items():
            print(f"{label:32} {percentile(samples, .5) * 1000:8.0f} "
                  f"{percentile(samples, .99) * 1000:8.0f} "
                  f"{statistics.mean(samples) * 1000:8.0f} {max(samples) * 1000:8.0f}")
        ours = results["raftkube runtime (pod)"]
        bare = results["bare podman run -d"]
        print(f"ratio p99 raftkube / bare podman run: "
              f"{percentile(ours, .99) / percentile(bare, .99):.2f}x")
    finally:
        node.stop()
    return 0


def podman_version() -> str:
    result = subprocess.run(["podman", "--version"], capture_output=True, text=True,
                            check=False)
    return result.stdout.strip().rsplit(" ", 1)[-1]


if __name__ == "__main__":
    sys.exit(main())
