"""Shipping task callables with cloudpickle, without paying for it on every task.

Producer side: a function importable by name pickles to a reference that never changes,
so its bytes are cached per function object. Lambdas and closures pickle by value, with
what they capture at that moment; they are cached by their content (code, defaults,
captured values and the globals they may read) when all of that is immutable, and pickled
again on each call otherwise, since a cache would hand workers stale captures.

Worker side: the unpickled callable is cached by the pickled bytes themselves (their
content), so a worker unpickles each distinct callable once.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle

from ..errors import SerializationError

__all__ = ["CallableCache", "dumps_callable"]

_by_reference: weakref.WeakKeyDictionary[Callable[..., Any], bytes] = weakref.WeakKeyDictionary()
_by_content: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
_by_content_lock = threading.Lock()
_BY_CONTENT_CAPACITY = 1024
_IMMUTABLE = frozenset({int, float, complex, str, bytes, bool, type(None), range})


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


def _frozen(value: object) -> bool:
    """True if pickling ``value`` gives the same bytes whenever it is pickled again."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return True
    if kind is tuple or kind is frozenset:
        return all(_frozen(v) for v in value)  # type: ignore[attr-defined]
    if isinstance(value, types.ModuleType):
        return True  # pickled by reference
    return isinstance(value, types.FunctionType | type) and _importable(value)


def _global_names(code: types.CodeType) -> Iterator[str]:
    """Every name the code (and code nested in it) may look up as a global: a superset,
    since ``co_names`` also holds attribute names."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _global_names(const)


def _content_key(fn: Callable[..., Any]) -> tuple[Any, ...] | None:
    """What a by-value pickle of ``fn`` is made of, if all of it is immutable, else None."""
    if type(fn) is not types.FunctionType or fn.__dict__:
        return None
    try:
        captured = tuple(cell.cell_contents for cell in fn.__closure__ or ())
    except ValueError:  # an empty cell
        return None
    kwdefaults = tuple(sorted((fn.__kwdefaults__ or {}).items()))
    annotations = tuple(fn.__annotations__.items())
    names = set(_global_names(fn.__code__))
    read = tuple((n, fn.__globals__[n]) for n in sorted(names) if n in fn.__globals__)
    parts = (fn.__defaults__ or (), kwdefaults, annotations, captured, read)
    if not _frozen(parts):
        return None
    return (fn.__module__, fn.__qualname__, fn.__doc__, fn.__code__, *parts)


def dumps_callable(fn: Callable[..., Any]) -> bytes:
    """Pickle ``fn`` for a worker; raises `SerializationError` before anything is sent."""
    if not callable(fn):
        raise SerializationError(f"a task must be callable, got {type(fn).__qualname__}")
    try:
        return _by_reference[fn]
    except (KeyError, TypeError):
        pass
    importable = _importable(fn)
    key = None if importable else _content_key(fn)
    if key is not None:
        with _by_content_lock:
            cached = _by_content.get(key)
            if cached is not None:
                _by_content.move_to_end(key)
                return cached
    try:
        data: bytes = cloudpickle.dumps(fn)
    except Exception as exc:
        raise SerializationError(
            f"cannot pickle task {getattr(fn, '__qualname__', fn)!r}: {exc}"
        ) from exc
    if importable:
        # Builtins and partials cannot be weakly referenced: those are just not cached.
        with contextlib.suppress(TypeError):
            _by_reference[fn] = data
    elif key is not None:
        with _by_content_lock:
            _by_content[key] = data
            if len(_by_content) > _BY_CONTENT_CAPACITY:
                _by_content.popitem(last=False)
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
