"""`cordon`, `uncordon` and `drain` a node."""

from __future__ import annotations

import argparse
import sys
import time

from raftkube import apierrors
from raftkube.cli.kubectl.common import (
    CommandError,
    add_config_flag,
    colour,
    command,
    error_lines,
    make_client,
    parse_duration,
)
from raftkube.client import Client


def register(subparsers: argparse._SubParsersAction) -> None:
    for verb, text in (("cordon", "mark a node unschedulable"),
                       ("uncordon", "mark a node schedulable")):
        parser = subparsers.add_parser(verb, help=text)
        parser.add_argument("node")
        add_config_flag(parser)
        parser.set_defaults(func=_cordon, unschedulable=verb == "cordon")
    drain = subparsers.add_parser("drain", help="cordon a node and delete its pods",
                                  description="Cordon the node, then delete every pod on it "
                                  "and wait until they are gone. Pods without a controller "
                                  "would not come back elsewhere: they stop the drain unless "
                                  "--force.")
    drain.add_argument("node")
    drain.add_argument("--force", action="store_true",
                       help="also delete pods not managed by a controller")
    drain.add_argument("--grace-period", type=int, default=None, metavar="SECONDS")
    drain.add_argument("--timeout", default="0", help="give up waiting after this long")
    drain.add_argument("--ignore-daemonsets", action="store_true",
                       help="accepted for kubectl habits (raftkube has no DaemonSets)")
    add_config_flag(drain)
    drain.set_defaults(func=_drain)


def set_unschedulable(client: Client, node: str, value: bool) -> bool:
    """Set spec.unschedulable; False when it already had that value."""
    nodes = client.resource("Node")
    current = nodes.get(node)
    if current.spec.unschedulable == value:
        return False
    nodes.patch(node, {"spec": {"unschedulable": value}})
    return True


@command
def _cordon(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        changed = set_unschedulable(client, args.node, args.unschedulable)
    word = "cordoned" if args.unschedulable else "uncordoned"
    print(f"node/{args.node} {word}" if changed else f"node/{args.node} already {word}")
    return 0


def _controller(pod: object) -> str | None:
    for ref in pod.metadata.owner_references:  # type: ignore[attr-defined]
        if ref.controller:
            return f"{ref.kind}/{ref.name}"
    return None


@command
def _drain(args: argparse.Namespace) -> int:
    timeout = parse_duration(args.timeout) if args.timeout not in ("0", "0s") else 0.0
    with make_client(args) as client:
        if set_unschedulable(client, args.node, True):
            print(f"node/{args.node} cordoned")
        else:
            print(f"node/{args.node} already cordoned")
        pods = client.resource("Pod")
        on_node = pods.list(all_namespaces=True, field_selector=f"spec.nodeName={args.node}")
        unmanaged = [p for p in on_node if _controller(p) is None]
        if unmanaged and not args.force:
            names = ", ".join(f"{p.metadata.namespace}/{p.metadata.name}" for p in unmanaged)
            raise CommandError(f"cannot delete pods that declare no controller (use --force "
                               f"to override): {names}")
        failed = 0
        for pod in on_node:
            print(f"evicting pod {pod.metadata.namespace}/{pod.metadata.name}", flush=True)
            try:
                pods.delete(pod.metadata.name, pod.metadata.namespace,
                            grace_period_seconds=args.grace_period,
                            precondition_uid=pod.metadata.uid)
            except apierrors.NotFound:
                continue
            except apierrors.ApiError as e:
                failed += 1
                for line in error_lines(e):
                    print(line, file=sys.stderr)
        if failed:
            return 1
        return _wait_gone(client, args.node, {p.metadata.uid: p for p in on_node}, timeout)


def _wait_gone(client: Client, node: str, waiting: dict, timeout: float) -> int:
    """Poll until every deleted pod is gone, printing progress when the count changes."""
    started = time.monotonic()
    pods = client.resource("Pod")
    reported = len(waiting)
    while waiting:
        left = {p.metadata.uid for p in pods.list(all_namespaces=True,
                                                  field_selector=f"spec.nodeName={node}")}
        for uid in [u for u in waiting if u not in left]:
            pod = waiting.pop(uid)
            print(f"pod/{pod.metadata.name} evicted", flush=True)
        if not waiting:
            break
        if len(waiting) != reported or time.monotonic() - started < 0.6:
            reported = len(waiting)
            elapsed = time.monotonic() - started
            print(colour(f"waiting for {len(waiting)} pod(s) to terminate ({elapsed:.0f}s)",
                         "2", sys.stdout), flush=True)
        if timeout and time.monotonic() - started > timeout:
            names = ", ".join(f"{p.metadata.namespace}/{p.metadata.name}"
                              for p in waiting.values())
            print(f"error: drain did not complete within {timeout:.0f}s; still terminating: "
                  f"{names}", file=sys.stderr)
            return 1
        time.sleep(1.0)
    print(f"node/{node} drained")
    return 0
