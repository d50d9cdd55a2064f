"""After an ambiguous write was retried: did the first attempt take effect? Pure.

A create retried after a broken connection may meet AlreadyExists because the first attempt
did create the object. The SDK then reads the object and reports success only when it is
the object this client sent (same spec, labels and annotations after the same defaulting
the server applies, created no earlier than the first attempt minus the allowed clock
skew); otherwise it raises, because someone else's object holds the name.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message

from raftkube.objects.defaulting import apply_defaults

_NOT_SPEC = frozenset({"api_version", "kind", "metadata", "status"})


def content_bytes(obj: Message) -> bytes:
    """Deterministic bytes of everything but apiVersion, kind, metadata and status."""
    probe = type(obj)()
    probe.CopyFrom(obj)
    for name in _NOT_SPEC:
        if name in probe.DESCRIPTOR.fields_by_name:
            probe.ClearField(name)
    return probe.SerializeToString(deterministic=True)


def same_content(sent: Message, stored: Message) -> bool:
    """Whether `stored` holds what `sent` asked for: spec part, labels and annotations,
    comparing `sent` after the server's defaulting."""
    defaulted = apply_defaults(sent)
    meta_sent, meta_stored = defaulted.metadata, stored.metadata  # type: ignore[attr-defined]
    return (content_bytes(defaulted) == content_bytes(stored)
            and dict(meta_sent.labels) == dict(meta_stored.labels)
            and dict(meta_sent.annotations) == dict(meta_stored.annotations))


def parse_timestamp(text: str) -> float | None:
    """Seconds since the epoch for an RFC 3339 UTC timestamp; None when unparsable."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def created_by_us(sent: Message, stored: Message, first_attempt_at: float,
                  clock_skew: float) -> bool:
    """Whether `stored` is the object our (ambiguous) create made.

    `first_attempt_at` is our wall-clock time when the first attempt was sent;
    `clock_skew` the seconds the masters' clocks may lag ours. Creation timestamps have
    one-second resolution, so one more second is allowed.
    """
    created = parse_timestamp(stored.metadata.creation_timestamp)  # type: ignore[attr-defined]
    if created is None or created < first_attempt_at - clock_skew - 1.0:
        return False
    return same_content(sent, stored)


def update_applied(sent: Message, stored: Message) -> bool:
    """Whether `stored` already holds what an update sent (spec part, labels, annotations)."""
    return same_content(sent, stored)
