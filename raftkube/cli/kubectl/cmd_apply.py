"""`apply -f` and `create -f`: send manifests (files, directories, "-") to the cluster."""

from __future__ import annotations

import argparse
import sys

from raftkube import apierrors
from raftkube.cli.kubectl.common import (
    add_config_flag,
    add_namespace_flags,
    command,
    error_lines,
    make_client,
)
from raftkube.cli.kubectl.printers import resource_name
from raftkube.cli.kubectl.targets import manifest_objects

DRY_RUN = ("none", "client", "server")


def register(subparsers: argparse._SubParsersAction) -> None:
    for verb, text in (("apply", "create or update objects to match manifests"),
                       ("create", "create objects from manifests (fails if they exist)")):
        parser = subparsers.add_parser(verb, help=text, description=text)
        parser.add_argument("-f", "--filename", action="append", required=True,
                            metavar="FILE", help="file, directory (recursive) or - (stdin)")
        parser.add_argument("--dry-run", nargs="?", const="client", default="none",
                            choices=DRY_RUN,
                            help="client: validate locally only; server: validate on the "
                                 "server without storing")
        parser.add_argument("-o", "--output", choices=("name", "yaml", "json"), default=None)
        add_namespace_flags(parser, all_namespaces=False)
        add_config_flag(parser)
        parser.set_defaults(func=_apply if verb == "apply" else _create, verb=verb)


def _suffix(dry_run: str) -> str:
    return {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run, "")


@command
def _apply(args: argparse.Namespace) -> int:
    objects = manifest_objects(args.filename, args.namespace, args.namespace or "default")
    if args.dry_run == "client":
        _report_dry_run(args, objects, "configured")
        return 0
    failed = 0
    with make_client(args) as client:
        for obj in objects:
            try:
                stored, action = client.apply(obj, dry_run=args.dry_run == "server")
            except apierrors.ApiError as e:
                failed += 1
                for line in error_lines(e):
                    print(line, file=sys.stderr)
                continue
            _report(args, stored, action)
    return 1 if failed else 0


@command
def _create(args: argparse.Namespace) -> int:
    objects = manifest_objects(args.filename, args.namespace, args.namespace or "default")
    if args.dry_run == "client":
        _report_dry_run(args, objects, "created")
        return 0
    failed = 0
    with make_client(args) as client:
        for obj in objects:
            try:
                stored = client.create(obj, dry_run=args.dry_run == "server")
            except apierrors.ApiError as e:
                failed += 1
                for line in error_lines(e):
                    print(line, file=sys.stderr)
                continue
            _report(args, stored, "created")
    return 1 if failed else 0


def _report_dry_run(args: argparse.Namespace, objects: list, action: str) -> None:
    """What a client dry run would send: the defaulted objects (-o yaml|json) or one line
    per object, without contacting any master."""
    from raftkube.objects.manifests import dump_json, dump_yaml

    if args.output == "yaml":
        sys.stdout.write(dump_yaml(objects))
    elif args.output == "json":
        sys.stdout.write(dump_json(objects))
    else:
        for obj in objects:
            _report(args, obj, action)


def _report(args: argparse.Namespace, obj: object, action: str) -> None:
    from raftkube.objects.manifests import dump_json, dump_yaml

    if args.output == "yaml":
        sys.stdout.write(dump_yaml([obj]))  # type: ignore[list-item]
    elif args.output == "json":
        sys.stdout.write(dump_json([obj]))  # type: ignore[list-item]
    elif args.output == "name":
        print(resource_name(obj))  # type: ignore[arg-type]
    else:
        print(f"{resource_name(obj)} {action}{_suffix(args.dry_run)}")  # type: ignore[arg-type]
