"""`ResourcePool`: idle resources kept for `TaskManager.run_task` (``resource_pool_size``)."""

from __future__ import annotations

import threading
from typing import Any

from .resources import ResourceHooks

__all__ = ["ResourcePool"]


class ResourcePool:
    """Resources are made on demand and up to ``size`` idle ones are kept for reuse."""

    def __init__(self, size: int, hooks: ResourceHooks) -> None:
        self._size = size
        self._hooks = hooks
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    def acquire(self) -> Any:
        """An idle resource, or a new one (``on_create`` errors reach the caller)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._hooks.create_once()

    def release(self, resource: Any, healthy: bool) -> None:
        """Keep a healthy resource if there is room, else destroy it."""
        with self._lock:
            if healthy and not self._closed and len(self._idle) < self._size:
                self._idle.append(resource)
                return
        self._hooks.destroy("run_task", resource)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for resource in idle:
            self._hooks.destroy("run_task", resource)
