"""Creating and destroying a slot's resource: retried with backoff, never silent."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from ..backoff import Backoff
from ..clock import Clock
from ..config import Config
from .async_loop import AsyncLoop

__all__ = ["ResourceHooks"]

log = logging.getLogger("tasker_dist.worker")

_FIRST_DELAY_S = 0.1
_MAX_DELAY_S = 5.0


class ResourceHooks:
    """Calls ``on_create``/``on_destroy`` (sync or async) for the slots of one worker."""

    def __init__(self, config: Config[Any], aloop: AsyncLoop, clock: Clock) -> None:
        self._config = config
        self._aloop = aloop
        self._clock = clock

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        value = fn(*args)
        if inspect.isawaitable(value):
            return self._aloop.run(value)
        return value

    def create(self, who: str, stopping: threading.Event) -> tuple[bool, Any]:
        """Make a resource, retrying with capped exponential backoff and jitter while
        ``on_create`` fails. Returns (False, None) if ``stopping`` is set first."""
        backoff = Backoff(_FIRST_DELAY_S, _MAX_DELAY_S)
        attempt = 1
        while not stopping.is_set():
            try:
                return True, self._call(self._config.on_create)
            except Exception:
                delay = backoff.next()
                log.exception(
                    "%s: on_create failed (attempt %d); retrying in %.1fs", who, attempt, delay
                )
            if self._clock.wait(stopping, delay):
                break
            attempt += 1
        return False, None

    def create_once(self) -> Any:
        """Make a resource now; an ``on_create`` error propagates to the caller."""
        return self._call(self._config.on_create)

    def destroy(self, who: str, resource: Any) -> None:
        """Release a resource; an ``on_destroy`` error is logged, never raised."""
        if self._config.on_destroy is None:
            return
        try:
            self._call(self._config.on_destroy, resource)
        except Exception:
            log.exception("%s: on_destroy failed", who)
