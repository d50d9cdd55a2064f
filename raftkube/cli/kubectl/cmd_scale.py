"""`scale KIND NAME --replicas=N [--current-replicas=M]` for Deployments, ReplicaSets and
StatefulSets."""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from raftkube import apierrors
from raftkube.cli.kubectl.common import (
    CommandError,
    add_config_flag,
    add_namespace_flags,
    command,
    make_client,
)
from raftkube.cli.kubectl.printers import resource_name
from raftkube.cli.kubectl.targets import parse_targets
from raftkube.client import ResourceClient

SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("scale", help="set the replica count")
    parser.add_argument("resources", nargs="+", metavar="KIND NAME... | KIND/NAME...")
    parser.add_argument("--replicas", type=int, required=True)
    parser.add_argument("--current-replicas", type=int, default=None,
                        help="only scale if the current count is this (checked atomically)")
    add_namespace_flags(parser, all_namespaces=False)
    add_config_flag(parser)
    parser.set_defaults(func=_scale)


@command
def _scale(args: argparse.Namespace) -> int:
    if args.replicas < 0:
        raise CommandError("--replicas: must be zero or positive")
    targets = parse_targets(args.resources)
    with make_client(args) as client:
        for info, name in targets:
            if info.kind not in SCALABLE:
                raise CommandError(f"{info.plural} cannot be scaled (only "
                                   f"{', '.join(SCALABLE)})")
            obj = scale(client.resource(info), name, args.namespace, args.replicas,
                        args.current_replicas)
            print(f"{resource_name(obj)} scaled")
    return 0


def scale(resource: ResourceClient, name: str, namespace: str | None, replicas: int,
          current_replicas: int | None, attempts: int = 5) -> Message:
    """Set spec.replicas with an update guarded by the resourceVersion read; a concurrent
    change (Conflict) is re-read and retried, re-checking `current_replicas`."""
    attempt = 0
    while True:
        attempt += 1
        obj = resource.get(name, namespace)
        current = obj.spec.replicas if obj.spec.HasField("replicas") else 1  # type: ignore[attr-defined]
        if current_replicas is not None and current != current_replicas:
            raise CommandError(f"{resource_name(obj)}: expected {current_replicas} "
                               f"replicas, found {current}")
        obj.spec.replicas = replicas  # type: ignore[attr-defined]
        try:
            return resource.update(obj)
        except apierrors.Conflict:
            if attempt >= attempts:
                raise
