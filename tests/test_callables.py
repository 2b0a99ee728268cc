"""`callables`: shipping task functions with cloudpickle, and caching them on both sides."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import cloudpickle
import pytest

from tasker_dist.errors import SerializationError
from tasker_dist.wire.callables import CallableCache, dumps_callable


def module_level_task(ctx: object, resource: object, x: int) -> int:
    return x * 2


class Holder:
    @staticmethod
    def nested_task(x: int) -> int:
        return x + 1


def make_closure(box: dict[str, int]) -> Callable[[], int]:
    def closure() -> int:
        return box["value"]

    return closure


def test_importable_function_is_pickled_once() -> None:
    first = dumps_callable(module_level_task)
    second = dumps_callable(module_level_task)
    assert second is first
    assert cloudpickle.loads(first) is module_level_task


def test_importable_nested_qualname_is_pickled_once() -> None:
    assert dumps_callable(Holder.nested_task) is dumps_callable(Holder.nested_task)


def test_lambda_capturing_only_immutable_values_is_pickled_once() -> None:
    fn = lambda: 1  # noqa: E731
    assert dumps_callable(fn) is dumps_callable(fn)
    # a new lambda object per call, as in a loop, with the same content: same bytes
    made = [make_adder(5) for _ in range(2)]
    assert made[0] is not made[1]
    assert dumps_callable(made[0]) is dumps_callable(made[1])
    assert cloudpickle.loads(dumps_callable(make_adder(6)))(1) == 7


def test_lambda_capturing_mutable_state_is_repickled_each_call() -> None:
    box: list[int] = []
    fn = lambda: len(box)  # noqa: E731
    assert dumps_callable(fn) is not dumps_callable(fn)


MUTABLE_GLOBAL = {"n": 1}


def test_function_reading_a_mutable_global_sees_its_value_at_call_time() -> None:
    fn = lambda: MUTABLE_GLOBAL["n"]  # noqa: E731
    before = cloudpickle.loads(dumps_callable(fn))
    MUTABLE_GLOBAL["n"] = 2
    after = cloudpickle.loads(dumps_callable(fn))
    assert (before(), after()) == (1, 2)


def make_adder(n: int) -> Callable[[int], int]:
    return lambda x: x + n


def test_closure_sees_captured_value_at_call_time() -> None:
    box = {"value": 1}
    fn = make_closure(box)
    before = dumps_callable(fn)
    box["value"] = 2
    after = dumps_callable(fn)
    assert after is not before
    assert cloudpickle.loads(before)() == 1
    assert cloudpickle.loads(after)() == 2


def test_lambda_sees_captured_value_at_call_time() -> None:
    state = {"n": "old"}
    fn = lambda: state["n"]  # noqa: E731
    cache = CallableCache()
    before = cache.load(dumps_callable(fn))
    state["n"] = "new"
    after = cache.load(dumps_callable(fn))
    assert before() == "old"
    assert after() == "new"


def test_unpicklable_callable_raises_serialization_error() -> None:
    lock = threading.Lock()
    with pytest.raises(SerializationError, match="cannot pickle task"):
        dumps_callable(lambda: not lock.locked())


def test_non_callable_is_refused() -> None:
    with pytest.raises(SerializationError, match="must be callable, got int"):
        dumps_callable(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fn", "args", "expected"),
    [
        (len, ("abc",), 3),
        (functools.partial(module_level_task, None), (None, 4), 8),
        (print, ("",), None),
    ],
    ids=["builtin", "partial", "print"],
)
def test_callables_that_cannot_be_weakly_referenced_still_pickle(
    fn: Callable[..., Any], args: tuple[Any, ...], expected: object
) -> None:
    data = dumps_callable(fn)
    assert cloudpickle.loads(data)(*args) == expected
    assert dumps_callable(fn) == data


def test_cache_returns_same_object_for_same_bytes() -> None:
    data = dumps_callable(lambda x: x + 1)
    cache = CallableCache()
    first = cache.load(data)
    assert first(1) == 2
    assert cache.load(data) is first
    assert cache.load(bytes(bytearray(data))) is first  # equal content, another object


def test_cache_distinguishes_different_bytes() -> None:
    cache = CallableCache()
    a = cache.load(dumps_callable(lambda: "a"))
    b = cache.load(dumps_callable(lambda: "b"))
    assert a is not b
    assert (a(), b()) == ("a", "b")


def test_cache_evicts_least_recently_used() -> None:
    cache = CallableCache(capacity=2)
    da, db, dc = (dumps_callable(make_closure({"value": i})) for i in range(3))
    a = cache.load(da)
    b = cache.load(db)
    assert cache.load(da) is a  # a is now the most recent
    cache.load(dc)  # evicts b
    assert cache.load(da) is a
    assert cache.load(db) is not b


def test_cache_refuses_non_callables() -> None:
    cache = CallableCache()
    with pytest.raises(SerializationError, match="holds a dict, not a callable"):
        cache.load(cloudpickle.dumps({"a": 1}))


def test_cache_refuses_garbage() -> None:
    with pytest.raises(SerializationError, match="cannot unpickle"):
        CallableCache().load(b"\x80\x05garbage")
