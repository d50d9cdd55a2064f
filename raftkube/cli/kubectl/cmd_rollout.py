"""`rollout status|history|undo deployment/NAME`."""

from __future__ import annotations

import argparse
import sys
import threading
import time

import yaml

from raftkube.cli.kubectl import rollout_state as rollout
from raftkube.cli.kubectl.common import (
    CommandError,
    add_config_flag,
    add_namespace_flags,
    colour,
    command,
    make_client,
    parse_duration,
)
from raftkube.cli.kubectl.printers import align, resource_name
from raftkube.cli.kubectl.targets import parse_targets
from raftkube.client import Client
from raftkube.objects.codec import encode


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rollout", help="manage the rollout of a Deployment")
    verbs = parser.add_subparsers(dest="rollout_verb", metavar="VERB", required=True)
    status = verbs.add_parser("status", help="wait until the rollout finishes")
    status.add_argument("--timeout", default="0", help="give up after this long (0: never)")
    status.add_argument("-w", "--watch", default="true", choices=("true", "false"),
                        help="wait (default) or print the current state once")
    history = verbs.add_parser("history", help="list the revisions")
    history.add_argument("--revision", type=int, default=0, help="show one revision's template")
    undo = verbs.add_parser("undo", help="go back to the previous (or a given) revision")
    undo.add_argument("--to-revision", type=int, default=0)
    for sub, func in ((status, _status), (history, _history), (undo, _undo)):
        sub.add_argument("resources", nargs="+", metavar="deployment/NAME | deployment NAME")
        add_namespace_flags(sub, all_namespaces=False)
        add_config_flag(sub)
        sub.set_defaults(func=func)


def _deployment_name(args: argparse.Namespace) -> str:
    targets = parse_targets(args.resources)
    if len(targets) != 1 or targets[0][0].kind != "Deployment" or not targets[0][1]:
        raise CommandError("rollout works on one Deployment: deployment/NAME")
    return targets[0][1]


@command
def _status(args: argparse.Namespace) -> int:
    name = _deployment_name(args)
    timeout = parse_duration(args.timeout) if args.timeout not in ("0", "0s") else 0.0
    with make_client(args) as client:
        return _wait_rollout(client, args.namespace, name, timeout, args.watch == "true")


def _wait_rollout(client: Client, namespace: str | None, name: str, timeout: float,
                  wait: bool) -> int:
    deployments = client.resource("Deployment")
    current = deployments.get(name, namespace)
    state = rollout.rollout_state(current)
    print(state.message, flush=True)
    if state.done or state.failed or not wait:
        return 1 if state.failed else 0
    started = time.monotonic()
    watch = deployments.watch(namespace, field_selector=f"metadata.name={name}",
                              resource_version=current.metadata.resource_version)
    timer = None
    if timeout:
        timer = threading.Timer(timeout, watch.stop)
        timer.daemon = True
        timer.start()
    last = state.message
    try:
        for event in watch:
            if event.type == "DELETED":
                raise CommandError(f'deployment "{name}" was deleted while waiting')
            state = rollout.rollout_state(event.object)
            if state.message != last:
                elapsed = time.monotonic() - started
                waiting = "" if state.done else colour(f"  ({elapsed:.0f}s)", "2", sys.stdout)
                print(state.message + waiting, flush=True)
                last = state.message
            if state.done or state.failed:
                return 1 if state.failed else 0
    finally:
        watch.stop()
        if timer is not None:
            timer.cancel()
    print(f"error: timed out waiting for the rollout of deployment \"{name}\" "
          f"after {timeout:.0f}s", file=sys.stderr)
    return 1


@command
def _history(args: argparse.Namespace) -> int:
    name = _deployment_name(args)
    with make_client(args) as client:
        d = client.resource("Deployment").get(name, args.namespace)
        history = rollout.revisions(d, client.resource("ReplicaSet").list(d.metadata.namespace))
    if args.revision:
        for number, rs in history:
            if number == args.revision:
                print(f"{resource_name(d)} with revision #{number}")
                sys.stdout.write(_template_text(rs))
                return 0
        raise CommandError(f"unable to find the specified revision {args.revision}")
    print(resource_name(d))
    rows = [["REVISION", "CHANGE-CAUSE"]]
    rows += [[str(n), rs.metadata.annotations.get(rollout.CHANGE_CAUSE, "<none>")]
             for n, rs in history]
    sys.stdout.write(align(rows))
    return 0


def _template_text(rs: object) -> str:


    return yaml.safe_dump({"template": encode(rs.spec.template)},  # type: ignore[attr-defined]
                          sort_keys=False, default_flow_style=False)


@command
def _undo(args: argparse.Namespace) -> int:
    name = _deployment_name(args)
    with make_client(args) as client:
        deployments = client.resource("Deployment")
        d = deployments.get(name, args.namespace)
        try:
            number, rs = rollout.undo_target(
                d, client.resource("ReplicaSet").list(d.metadata.namespace), args.to_revision)
        except ValueError as e:
            raise CommandError(str(e)) from None
        deployments.update(rollout.rolled_back(d, rs))  # guarded by d's resourceVersion
    print(f"{resource_name(d)} rolled back (to revision {number})")
    return 0
