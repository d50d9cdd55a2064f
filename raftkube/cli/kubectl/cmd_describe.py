"""`describe KIND NAME...`: an object's details and the recent events about it."""

from __future__ import annotations

import argparse
import sys
import time

from raftkube.cli.kubectl.common import (
    add_config_flag,
    add_namespace_flags,
    command,
    make_client,
)
from raftkube.cli.kubectl.printers import describe, related_events
from raftkube.cli.kubectl.targets import parse_targets


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("describe", help="show details of objects with events")
    parser.add_argument("resources", nargs="+", metavar="KIND NAME... | KIND/NAME...")
    parser.add_argument("-l", "--selector", default="", help="describe every match")
    add_namespace_flags(parser, all_namespaces=False)
    add_config_flag(parser)
    parser.set_defaults(func=_describe)


@command
def _describe(args: argparse.Namespace) -> int:
    targets = parse_targets(args.resources)
    with make_client(args) as client:
        if not targets[0][1]:
            objects = client.resource(targets[0][0]).list(args.namespace,
                                                          label_selector=args.selector)
        else:
            objects = [client.resource(info).get(name, args.namespace)
                       for info, name in targets]
        namespaces = {o.metadata.namespace for o in objects}
        events = [e for ns in sorted(namespaces)
                  for e in client.resource("Event").list(ns or args.namespace)]
        texts = [describe(obj, related_events(obj, events), time.time()) for obj in objects]
    sys.stdout.write("\n\n".join(texts))
    return 0
