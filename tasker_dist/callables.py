"""Shipping task callables with cloudpickle, without paying for it on every task.

Producer side: a function importable by name pickles to a reference that never changes,
so its bytes are cached per function object. Lambdas and closures pickle by value, with
the values they capture at that moment, so they are pickled on each call (a cache would
hand workers stale captures).

Worker side: the unpickled callable is cached by the pickled bytes themselves (their
content), so a worker unpickles each distinct callable once.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import cloudpickle

from .errors import SerializationError

__all__ = ["CallableCache", "dumps_callable"]

_by_reference: weakref.WeakKeyDictionary[Callable[..., Any], bytes] = weakref.WeakKeyDictionary()


def _importable(fn: Callable[..., Any]) -> bool:
    """True when pickling ``fn`` stores only its module and name (it is found by import)."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return False
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target is fn


def dumps_callable(fn: Callable[..., Any]) -> bytes:
    """Pickle ``fn`` for a worker; raises `SerializationError` before anything is sent."""
    if not callable(fn):
        raise SerializationError(f"a task must be callable, got {type(fn).__qualname__}")
    try:
        return _by_reference[fn]
    except (KeyError, TypeError):
        pass
    try:
        data: bytes = cloudpickle.dumps(fn)
    except Exception as exc:
        raise SerializationError(
            f"cannot pickle task {getattr(fn, '__qualname__', fn)!r}: {exc}"
        ) from exc
    if _importable(fn):
        # Builtins and partials cannot be weakly referenced: those are just not cached.
        with contextlib.suppress(TypeError):
            _by_reference[fn] = data
    return data


class CallableCache:
    """Bounded, thread-safe map from pickled bytes to the callable they hold."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._items: OrderedDict[bytes, Callable[..., Any]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, data: bytes) -> Callable[..., Any]:
        with self._lock:
            cached = self._items.get(data)
            if cached is not None:
                self._items.move_to_end(data)
                return cached
        try:
            obj: object = cloudpickle.loads(data)
        except Exception as exc:
            raise SerializationError(f"cannot unpickle task callable: {exc!r}") from exc
        if not callable(obj):
            raise SerializationError(
                f"task payload holds a {type(obj).__qualname__}, not a callable"
            )
        fn: Callable[..., Any] = obj
        with self._lock:
            self._items[data] = fn
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return fn
