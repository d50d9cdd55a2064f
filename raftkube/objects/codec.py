"""Plain data (what YAML/JSON parse into) <-> protobuf messages, with Kubernetes rules.

Field names are the proto JSON names (lowerCamelCase, the Kubernetes names). Differences
from google.protobuf.json_format, all to look and behave like Kubernetes:

- errors carry the full field path and every error in an object is reported, not just the
  first; unknown fields are errors (never dropped), so are wrong types (a number where a
  string is expected must be quoted, as kubectl requires);
- `IntOrString` fields read and write as a plain scalar (`8080`, `http`, `"25%"`);
- `bytes` fields are base64 strings; a null value means "absent" (as Go's JSON does);
- output omits empty fields, orders fields by field number (apiVersion, kind, metadata,
  spec, status) and map entries by key.
"""

from __future__ import annotations

import base64
import binascii
import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from raftkube.api.v1 import meta_pb2
from raftkube.objects.errors import FieldError, ObjectInvalid

M = TypeVar("M", bound=Message)

INT_OR_STRING = meta_pb2.IntOrString.DESCRIPTOR.full_name

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _describe(value: Any) -> str:
    """Type and, for scalars, the value: `string '3'`, `integer 70000`, `object`."""
    name = _type_name(value)
    if isinstance(value, bool):
        return f"{name} {'true' if value else 'false'}"
    if isinstance(value, int | float | str):
        text = repr(value)
        return f"{name} {text[:40] + '...' if len(text) > 40 else text}"
    return name


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def decode(message_class: type[M], data: Any, path: str = "") -> M:
    """Build a `message_class` from parsed YAML/JSON data.

    Raise ObjectInvalid listing every problem (unknown field, wrong type, bad base64,
    out-of-range number) with its path, prefixed by `path`. Pure; never partially returns.
    """
    message, errors = decode_partial(message_class, data, path)
    if errors:
        raise ObjectInvalid(errors)
    return message


def decode_partial(
    message_class: type[M], data: Any, path: str = ""
) -> tuple[M, list[FieldError]]:
    """Like decode, but return the message built from the fields that were valid together
    with the list of problems (empty when everything decoded). Lets callers validate the
    rest of a broken object so one run reports every problem. Pure."""
    message = message_class()
    errors: list[FieldError] = []
    _fill(message, data, path, errors)
    return message, errors


def _fill(message: Message, data: Any, path: str, errors: list[FieldError]) -> None:
    descriptor: Descriptor = message.DESCRIPTOR
    if not isinstance(data, Mapping):
        errors.append(FieldError(path, f"must be an object, got {_describe(data)}"))
        return
    by_json = {f.json_name: f for f in descriptor.fields}
    for key, value in data.items():
        if not isinstance(key, str):
            errors.append(FieldError(path, f"field name {key!r} must be a string"))
            continue
        field = by_json.get(key)
        field_path = _join(path, key)
        if field is None:
            close = difflib.get_close_matches(key, list(by_json), n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(FieldError(field_path, f"unknown field{hint}"))
            continue
        if value is None:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _fill_map(message, field, value, field_path, errors)
        elif field.is_repeated:
            if not isinstance(value, list):
                errors.append(FieldError(field_path, f"must be a list, got {_describe(value)}"))
                continue
            container = getattr(message, field.name)
            for i, item in enumerate(value):
                item_path = f"{field_path}[{i}]"
                if field.message_type is not None:
                    if item is None:
                        errors.append(FieldError(item_path, "must not be null"))
                        continue
                    _fill_message_field(container.add(), item, item_path, errors)
                else:
                    ok, scalar = _scalar(field, item, item_path, errors)
                    if ok:
                        container.append(scalar)
        elif field.message_type is not None:
            sub = getattr(message, field.name)
            sub.SetInParent()
            _fill_message_field(sub, value, field_path, errors)
        else:
            ok, scalar = _scalar(field, value, field_path, errors)
            if ok:
                setattr(message, field.name, scalar)


def _fill_message_field(sub: Message, value: Any, path: str, errors: list[FieldError]) -> None:
    if sub.DESCRIPTOR.full_name == INT_OR_STRING:
        _fill_int_or_string(sub, value, path, errors)
    else:
        _fill(sub, value, path, errors)


def _fill_int_or_string(sub: Message, value: Any, path: str, errors: list[FieldError]) -> None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        errors.append(FieldError(path, f"must be an integer or a string, got {_describe(value)}"))
    elif isinstance(value, int):
        low, high = _INT_RANGES[FieldDescriptor.TYPE_INT32]
        if low <= value <= high:
            sub.int_val = value
        else:
            errors.append(FieldError(path, f"{value} is out of range for a 32-bit integer"))
    else:
        sub.str_val = value


def _fill_map(
    message: Message, field: FieldDescriptor, value: Any, path: str, errors: list[FieldError]
) -> None:
    if not isinstance(value, Mapping):
        errors.append(FieldError(path, f"must be an object (a map), got {_describe(value)}"))
        return
    target = getattr(message, field.name)
    value_field = field.message_type.fields_by_name["value"]
    for key, item in value.items():
        if not isinstance(key, str):
            errors.append(FieldError(path, f"key {key!r} must be a string (quote it)"))
            continue
        item_path = f"{path}[{key}]"
        if item is None:
            errors.append(FieldError(item_path, "must not be null"))
            continue
        if value_field.message_type is not None:
            _fill_message_field(target[key], item, item_path, errors)
        else:
            ok, scalar = _scalar(value_field, item, item_path, errors)
            if ok:
                target[key] = scalar


def _scalar(
    field: FieldDescriptor, value: Any, path: str, errors: list[FieldError]
) -> tuple[bool, Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        if isinstance(value, str):
            return True, value
        hint = " (quote it)" if isinstance(value, int | float | bool) else ""
        errors.append(FieldError(path, f"must be a string, got {_describe(value)}{hint}"))
    elif kind == FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool):
            return True, value
        errors.append(FieldError(path, f"must be true or false, got {_describe(value)}"))
    elif kind in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(FieldError(path, f"must be an integer, got {_describe(value)}"))
        else:
            low, high = _INT_RANGES[kind]
            if low <= value <= high:
                return True, value
            errors.append(FieldError(path, f"{value} is out of range"))
    elif kind in _FLOATS:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value)
        errors.append(FieldError(path, f"must be a number, got {_describe(value)}"))
    elif kind == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            errors.append(FieldError(path, f"must be a base64 string, got {_describe(value)}"))
        else:
            try:
                compact = "".join(value.split())
                return True, base64.b64decode(compact.encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError, ValueError):
                errors.append(FieldError(path, "is not valid base64 data"))
    elif kind == FieldDescriptor.TYPE_ENUM:
        names = [v.name for v in field.enum_type.values]
        if isinstance(value, str) and value in names:
            return True, field.enum_type.values_by_name[value].number
        errors.append(FieldError(path, f"must be one of {', '.join(names)}"))
    else:  # pragma: no cover - every proto scalar type is handled above
        errors.append(FieldError(path, f"unsupported field type {kind}"))
    return False, None


def encode(message: Message) -> dict[str, Any]:
    """Plain data for `message`: only set fields, in field-number order.

    Scalars equal to their zero value are omitted (proto3 has no other way to tell them
    apart), except `optional` fields, which appear whenever set. Sub-messages appear when
    present, even empty (`emptyDir: {}`). IntOrString becomes an int or a str. Pure.
    """
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        out[field.json_name] = _encode_value(field, value)
    return out


def _encode_value(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {k: _encode_single(value_field, value[k]) for k in sorted(value)}
    if field.is_repeated:
        return [_encode_single(field, item) for item in value]
    return _encode_single(field, value)


def _encode_single(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None:
        if field.message_type.full_name == INT_OR_STRING:
            return int_or_string_value(value)
        return encode(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    return value


def int_or_string_value(value: meta_pb2.IntOrString) -> int | str:
    """The plain value of an IntOrString: its string if set, else its integer (0 if empty)."""
    if value.WhichOneof("value") == "str_val":
        return value.str_val
    return value.int_val


def int_or_string(value: int | str) -> meta_pb2.IntOrString:
    """An IntOrString holding `value`."""
    if isinstance(value, str):
        return meta_pb2.IntOrString(str_val=value)
    return meta_pb2.IntOrString(int_val=value)
