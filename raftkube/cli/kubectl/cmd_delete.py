"""`delete` objects by -f, KIND NAME... or KIND -l SELECTOR, with --cascade and
--grace-period. Every delete names the uid it read, so it is retried safely on failover."""

from __future__ import annotations

import argparse
import sys

from google.protobuf.message import Message

from raftkube import apierrors
from raftkube.cli.kubectl.common import (
    CommandError,
    add_config_flag,
    add_namespace_flags,
    command,
    error_lines,
    make_client,
)
from raftkube.cli.kubectl.printers import type_name
from raftkube.cli.kubectl.targets import manifest_objects, parse_targets
from raftkube.client import Client
from raftkube.objects import registry

CASCADE = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan",
           "true": "Background", "false": "Orphan"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("delete", help="delete objects")
    parser.add_argument("resources", nargs="*", metavar="KIND NAME... | KIND/NAME...")
    parser.add_argument("-f", "--filename", action="append", default=[], metavar="FILE")
    parser.add_argument("-l", "--selector", default="")
    parser.add_argument("--all", action="store_true", help="every object of the kind")
    parser.add_argument("--cascade", default="background", choices=sorted(CASCADE),
                        help="background (default), foreground or orphan dependents")
    parser.add_argument("--grace-period", type=int, default=None, metavar="SECONDS",
                        help="seconds pods get to stop (0: immediately)")
    parser.add_argument("--ignore-not-found", action="store_true")
    add_namespace_flags(parser, all_namespaces=False)
    add_config_flag(parser)
    parser.set_defaults(func=_delete)


def _selected(client: Client, args: argparse.Namespace) -> list[tuple[registry.KindInfo, str,
                                                                      str]]:
    """[(kind, namespace, name)] the arguments name."""
    if args.filename:
        if args.resources:
            raise CommandError("give either -f or KIND NAME, not both")
        return [(registry.for_message(o), o.metadata.namespace, o.metadata.name)
                for o in manifest_objects(args.filename, args.namespace, client.namespace)]
    targets = parse_targets(args.resources)
    info, name = targets[0]
    if name:
        return [(k, client.namespace if k.namespaced else "", n) for k, n in targets]
    if not (args.selector or args.all):
        raise CommandError("resource(s) were provided, but no name was specified "
                           "(give NAME, -l SELECTOR or --all)")
    return [(info, o.metadata.namespace, o.metadata.name)
            for o in client.resource(info).list(label_selector=args.selector)]


@command
def _delete(args: argparse.Namespace) -> int:
    failed = 0
    with make_client(args) as client:
        selected = _selected(client, args)
        if not selected and not args.filename:
            print("No resources found", file=sys.stderr)
        for info, namespace, name in selected:
            try:
                current: Message = client.resource(info).get(name, namespace)
                result = client.resource(info).delete(
                    name, namespace, grace_period_seconds=args.grace_period,
                    propagation_policy=CASCADE[args.cascade],
                    precondition_uid=current.metadata.uid)  # type: ignore[attr-defined]
            except apierrors.NotFound as e:
                if args.ignore_not_found:
                    continue
                failed += 1
                for line in error_lines(e):
                    print(line, file=sys.stderr)
                continue
            except apierrors.ApiError as e:
                failed += 1
                for line in error_lines(e):
                    print(line, file=sys.stderr)
                continue
            state = "deleted" if result.deleted else "deleted (finishing in the background)"
            print(f'{type_name(info)} "{name}" {state}')
    return 1 if failed else 0
