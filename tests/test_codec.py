"""`codec`: values cross the wire with their exact types (SPEC §3)."""

from __future__ import annotations

import collections
import dataclasses
import decimal
import enum
import fractions
import threading
from typing import Any, NamedTuple

import msgpack
import pytest

from tasker_dist.errors import SerializationError, TaskerError
from tasker_dist.wire.codec import pack, unpack


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: tuple[int, int]


@dataclasses.dataclass
class Box:
    items: list[Any]
    label: str = "box"


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


class Pair(NamedTuple):
    left: int
    right: str


def same(a: object, b: object) -> bool:
    """Equal and of exactly the same types, recursively through containers."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        if list(a.keys()) != list(b.keys()):
            return False
        return all(same(ka, kb) and same(a[ka], b[kb]) for ka, kb in zip(a, b, strict=True))
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def roundtrip(value: object) -> Any:
    data = pack(value)
    assert isinstance(data, bytes)
    return unpack(data)


VALUES: list[object] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    0.0,
    -2.5,
    "",
    "text",
    "caf\u00e9 \u2603",
    b"",
    b"\x00\xff bytes",
    2**63,
    2**64,
    -(2**63) - 1,
    10**40,
    -(10**40),
    (),
    (1,),
    (1, "a", b"b", None),
    [1, (2, 3), [4, (5, (6,))]],
    {(1, 2): "tuple key", "s": (3,)},
    {1: "int key", b"b": "bytes key", "1": "str key"},
    {("nested", (1, 2)): [(), ((),)]},
    {1, 2, 3},
    frozenset({"a", "b"}),
    [{1, 2}, frozenset({(1, 2)})],
    Point(1, (2, 3)),
    Box([(1, 2), {"k": (3,)}]),
    Color.GREEN,
    Pair(1, "x"),
    collections.OrderedDict([("b", 1), ("a", 2)]),
    collections.Counter("hello"),
    decimal.Decimal("1.10"),
    fractions.Fraction(1, 3),
    complex(1, 2),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_roundtrip_keeps_value_and_types(value: object) -> None:
    assert same(roundtrip(value), value)


def test_tuples_stay_tuples_in_lists_and_dict_keys() -> None:
    value = {"args": [(1, 2), [(3,)]], (4, (5,)): {"inner": ((),)}}
    back = roundtrip(value)
    assert type(back["args"][0]) is tuple
    assert type(back["args"][1]) is list
    assert type(back["args"][1][0]) is tuple
    key = next(k for k in back if k != "args")
    assert key == (4, (5,))
    assert type(key) is tuple
    assert type(key[1]) is tuple
    assert type(back[key]["inner"][0]) is tuple


def test_bytes_and_str_are_not_confused() -> None:
    back = roundtrip([b"abc", "abc", {b"k": "v", "k": b"v"}])
    assert back == [b"abc", "abc", {b"k": "v", "k": b"v"}]
    assert type(back[0]) is bytes
    assert type(back[1]) is str
    assert type(back[2][b"k"]) is str
    assert type(back[2]["k"]) is bytes


def test_bool_int_float_are_not_confused() -> None:
    back = roundtrip([True, 1, 1.0, False, 0, 0.0, None])
    assert [type(v) for v in back] == [bool, int, float, bool, int, float, type(None)]


def test_big_ints_keep_every_digit() -> None:
    values = [2**64 + 1, -(2**70) + 3, 3**200]
    back = roundtrip(values)
    assert back == values
    assert all(type(v) is int for v in back)


def test_dataclass_fields_keep_types() -> None:
    back = roundtrip(Box([(1, 2)], label="x"))
    assert isinstance(back, Box)
    assert back == Box([(1, 2)], label="x")
    assert type(back.items[0]) is tuple


def test_plain_values_are_msgpack_not_pickle() -> None:
    """Plain data is readable by any msgpack client (no pickle inside)."""
    data = pack({"a": [1, "x", b"y"]})
    assert msgpack.unpackb(data, raw=False) == {"a": [1, "x", b"y"]}


class Unpicklable:
    def __init__(self) -> None:
        self.lock = threading.Lock()


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (threading.Lock(), "lock"),
        (Unpicklable(), "Unpicklable"),
        ((i for i in range(3)), "generator"),
    ],
)
def test_unserializable_value_names_its_type(value: object, type_name: str) -> None:
    with pytest.raises(SerializationError, match=type_name) as info:
        pack(value)
    assert isinstance(info.value, TaskerError)


def test_unserializable_value_deep_inside_containers_names_its_type() -> None:
    with pytest.raises(SerializationError, match="Unpicklable"):
        pack({"k": [(1, Unpicklable())]})


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x92\x01", b"\x93\x01\x02", b"\xd9\x05ab"],
    ids=["empty", "never-used", "truncated-array", "truncated-array-2", "truncated-str"],
)
def test_unpack_garbage_raises_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError, match="cannot deserialize"):
        unpack(data)


def test_unpack_bad_pickle_raises_serialization_error() -> None:
    data = msgpack.packb(msgpack.ExtType(1, b"not a pickle"))
    with pytest.raises(SerializationError):
        unpack(data)


def test_bytearray_and_memoryview_arrive_as_bytes() -> None:
    """The one documented exception to exact types: msgpack packs these as bin."""
    back = roundtrip([bytearray(b"buf"), memoryview(b"view")])
    assert back == [b"buf", b"view"]
    assert all(type(b) is bytes for b in back)


def test_msgpack_ext_type_value_roundtrips() -> None:
    value = msgpack.ExtType(5, b"payload")
    assert same(roundtrip(value), value)
