"""`get KIND [NAME...]` with -o wide|yaml|json|name, -l, --field-selector, -n, -A, -w."""

from __future__ import annotations

import argparse
import sys
import threading
import time

from google.protobuf.message import Message

from raftkube.cli.kubectl.common import (
    CommandError,
    add_config_flag,
    add_namespace_flags,
    command,
    make_client,
)
from raftkube.cli.kubectl.printers import align as align_rows
from raftkube.cli.kubectl.printers import resource_name, table, table_rows
from raftkube.cli.kubectl.targets import parse_targets
from raftkube.client import Client
from raftkube.objects import registry
from raftkube.objects.manifests import dump_json, dump_yaml


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("get", help="display one or many objects",
                                   description="Display objects as a table (or YAML/JSON).")
    parser.add_argument("resources", nargs="+", metavar="KIND [NAME...] | KIND/NAME...")
    parser.add_argument("-o", "--output", choices=("wide", "yaml", "json", "name"))
    parser.add_argument("-l", "--selector", default="", help="label selector (app=web,...)")
    parser.add_argument("--field-selector", default="", help="field selector "
                        "(spec.nodeName=w1,...)")
    parser.add_argument("-w", "--watch", action="store_true",
                        help="after listing, print every change")
    parser.add_argument("--request-timeout", type=float, default=None, metavar="SECONDS",
                        help="with -w: stop watching after this many seconds")
    parser.add_argument("--no-headers", action="store_true")
    add_namespace_flags(parser)
    add_config_flag(parser)
    parser.set_defaults(func=_get)


def _fetch(client: Client, args: argparse.Namespace,
           targets: list[tuple[registry.KindInfo, str]]) -> tuple[list[Message], str]:
    info = targets[0][0]
    if targets[0][1]:
        return [client.resource(kind).get(name, args.namespace) for kind, name in targets], ""
    return client.resource(info).list_with_version(
        args.namespace, label_selector=args.selector, field_selector=args.field_selector,
        all_namespaces=args.all_namespaces)


def render(objects: list[Message], output: str | None, all_namespaces: bool,
           now: float, headers: bool = True) -> str:
    """The text `get` prints for objects of one kind."""
    if output == "yaml":
        return dump_yaml(objects)
    if output == "json":
        return dump_json(objects)
    if output == "name":
        return "".join(f"{resource_name(o)}\n" for o in objects)
    if not objects:
        return ""
    info = registry.for_message(objects[0])
    if not headers:
        return align_rows(table_rows(info, objects, now, wide=output == "wide",
                                     with_namespace=all_namespaces, headers=False))
    return table(info, objects, now, wide=output == "wide", with_namespace=all_namespaces)


@command
def _get(args: argparse.Namespace) -> int:
    targets = parse_targets(args.resources)
    kinds = {info.kind for info, _ in targets}
    if args.watch and len(kinds) > 1:
        raise CommandError("watch is only supported on one kind of resource")
    with make_client(args) as client:
        if len(kinds) > 1 and not targets[0][1]:
            texts = []
            for info, _ in targets:
                items = client.resource(info).list(
                    args.namespace, label_selector=args.selector,
                    field_selector=args.field_selector, all_namespaces=args.all_namespaces)
                if items:
                    texts.append(render(items, args.output, args.all_namespaces, time.time(),
                                        not args.no_headers))
            sys.stdout.write("\n".join(texts))
            if not texts:
                print("No resources found.", file=sys.stderr)
            return 0
        if len(kinds) > 1:
            objects = [client.resource(k).get(n, args.namespace) for k, n in targets]
            for kind in dict.fromkeys(o.kind for o in objects):
                group = [o for o in objects if o.kind == kind]
                sys.stdout.write(render(group, args.output, args.all_namespaces, time.time(),
                                        not args.no_headers))
            return 0
        objects, version = _fetch(client, args, targets)
        text = render(objects, args.output, args.all_namespaces, time.time(),
                      not args.no_headers)
        if not objects and not args.watch and not targets[0][1]:
            where = ("" if args.all_namespaces or not targets[0][0].namespaced
                     else f" in {args.namespace or 'default'} namespace")
            print(f"No resources found{where}.", file=sys.stderr)
        sys.stdout.write(text)
        sys.stdout.flush()
        if args.watch:
            _watch(client, args, targets, version or _version_of(objects), bool(objects))
    return 0


def _version_of(objects: list[Message]) -> str:
    return str(max(int(o.metadata.resource_version) for o in objects)) if objects else ""  # type: ignore[attr-defined]


def _watch(client: Client, args: argparse.Namespace,
           targets: list[tuple[registry.KindInfo, str]], version: str,
           header_printed: bool) -> None:
    info, name = targets[0]
    fields = args.field_selector
    if name:
        fields = ",".join(x for x in (fields, f"metadata.name={name}") if x)
    watch = client.resource(info).watch(
        args.namespace, label_selector=args.selector, field_selector=fields,
        resource_version=version, all_namespaces=args.all_namespaces)
    if args.request_timeout:
        timer = threading.Timer(args.request_timeout, watch.stop)
        timer.daemon = True
        timer.start()
    headers = not header_printed and not args.no_headers
    try:
        for event in watch:
            if event.object is None:
                continue
            sys.stdout.write(render([event.object], args.output, args.all_namespaces,
                                    time.time(), headers))
            sys.stdout.flush()
            headers = False
    finally:
        watch.stop()
