"""`edit KIND NAME`: open the object's YAML in $EDITOR, then update it guarded by the
resourceVersion that was read (a concurrent change is reported, never overwritten)."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile

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
from raftkube.client.reconcile import same_content
from raftkube.objects import registry
from raftkube.objects.errors import ManifestError
from raftkube.objects.manifests import dump_yaml, load_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("edit", help="edit an object in $EDITOR")
    parser.add_argument("resources", nargs="+", metavar="KIND NAME | KIND/NAME")
    add_namespace_flags(parser, all_namespaces=False)
    add_config_flag(parser)
    parser.set_defaults(func=_edit)


def editor_command() -> list[str]:
    """$KUBE_EDITOR, $EDITOR, else vi — split like a shell would."""
    text = os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi"
    return shlex.split(text)


@command
def _edit(args: argparse.Namespace) -> int:
    targets = parse_targets(args.resources)
    if len(targets) != 1 or not targets[0][1]:
        raise CommandError("edit takes exactly one object: KIND NAME")
    info, name = targets[0]
    with make_client(args) as client:
        current = client.resource(info).get(name, args.namespace)
        header = ("# Edit the object below. Lines starting with '#' are ignored; an unchanged "
                  "file cancels the edit.\n")
        original = dump_yaml([current])
        fd, path = tempfile.mkstemp(prefix=f"raftkubectl-edit-{name}-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            f.write(header + original)
        try:
            result = subprocess.run([*editor_command(), path], check=False)
            if result.returncode != 0:
                os.unlink(path)
                raise CommandError(f"the editor exited with status {result.returncode}; "
                                   "nothing was changed")
            with open(path) as f:
                edited_text = f.read()
        except FileNotFoundError as e:
            os.unlink(path)
            raise CommandError(f"cannot run the editor: {e}") from None
        text = "\n".join(line for line in edited_text.splitlines()
                         if not line.lstrip().startswith("#"))
        try:
            loaded = load_text(text, path, default=False, check=False)
        except ManifestError as e:
            raise CommandError(f"the edited file is not valid, nothing was changed "
                               f"(your edit is kept in {path}): {e}") from None
        if len(loaded) != 1:
            raise CommandError(f"the edited file must hold exactly one object (kept in {path})")
        edited = loaded[0].obj
        if registry.for_message(edited) is not info or edited.metadata.name != name:  # type: ignore[attr-defined]
            raise CommandError("kind and metadata.name may not be changed by edit "
                               f"(your edit is kept in {path})")
        if same_content(edited, current) and edited.SerializeToString(deterministic=True) \
                == current.SerializeToString(deterministic=True):
            os.unlink(path)
            print("Edit cancelled, no changes made.")
            return 0
        edited.metadata.resource_version = current.metadata.resource_version  # type: ignore[attr-defined]
        try:
            client.update(edited)
        except apierrors.Conflict as e:
            raise CommandError(
                f'{resource_name(current)}: the object has been modified since it was '
                f"opened ({e.message}); your edit is kept in {path}: run edit again") from None
        except apierrors.Invalid as e:
            raise CommandError(f"{resource_name(current)} is invalid: {e.message} "
                               f"(your edit is kept in {path})") from None
        os.unlink(path)
        print(f"{resource_name(current)} edited")
    sys.stdout.flush()
    return 0
