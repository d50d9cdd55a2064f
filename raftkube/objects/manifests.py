"""Manifests: YAML/JSON documents in files, directories or stdin <-> typed objects.

    sources (paths, "-") --read--> documents --decode--> objects --default--> --validate-->
                                                                   LoadedObject list
    objects --encode--> plain data --dump--> YAML (multi-document) or JSON (a v1 List)

Loading is all-or-nothing: `load_manifests` either returns every object or raises
ManifestError listing every problem, each naming source, 0-based document index, field
path and reason (`web.yaml[1]: spec.replicas: must be an integer, got string '3'`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml
from google.protobuf.message import Message

from raftkube.objects import registry
from raftkube.objects.codec import decode_partial, encode
from raftkube.objects.defaulting import apply_defaults
from raftkube.objects.errors import (
    FieldError,
    ManifestError,
    ManifestProblem,
    ObjectInvalid,
)
from raftkube.objects.validation import validate

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_SOURCE = "<stdin>"


@dataclass(frozen=True)
class LoadedObject:
    """One object from a manifest: where it came from and the typed message."""

    source: str
    index: int
    obj: Message
    item_path: str = ""  # "items[2]" for an object inside a v1 List document

    @property
    def location(self) -> str:
        """`file.yaml[1]`, or `file.json[0] items[2]` inside a List."""
        where = f"{self.source}[{self.index}]"
        return f"{where} {self.item_path}" if self.item_path else where

    @property
    def kind(self) -> registry.KindInfo:
        return registry.for_message(self.obj)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings and rejects duplicate keys."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable key: SafeLoader reports it itself
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_documents(text: str) -> list[Any]:
    """Every document in `text`: one JSON value, or YAML documents (empty ones skipped).

    Text starting with "{" or "[" that is valid JSON is read as JSON (exactly, with JSON's
    escapes); anything else as YAML. Raise yaml.YAMLError on bad YAML or a duplicate key,
    ValueError on a duplicate key in JSON.
    """
    if text.lstrip().startswith(("{", "[")):
        try:
            return [json.loads(text, object_pairs_hook=_no_duplicate_keys)]
        except json.JSONDecodeError:
            pass  # maybe YAML flow style; let the YAML parser judge
    return [doc for doc in yaml.load_all(text, Loader=_StrictLoader) if doc is not None]


def manifest_files(path: str) -> list[Path]:
    """`path` itself if a file; else every *.yaml/*.yml/*.json below it, recursively,
    in sorted order. Raise FileNotFoundError for a missing path."""
    root = Path(path)
    if root.is_dir():
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            found.extend(
                Path(dirpath) / f for f in sorted(filenames) if f.endswith(MANIFEST_SUFFIXES)
            )
        return sorted(found)
    if root.exists():
        return [root]
    raise FileNotFoundError(f"the path {path!r} does not exist")


def decode_document(document: Any) -> Message:
    """A typed object from one parsed document; raise ObjectInvalid listing every problem.

    The document must be an object with a supported apiVersion and kind. Does not default
    or validate.
    """
    obj, errors = _decode_document_partial(document)
    if errors:
        raise ObjectInvalid(errors)
    assert obj is not None
    return obj


def _decode_document_partial(document: Any) -> tuple[Message | None, list[FieldError]]:
    """(object from the valid fields or None when the kind is unusable, problems)."""
    if not isinstance(document, dict):
        return None, [FieldError("", "a manifest document must be an object")]
    kind, api_version = document.get("kind"), document.get("apiVersion")
    missing = [
        FieldError(name, "required field is missing")
        for name, value in (("apiVersion", api_version), ("kind", kind))
        if not value
    ]
    if missing:
        return None, missing
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return None, [FieldError("kind", "apiVersion and kind must be strings")]
    try:
        info = registry.by_api_version_kind(api_version, kind)
    except registry.UnknownKind as exc:
        path = "kind" if kind not in {k.kind for k in registry.all_kinds()} else "apiVersion"
        return None, [FieldError(path, str(exc))]
    return decode_partial(info.message_class, document)


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((f"{prefix}.", f"{prefix}["))


def check_document(
    document: Any, *, namespace: str | None = None, default: bool = True, check: bool = True
) -> tuple[Message | None, list[FieldError]]:
    """Decode, (namespace,) default and validate one document: (object, problems).

    The object is None when problems is non-empty. A field that failed to decode is
    reported once: validation errors about it (e.g. "required value") are left out, but
    every other field is still validated, so one run shows every problem.
    """
    obj, errors = _decode_document_partial(document)
    if obj is None:
        return None, errors
    try:
        if namespace is not None:
            _set_namespace(obj, namespace)
        if default:
            obj = apply_defaults(obj)
    except ObjectInvalid as exc:
        errors = errors + exc.errors
    if check:
        broken = [e.path for e in errors]
        errors = errors + [
            e for e in validate(obj) if not any(_is_under(e.path, b) for b in broken)
        ]
    return (None, errors) if errors else (obj, [])


def _expand_lists(document: Any) -> list[tuple[str, Any, str | None]]:
    """(path prefix, document, error) for each object a document holds: a `v1 List` (what
    `-o json` prints for several objects) holds its items, anything else is itself."""
    if not (
        isinstance(document, dict)
        and document.get("kind") == "List"
        and document.get("apiVersion") == "v1"
    ):
        return [("", document, None)]
    unknown = sorted(set(document) - {"apiVersion", "kind", "items", "metadata"})
    if unknown:
        return [(unknown[0], None, "unknown field")]
    items = document.get("items") or []
    if not isinstance(items, list):
        return [("items", None, "must be a list")]
    return [(f"items[{i}]", item, None) for i, item in enumerate(items)]


def load_text(
    text: str,
    source: str,
    *,
    namespace: str | None = None,
    default: bool = True,
    check: bool = True,
) -> list[LoadedObject]:
    """Load every object in one YAML/JSON text; all-or-nothing (raise ManifestError).

    `namespace` (like kubectl's -n) goes into namespaced objects that have none, and an
    object naming another namespace is an error; None leaves namespaces to defaulting
    ("default"). `default` applies Kubernetes defaulting; `check` validates after it.
    """
    objects, problems = _load_source(
        text, source, namespace=namespace, default=default, check=check
    )
    if check:
        problems.extend(_duplicates(objects))
    if problems:
        raise ManifestError(problems)
    return objects


def _load_source(
    text: str, source: str, *, namespace: str | None, default: bool, check: bool
) -> tuple[list[LoadedObject], list[ManifestProblem]]:
    try:
        documents = parse_documents(text)
    except (yaml.YAMLError, ValueError) as exc:
        syntax = "YAML" if isinstance(exc, yaml.YAMLError) else "JSON"
        reason = " ".join(str(exc).split())
        return [], [ManifestProblem(source, None, FieldError("", f"invalid {syntax}: {reason}"))]
    objects: list[LoadedObject] = []
    problems: list[ManifestProblem] = []
    for index, document in enumerate(documents):
        for prefix, item, error in _expand_lists(document):
            if error is not None:
                problems.append(ManifestProblem(source, index, FieldError(prefix, error)))
                continue
            obj, errors = check_document(
                item, namespace=namespace, default=default, check=check
            )
            if obj is None:
                problems.extend(ManifestProblem(source, index, e.under(prefix)) for e in errors)
                continue
            objects.append(LoadedObject(source, index, obj, prefix))
    return objects, problems


def _set_namespace(obj: Message, namespace: str) -> None:
    if not registry.for_message(obj).namespaced:
        return
    if not obj.metadata.namespace:
        obj.metadata.namespace = namespace
    elif obj.metadata.namespace != namespace:
        raise ObjectInvalid([FieldError(
            "metadata.namespace",
            f"the namespace from the provided object {obj.metadata.namespace!r} does not "
            f"match the namespace {namespace!r}; you must pass '--namespace="
            f"{obj.metadata.namespace}' to perform this operation",
        )])


def load_manifests(
    paths: Sequence[str],
    *,
    stdin: TextIO | None = None,
    namespace: str | None = None,
    default: bool = True,
    check: bool = True,
) -> list[LoadedObject]:
    """Load every object from files, directories (recursive, sorted) and "-" (stdin).

    `namespace`, `default`, `check`: as for load_text.

    All-or-nothing: raise ManifestError listing every problem in every source (unreadable
    files, bad YAML, unknown kinds or fields, wrong types, validation failures, and the
    same object given twice, unless `check` is False). Objects are returned in source
    order.
    """
    objects: list[LoadedObject] = []
    problems: list[ManifestProblem] = []
    for path in paths:
        for source, text in _read_sources(path, stdin, problems):
            loaded, found = _load_source(
                text, source, namespace=namespace, default=default, check=check
            )
            objects.extend(loaded)
            problems.extend(found)
    if check:
        problems.extend(_duplicates(objects))
    if not paths:
        problems.append(ManifestProblem("", None, FieldError("", "no manifest given")))
    if problems:
        raise ManifestError(problems)
    return objects


def _read_sources(
    path: str, stdin: TextIO | None, problems: list[ManifestProblem]
) -> Iterable[tuple[str, str]]:
    if path == "-":
        yield STDIN_SOURCE, (stdin or sys.stdin).read()
        return
    try:
        files = manifest_files(path)
    except FileNotFoundError as exc:
        problems.append(ManifestProblem(path, None, FieldError("", str(exc))))
        return
    if not files:
        problems.append(
            ManifestProblem(path, None, FieldError("", "no .yaml, .yml or .json files found"))
        )
    for file in files:
        try:
            yield str(file), file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(ManifestProblem(str(file), None, FieldError("", f"cannot read: {exc}")))


def _duplicates(objects: Sequence[LoadedObject]) -> list[ManifestProblem]:
    seen: dict[tuple[str, str, str], LoadedObject] = {}
    problems = []
    for item in objects:
        key = (item.obj.kind, item.obj.metadata.namespace, item.obj.metadata.name)
        first = seen.setdefault(key, item)
        if first is not item and item.obj.metadata.name:
            problems.append(
                ManifestProblem(
                    item.source, item.index,
                    FieldError(
                        "metadata.name",
                        f"{item.obj.kind} {item.obj.metadata.name!r} is also defined in "
                        f"{first.location}",
                    ).under(item.item_path),
                )
            )
    return problems


# ---- output --------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block-style YAML; lists indented under their key like kubectl prints them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def represent_mapping(self, tag: str, mapping: Any, flow_style: Any = None) -> yaml.Node:
        node = super().represent_mapping(tag, mapping, flow_style)
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.style == "|":
                key_node.style = '"'  # a block scalar cannot be a key
        return node


def _plain_char(ch: str) -> bool:
    """Characters YAML carries verbatim (everything else must be escaped)."""
    if ch in "\x85\u2028\u2029\ufeff":
        return False
    return "\x20" <= ch <= "\x7e" or "\xa0" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd"


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line text reads best as a literal block; anything with characters YAML would
    # normalise (\r, \x85, control characters) is double-quoted, where it is escaped.
    style = None
    if any(ch != "\n" and not _plain_char(ch) for ch in value):
        style = '"'
    elif "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_data(obj: Message) -> dict[str, Any]:
    """Plain data for one object (see codec.encode)."""
    return encode(obj)


def dump_yaml(objects: Sequence[Message]) -> str:
    """YAML text for `objects`: one document each, separated by `---`. Loads back unchanged."""
    return "---\n".join(
        yaml.dump(
            to_data(obj), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
            allow_unicode=True, width=100,
        )
        for obj in objects
    )


def dump_json(objects: Sequence[Message]) -> str:
    """JSON text: the object itself when there is one, else a `v1 List` of them."""
    if len(objects) == 1:
        data: dict[str, Any] = to_data(objects[0])
    else:
        data = {"apiVersion": "v1", "kind": "List", "items": [to_data(o) for o in objects]}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

