"""`raftkubectl apply -f FILE|DIR|-`: check manifests offline or apply them to a cluster.

With `--dry-run=client` no cluster is needed: manifests are loaded, defaulted and
validated exactly as the API server will, then printed (`-o yaml|json|name`) or, by
default, one `kind.group/name configured (dry run)` line per object. Any problem prints
every error, one per line (`source[doc]: field.path: reason`), applies nothing, and exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from google.protobuf.message import Message

from raftkube.objects import registry
from raftkube.objects.errors import ManifestError
from raftkube.objects.manifests import dump_json, dump_yaml, load_manifests

DRY_RUN_CHOICES = ("none", "client", "server")
OUTPUT_CHOICES = ("yaml", "json", "name")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "apply",
        help="apply manifests (files, directories, '-' for stdin); --dry-run=client checks "
        "them offline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f", "--filename", action="append", required=True, metavar="FILE|DIR|-",
        help="manifest file, directory (read recursively, sorted) or '-' for stdin; "
        "repeatable",
    )
    parser.add_argument(
        "--dry-run", choices=DRY_RUN_CHOICES, default="none", nargs="?", const="client",
        help="'client': only load, default and validate locally and print the result",
    )
    parser.add_argument("-o", "--output", choices=OUTPUT_CHOICES, help="output format")
    parser.add_argument(
        "-n", "--namespace",
        help="namespace for objects that name none (an object naming another is an error)",
    )
    parser.set_defaults(func=run_apply)


def resource_name(obj: Message) -> str:
    """kubectl's `kind.group/name` notation: `deployment.apps/web`, `service/web`."""
    info = registry.for_message(obj)
    kind = f"{info.singular}.{info.group}" if info.group else info.singular
    return f"{kind}/{obj.metadata.name}"


def run_apply(args: argparse.Namespace) -> int:
    """Exit code 0 when everything would apply, 1 on any manifest error."""
    if args.dry_run != "client":
        print(
            "error: applying to a cluster needs the raftkube API server, which this command "
            "cannot reach yet; use --dry-run=client to load, default and validate the "
            "manifests offline",
            file=sys.stderr,
        )
        return 1
    return dry_run_client(args.filename, args.output, args.namespace)


def dry_run_client(paths: Sequence[str], output: str | None, namespace: str | None) -> int:
    """Load, default and validate `paths`; print the result or every error."""
    try:
        loaded = load_manifests(paths, stdin=sys.stdin, namespace=namespace)
    except ManifestError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    objects = [item.obj for item in loaded]
    if output == "yaml":
        sys.stdout.write(dump_yaml(objects))
    elif output == "json":
        sys.stdout.write(dump_json(objects))
    elif output == "name":
        for obj in objects:
            print(resource_name(obj))
    else:
        for obj in objects:
            print(f"{resource_name(obj)} configured (dry run)")
    return 0
