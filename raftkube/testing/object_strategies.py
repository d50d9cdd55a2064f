"""Hypothesis strategies that build random objects of every kind (for property tests).

`random_objects()` draws a kind, then fills about a quarter of its fields at every level
with random scalars, maps and lists, so the objects reach deep into the schema. The
objects are type-correct protobuf messages but usually invalid as Kubernetes objects.
"""

from __future__ import annotations

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from raftkube.api.v1 import meta_pb2
from raftkube.objects import registry
from raftkube.objects.codec import int_or_string

_INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
}
_TEXT = st.text(max_size=12)


def _scalar_strategy(field: FieldDescriptor) -> st.SearchStrategy:
    if field.type == FieldDescriptor.TYPE_STRING:
        return _TEXT
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=16)
    low, high = _INT_BOUNDS[field.type]
    return st.integers(low, high)


@st.composite
def fill_message(draw, descriptor: Descriptor, depth: int = 0):
    message = message_factory.GetMessageClass(descriptor)()
    if descriptor.full_name == meta_pb2.IntOrString.DESCRIPTOR.full_name:
        value = draw(st.one_of(st.integers(-(2**31), 2**31 - 1), _TEXT))
        message.CopyFrom(int_or_string(value))
        return message
    for field in descriptor.fields:
        if draw(st.integers(0, 3)) != 0:  # include about a quarter of the fields
            continue
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            value_field = field.message_type.fields_by_name["value"]
            keys = draw(st.lists(_TEXT, max_size=2, unique=True))
            target = getattr(message, field.name)
            for key in keys:
                if value_field.message_type is not None:
                    target[key].CopyFrom(draw(fill_message(value_field.message_type, depth + 1)))
                else:
                    target[key] = draw(_scalar_strategy(value_field))
        elif field.is_repeated:
            count = draw(st.integers(0, 2 if depth < 6 else 0))
            container = getattr(message, field.name)
            for _ in range(count):
                if field.message_type is not None:
                    container.add().CopyFrom(draw(fill_message(field.message_type, depth + 1)))
                else:
                    container.append(draw(_scalar_strategy(field)))
        elif field.message_type is not None:
            if depth < 8:
                getattr(message, field.name).CopyFrom(
                    draw(fill_message(field.message_type, depth + 1))
                )
                getattr(message, field.name).SetInParent()
        else:
            setattr(message, field.name, draw(_scalar_strategy(field)))
    return message


@st.composite
def random_objects(draw):
    info = draw(st.sampled_from(registry.all_kinds()))
    obj = draw(fill_message(info.message_class.DESCRIPTOR))
    obj.api_version = info.api_version
    obj.kind = info.kind
    return obj
