"""`BaseProducer`: what `Producer` and `AsyncProducer` share, none of it awaiting.

Both listen for results on one background `ResultListener` (a thread with one pub/sub
connection), so the asyncio producer resolves its awaitables from the same machinery.

A producer dropped without being closed is closed when it is garbage-collected: its
listener thread refers to none of it, so nothing else would ever stop that thread.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..config import check_int, check_queue_name, resolve_redis_url
from ..errors import ConfigError, ShuttingDown
from ..store import MAX_CONNECTIONS, QueueStore
from ..wire import DEFAULT_MAX_PAYLOAD_BYTES, Signer
from .callbacks import CallbackRunner
from .listener import ResultListener
from .submission import Options, Task, build_task, build_tasks

__all__ = ["BaseProducer", "check_spread"]

# The listener's own connections: its pub/sub one and one for the reads it makes. Only
# its thread uses them, so however busy the callers' pool, no result waits for it.
_LISTENER_CONNECTIONS = 2


def check_spread(queue: str, served: int | None, used: int) -> None:
    """Raise `ConfigError` unless a producer spreading ``queue`` over ``used`` sub-queues
    queues where the daemons, which serve it spread over ``served``, take tasks."""
    if served is not None and served != used:
        raise ConfigError(
            f"queue {queue!r} is served spread over {served} sub-queue(s) (tasker-worker "
            f"--spread {served}) and this producer spreads it over {used}: use the same "
            + ("number (SpreadProducer(..., spread=N))" if served > 1 else "number")
            + ", or its tasks wait where no daemon serves them"
        )


class BaseProducer:
    def __init__(
        self,
        redis_url: str | None = None,
        queue: str = "default",
        *,
        connect_timeout: float = 5.0,
        task_timeout: float | None = None,
        secret: str | bytes | None = None,
        previous_secrets: Sequence[str | bytes] | None = None,
        allow_unsigned: bool = False,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        max_connections: int = MAX_CONNECTIONS,
        wait_replicas: int = 0,
    ) -> None:
        """``redis_url`` None means ``$TASKER_REDIS_URL``; ``task_timeout`` (seconds) is
        the default deadline of every task queued here (None: the workers' own);
        ``secret`` (default ``$TASKER_SECRET``) signs tasks and verifies results, results
        signed with one of ``previous_secrets`` (default ``$TASKER_SECRET_PREVIOUS``) are
        accepted too (a rotation), and ``allow_unsigned`` permits unsigned frames (only
        where nobody else can write to Redis);
        a task larger than ``max_payload_bytes`` is refused before it is written;
        calls use at most ``max_connections`` connections at once (more wait their turn),
        and the result listener two of its own; with ``wait_replicas`` a task counts as
        queued once that many replicas have it (`NotReplicated` if fewer confirm within
        ``connect_timeout``)."""
        url = resolve_redis_url(redis_url)
        if url is None:
            raise ConfigError(
                "redis_url is required for a Producer (or set $TASKER_REDIS_URL); "
                "a TaskManager can start a local server instead"
            )
        self.queue = check_queue_name(queue)
        self._task_timeout = task_timeout
        check_int("max_payload_bytes", max_payload_bytes, 1)
        check_int("max_connections", max_connections, 1)
        check_int("wait_replicas", wait_replicas, 0)
        self._wait_replicas = wait_replicas
        self._max_payload_bytes = max_payload_bytes
        self._max_connections = max_connections
        self._signer = Signer.from_settings(
            secret, allow_unsigned, previous_secrets, queue=self.queue
        )
        self._connect_timeout = connect_timeout
        self._store = QueueStore(url, self.queue, connect_timeout, max_connections,
                                 wait_replicas=wait_replicas)  # fmt: skip
        self._callbacks = CallbackRunner()
        self._held = _Held(self._store, self._callbacks)
        self._release = weakref.finalize(self, self._held.close)
        self._release.atexit = False  # the process ends: the system frees it all
        self._lock = threading.Lock()
        self._closed = False
        #: The daemons serve this queue as it is, not spread (checked on first use).
        self._spread_checked = False

    @property
    def redis_url(self) -> str:
        return self._store.url

    def _options(self, options: Options) -> Options:
        timeout = self._task_timeout if options.timeout is None else options.timeout
        return Options(options.priority, options.once, timeout, self._max_payload_bytes)

    def _task(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Options,
        reply_to: str | None,
    ) -> Task:
        return build_task(fn, args, kwargs, self._options(options), reply_to, self._signer)

    def _tasks(
        self, fn: Callable[..., Any], calls: Iterable[Sequence[Any]], priority: bool
    ) -> list[Task]:
        return build_tasks(fn, [(a, {}) for a in calls], self._options(Options(priority)),
                           None, self._signer)  # fmt: skip

    def _spread_seen(self, served: int | None) -> None:
        check_spread(self.queue, served, 1)
        self._spread_checked = True

    def _check_open(self) -> None:
        if self._closed:
            raise ShuttingDown("producer is closed")

    def _ensure_listener(self) -> ResultListener:
        with self._lock:
            self._check_open()
            if self._held.listener is None:
                store = QueueStore(self.redis_url, self.queue, self._connect_timeout,
                                   _LISTENER_CONNECTIONS)  # fmt: skip
                self._held.listener = ResultListener(store, self._signer)
            return self._held.listener

    def _close_sync(self) -> bool:
        """Mark closed, fail every waiting call, and stop the listener, the callback
        threads and the store (this blocks: up to a few seconds); False if already
        closed."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        self._release()
        return True


class _Held:
    """What a producer holds open, apart from it, so that its finalizer can close it."""

    def __init__(self, store: QueueStore, callbacks: CallbackRunner) -> None:
        self.store = store
        self.callbacks = callbacks
        self.listener: ResultListener | None = None

    def close(self) -> None:
        if self.listener is not None:
            self.listener.fail_all(lambda _id: ShuttingDown("producer closed"))
            self.listener.close()
        self.callbacks.close()
        self.store.close()
