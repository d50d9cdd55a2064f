"""Reading `KIND NAME...` / `KIND/NAME...` arguments and manifest files into targets."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message

from raftkube.cli.kubectl.common import CommandError
from raftkube.objects import registry
from raftkube.objects.manifests import load_manifests


def resolve(kind: str) -> registry.KindInfo:
    try:
        return registry.resolve(kind)
    except registry.UnknownKind as e:
        raise CommandError(str(e)) from None


def parse_targets(words: Sequence[str]) -> list[tuple[registry.KindInfo, str]]:
    """[(kind, name)] from `deploy web api`, `deploy/web pod/x` or `deploy,svc`; names
    are empty when none is given (`get pods`)."""
    if not words:
        raise CommandError("you must specify the type of resource")
    if all("/" in w for w in words):
        out = []
        for word in words:
            kind, _, name = word.partition("/")
            if not name:
                raise CommandError(f"{word!r}: expected KIND/NAME")
            out.append((resolve(kind), name))
        return out
    if any("/" in w for w in words[1:]):
        raise CommandError("there is no need to specify a resource type as a separate "
                           "argument when passing arguments in resource/name form")
    if "," in words[0]:
        if len(words) > 1:
            raise CommandError("names cannot be given with several kinds (use KIND/NAME)")
        return [(resolve(kind), "") for kind in words[0].split(",") if kind]
    info = resolve(words[0])
    names = list(words[1:])
    return [(info, name) for name in names] or [(info, "")]


def manifest_objects(files: Sequence[str], namespace: str | None,
                     default_namespace: str) -> list[Message]:
    """Objects from -f files/dirs/"-", with the -n namespace (or the default) filled in
    where a namespaced object names none; CommandError when -n contradicts a manifest."""
    objects = []
    for item in load_manifests(list(files), namespace=namespace):
        obj = item.obj
        info = registry.for_message(obj)
        meta = obj.metadata  # type: ignore[attr-defined]
        if info.namespaced:
            if namespace and meta.namespace and meta.namespace != namespace:
                raise CommandError(
                    f"{item.source}[{item.index}]: the namespace from the provided object "
                    f"{meta.namespace!r} does not match the namespace {namespace!r}; you "
                    "must pass '--namespace' to perform this operation")
            meta.namespace = meta.namespace or namespace or default_namespace
        objects.append(obj)
    return objects
