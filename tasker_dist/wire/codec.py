"""Values on the wire: msgpack, with cloudpickle only for what msgpack cannot carry.

Types are kept exactly: tuples stay tuples, ints beyond 64 bits, sets, dataclasses and any
other object travel as cloudpickle inside a msgpack extension, so a task sees equal values
of the same types as the caller passed. Two exceptions: ``bytearray`` and ``memoryview``
arrive as ``bytes`` (msgpack packs them natively), and extension codes 1 and 2 are ours
(a caller's own ``msgpack.ExtType`` with another code comes back as it went).
"""

from __future__ import annotations

from typing import Any

import cloudpickle
import msgpack

from ..errors import SerializationError

__all__ = ["pack", "unpack"]

_EXT_PICKLE = 1
_EXT_TUPLE = 2


def _default(obj: object) -> msgpack.ExtType:
    if type(obj) is tuple:
        return msgpack.ExtType(_EXT_TUPLE, pack(list(obj)))
    try:
        return msgpack.ExtType(_EXT_PICKLE, cloudpickle.dumps(obj))
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize {type(obj).__qualname__} value {obj!r:.80}: {exc}"
        ) from exc


def _ext_hook(code: int, data: bytes) -> object:
    if code == _EXT_TUPLE:
        return tuple(unpack(data))
    if code == _EXT_PICKLE:
        return cloudpickle.loads(data)
    return msgpack.ExtType(code, data)


def pack(obj: object) -> bytes:
    """Serialize ``obj`` (strict types, so subclasses and tuples keep their type)."""
    try:
        return msgpack.packb(obj, use_bin_type=True, strict_types=True, default=_default)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"cannot serialize value {obj!r:.80}: {exc}") from exc


def unpack(data: bytes) -> Any:
    """Inverse of `pack`. Raises `SerializationError` for bytes it cannot read."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext_hook)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"cannot deserialize value: {exc}") from exc
