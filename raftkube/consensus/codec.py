"""A small deterministic binary encoding for replicated commands and snapshots.

Supported values: None, bool, int (signed 64-bit), bytes, str, list/tuple (decoded as
list) and dict with str keys (encoded with sorted keys). The same value always encodes
to the same bytes. Decoding never executes code (unlike pickle) and raises ValueError
on any malformed input.
"""

from __future__ import annotations

import struct
from typing import Any

_NONE, _FALSE, _TRUE, _INT, _BYTES, _STR, _LIST, _DICT = range(8)
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")


def encode(value: Any) -> bytes:
    """Encode `value`; raises TypeError for unsupported types."""
    out: list[bytes] = []
    _enc(value, out)
    return b"".join(out)


def _enc(value: Any, out: list[bytes]) -> None:
    if value is None:
        out.append(bytes((_NONE,)))
    elif value is True:
        out.append(bytes((_TRUE,)))
    elif value is False:
        out.append(bytes((_FALSE,)))
    elif isinstance(value, int):
        out.append(bytes((_INT,)) + _I64.pack(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        out.append(bytes((_BYTES,)) + _U32.pack(len(data)))
        out.append(data)
    elif isinstance(value, str):
        data = value.encode()
        out.append(bytes((_STR,)) + _U32.pack(len(data)))
        out.append(data)
    elif isinstance(value, list | tuple):
        out.append(bytes((_LIST,)) + _U32.pack(len(value)))
        for item in value:
            _enc(item, out)
    elif isinstance(value, dict):
        out.append(bytes((_DICT,)) + _U32.pack(len(value)))
        for key in sorted(value):
            if not isinstance(key, str):
                raise TypeError(f"codec: dict keys must be str, got {type(key).__name__}")
            _enc(key, out)
            _enc(value[key], out)
    else:
        raise TypeError(f"codec: cannot encode {type(value).__name__}")


def decode(data: bytes) -> Any:
    """Decode bytes produced by `encode`; raises ValueError on malformed input."""
    view = memoryview(data)
    try:
        value, pos = _dec(view, 0)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"codec: malformed data: {exc}") from exc
    if pos != len(view):
        raise ValueError(f"codec: {len(view) - pos} trailing bytes")
    return value


def _dec(view: memoryview, pos: int) -> tuple[Any, int]:
    tag = view[pos]
    pos += 1
    if tag == _NONE:
        return None, pos
    if tag == _TRUE:
        return True, pos
    if tag == _FALSE:
        return False, pos
    if tag == _INT:
        return _I64.unpack_from(view, pos)[0], pos + 8
    if tag in (_BYTES, _STR):
        (size,) = _U32.unpack_from(view, pos)
        pos += 4
        if pos + size > len(view):
            raise ValueError("codec: truncated string")
        raw = bytes(view[pos:pos + size])
        return (raw if tag == _BYTES else raw.decode()), pos + size
    if tag == _LIST:
        (count,) = _U32.unpack_from(view, pos)
        pos += 4
        items = []
        for _ in range(count):
            item, pos = _dec(view, pos)
            items.append(item)
        return items, pos
    if tag == _DICT:
        (count,) = _U32.unpack_from(view, pos)
        pos += 4
        result = {}
        for _ in range(count):
            key, pos = _dec(view, pos)
            if not isinstance(key, str):
                raise ValueError("codec: dict key is not a string")
            result[key], pos = _dec(view, pos)
        return result, pos
    raise ValueError(f"codec: unknown tag {tag}")
