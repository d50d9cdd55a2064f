"""Pure rules for how a stored object changes on create, update, status update and delete.

Every function takes the objects and the values that vary (time, uid) as arguments and
returns a new message; inputs are never mutated. The API server decides with these, then
commits the result with a compare-and-swap on the store.

Vocabulary: an object's *spec part* is every top-level field except `api_version`, `kind`,
`metadata` and `status` (for Deployment that is `spec`; for ConfigMap it is `data`,
`binary_data`, `immutable`; for Endpoints `subsets`). `metadata.generation` counts changes of
the spec part only.
"""

from __future__ import annotations

from google.protobuf.message import Message

_NOT_SPEC = frozenset({"api_version", "kind", "metadata", "status"})
_SERVER_OWNED_META = (
    "uid",
    "creation_timestamp",
    "generation",
    "resource_version",
    "deletion_timestamp",
    "deletion_grace_period_seconds",
)


def spec_fields(obj: Message) -> list[str]:
    """Names of the top-level fields that make up the object's spec part."""
    return [f.name for f in obj.DESCRIPTOR.fields if f.name not in _NOT_SPEC]


def spec_bytes(obj: Message) -> bytes:
    """A deterministic encoding of the spec part, for change detection."""
    probe = type(obj)()
    for name in spec_fields(obj):
        field = obj.DESCRIPTOR.fields_by_name[name]
        if field.is_repeated:
            getattr(probe, name).MergeFrom(getattr(obj, name))
        elif field.message_type is not None:
            if obj.HasField(name):
                getattr(probe, name).CopyFrom(getattr(obj, name))
        elif field.has_presence:
            if obj.HasField(name):
                setattr(probe, name, getattr(obj, name))
        else:
            setattr(probe, name, getattr(obj, name))
    return probe.SerializeToString(deterministic=True)


def has_status(obj: Message) -> bool:
    return "status" in obj.DESCRIPTOR.fields_by_name


def prepare_create(obj: Message, *, uid: str, now: str, namespace: str | None) -> Message:
    """The object as first stored: server-owned metadata set, status kept as given.

    `namespace` is the namespace to store it in (None for cluster-scoped kinds, whose
    namespace is cleared). `generation` starts at 1; `resource_version` is left empty (the
    store's revision becomes it when read back).
    """
    out = type(obj)()
    out.CopyFrom(obj)
    meta = out.metadata  # type: ignore[attr-defined]
    for name in _SERVER_OWNED_META:
        meta.ClearField(name)
    meta.uid = uid
    meta.creation_timestamp = now
    meta.generation = 1
    meta.namespace = namespace or ""
    return out


def prepare_update(old: Message, new: Message) -> Message:
    """The object after a spec/metadata update of `old` to `new`.

    Identity and server-owned metadata come from `old`; status is kept from `old` (status is
    written only through the status subresource); `generation` moves by one only when the
    spec part changed.
    """
    out = type(new)()
    out.CopyFrom(new)
    meta, old_meta = out.metadata, old.metadata  # type: ignore[attr-defined]
    for name in (*_SERVER_OWNED_META, "name", "namespace"):
        _copy_field(old_meta, meta, name)
    if has_status(old):
        _copy_field(old, out, "status")
    if spec_bytes(old) != spec_bytes(out):
        meta.generation = old_meta.generation + 1
    return out


def prepare_status_update(old: Message, new: Message) -> Message:
    """`old` with its status replaced by `new`'s; everything else is kept from `old`."""
    out = type(old)()
    out.CopyFrom(old)
    _copy_field(new, out, "status")
    return out


def mark_for_deletion(obj: Message, *, now: str, grace_seconds: int) -> Message:
    """The object with deletionTimestamp set (the first call wins; later calls keep it)."""
    out = type(obj)()
    out.CopyFrom(obj)
    meta = out.metadata  # type: ignore[attr-defined]
    if not meta.deletion_timestamp:
        meta.deletion_timestamp = now
        meta.deletion_grace_period_seconds = grace_seconds
    return out


def _copy_field(source: Message, target: Message, name: str) -> None:
    field = source.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        target.ClearField(name)
        getattr(target, name).MergeFrom(getattr(source, name))
    elif field.message_type is not None:
        if source.HasField(name):
            getattr(target, name).CopyFrom(getattr(source, name))
        else:
            target.ClearField(name)
    else:
        setattr(target, name, getattr(source, name))
