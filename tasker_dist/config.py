"""`Config`: one dataclass for the in-process `TaskManager` and the `tasker-worker` daemon."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import ConfigError
from .redis_url import parse_redis_url
from .spread import MAX_SPREAD, sub_queues

__all__ = [
    "REDIS_URL_ENV",
    "Config",
    "check_int",
    "check_queue_name",
    "check_queues",
    "check_redis_url",
    "resolve_redis_url",
]

R = TypeVar("R")

REDIS_URL_ENV = "TASKER_REDIS_URL"

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


def check_queue_name(queue: object, field_name: str = "queue") -> str:
    """Return ``queue`` if it is a usable queue name, else raise `ConfigError`.

    Braces are refused because they would break the Redis Cluster hash tag.
    """
    if not isinstance(queue, str) or not _QUEUE_NAME.fullmatch(queue):
        raise ConfigError(
            f"{field_name} must be 1-128 characters of letters, digits, '_', '.', ':' or '-', "
            f"got {queue!r}"
        )
    return queue


def check_redis_url(url: object, field_name: str = "redis_url") -> str:
    """Return ``url`` if it is a Redis URL we can use (one server, Sentinel or Cluster),
    else raise `ConfigError` naming what is wrong."""
    return parse_redis_url(url, field_name).url


def resolve_redis_url(url: str | None) -> str | None:
    """The URL to use: the given one, else ``$TASKER_REDIS_URL``, else None (embedded)."""
    if url is not None:
        return check_redis_url(url)
    env = os.environ.get(REDIS_URL_ENV)
    return check_redis_url(env, REDIS_URL_ENV) if env else None


def check_int(name: str, value: object, minimum: int) -> None:
    """Raise `ConfigError` unless ``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_queues(queues: object, field_name: str = "queues") -> tuple[tuple[str, int | None], ...]:
    """``queues`` as (name, weight) pairs, the weight None where none was given; else raise
    `ConfigError` naming what is wrong (not a tuple of names and (name, weight) pairs, a
    bad name, a weight that is not an int >= 1, a queue listed twice)."""
    if isinstance(queues, str | bytes) or not isinstance(queues, Sequence):
        raise ConfigError(
            f"{field_name} must be a tuple of queue names or (name, weight) pairs, "
            f"got {queues!r:.80}"
        )
    parsed: list[tuple[str, int | None]] = []
    for i, entry in enumerate(queues):
        where = f"{field_name}[{i}]"
        weight: object = None
        if isinstance(entry, tuple) and len(entry) == 2:
            name = check_queue_name(entry[0], where)
            weight = entry[1]
            check_int(f"{where}: the weight of {name!r}", weight, 1)
        elif isinstance(entry, str):
            name = check_queue_name(entry, where)
        else:
            raise ConfigError(
                f"{where} must be a queue name or a (name, weight) pair, got {entry!r:.80}"
            )
        if any(name == seen for seen, _ in parsed):
            raise ConfigError(f"{field_name}: queue {name!r} is listed twice")
        parsed.append((name, weight if isinstance(weight, int) else None))
    return tuple(parsed)


# Durations go to Redis in whole milliseconds (PX), so they must be at least 1 ms, and
# at most ~31 years, far inside what PX and a float can hold.
_MIN_S = 0.001
_MAX_S = 1e9


def _check_seconds(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            if _MIN_S <= float(value) <= _MAX_S:
                return
        except OverflowError:
            pass
    raise ConfigError(
        f"{name} must be a number of seconds from {_MIN_S} to {_MAX_S:g}, got {value!r:.40}"
    )


def _check_callable(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise ConfigError(f"{name} must be callable, got {value!r}")


@dataclass(frozen=True)
class Config(Generic[R]):
    """How workers create, check and destroy their resources, and where tasks live.

    ``on_create`` makes one resource per worker slot (it may be ``async def``);
    ``on_destroy`` releases it when the slot ends. ``check_health(exc)`` returns False for
    an error that means the resource is broken: the slot then replaces its resource and the
    task is retried ahead of normal work, at most ``max_retries`` times (0: never).
    Slots burst from ``worker_count`` up to ``max_worker_count`` while the backlog grows,
    judged every ``burst_interval`` seconds. ``redis_url`` None means ``$TASKER_REDIS_URL``,
    or, for a `TaskManager`, a private local server started for it.

    A ``tasker-worker`` supervisor keeps renewing the lease of each of its worker
    processes while it lives, so one whose task holds the interpreter lock for minutes is
    not taken for dead; it replaces a process as hung when its heartbeat has not run for
    ``hung_after`` seconds and it used almost no CPU meanwhile (None: never).

    A task taken ``max_deliveries`` times without finishing (its worker process died each
    time) is not run again but quarantined in the failed store, which keeps the newest
    ``failed_limit`` entries.

    ``queues`` makes a worker serve several queues with the same slots and resources:
    names, served in the order given (a task of an earlier queue is always taken first),
    or (name, weight) pairs, served in a random order weighted by weight at each fetch
    (a name without a weight weighs 1), so that none starves. Empty (the default): the
    worker serves ``queue`` alone. ``queue`` is where a `TaskManager` queues its tasks.
    ``spread`` > 1 spreads each of them over that many sub-queues (``NAME:0``, ...; see
    `SpreadProducer`), which a worker serves in turn, each with the weight of its queue,
    so that one queue can use every master of a Redis Cluster.

    ``secret`` (default ``$TASKER_SECRET``) signs and verifies every payload; without one
    a worker runs nothing unless ``allow_unsigned`` says only trusted code can write to
    Redis. ``previous_secrets`` (default ``$TASKER_SECRET_PREVIOUS``, comma-separated)
    are also accepted when verifying, for a rotation without downtime. Neither appears
    in the repr.
    """

    on_create: Callable[[], R] | Callable[[], Awaitable[R]]
    on_destroy: Callable[[R], Any] | None = None
    worker_count: int = 1
    check_health: Callable[[BaseException], bool] | None = None
    max_retries: int = 3
    resource_pool_size: int | None = None
    max_worker_count: int | None = None
    burst_interval: float = 1.0
    queue: str = "default"
    redis_url: str | None = None
    result_ttl: float = 86400.0
    task_timeout: float | None = None
    heartbeat_interval: float = 1.0
    hung_after: float | None = 60.0
    kill_grace: float = 2.0
    connect_timeout: float = 5.0
    max_deliveries: int = 5
    failed_limit: int = 10_000
    secret: str | bytes | None = field(default=None, repr=False)
    previous_secrets: tuple[str | bytes, ...] | None = field(default=None, repr=False)
    allow_unsigned: bool = False
    max_payload_bytes: int = 10 * 1024 * 1024
    wait_replicas: int = 0
    queues: tuple[str | tuple[str, int], ...] = ()
    spread: int = 1

    def __post_init__(self) -> None:
        _check_callable("on_create", self.on_create, optional=False)
        _check_callable("on_destroy", self.on_destroy, optional=True)
        _check_callable("check_health", self.check_health, optional=True)
        check_int("worker_count", self.worker_count, 1)
        check_int("max_retries", self.max_retries, 0)
        if self.resource_pool_size is not None:
            check_int("resource_pool_size", self.resource_pool_size, 0)
        if self.max_worker_count is not None:
            check_int("max_worker_count", self.max_worker_count, 1)
            if self.max_worker_count < self.worker_count:
                raise ConfigError(
                    f"max_worker_count ({self.max_worker_count}) must be >= "
                    f"worker_count ({self.worker_count})"
                )
        _check_seconds("burst_interval", self.burst_interval)
        check_queue_name(self.queue)
        if self.redis_url is not None:
            check_redis_url(self.redis_url)
        _check_seconds("result_ttl", self.result_ttl)
        _check_seconds("task_timeout", self.task_timeout, optional=True)
        _check_seconds("heartbeat_interval", self.heartbeat_interval)
        _check_seconds("hung_after", self.hung_after, optional=True)
        _check_seconds("kill_grace", self.kill_grace)
        _check_seconds("connect_timeout", self.connect_timeout)
        # A heartbeat waiting on a silent Redis (two calls, each tried twice) beats its
        # pulse no more than this often: a process doing so must not look hung.
        quiet = 4 * self.connect_timeout + self.heartbeat_interval
        if self.hung_after is not None and self.hung_after <= quiet:
            raise ConfigError(
                f"hung_after ({self.hung_after:g} s) must be over 4 x connect_timeout + "
                f"heartbeat_interval ({quiet:g} s): a worker process waiting that long on "
                "a silent Redis is not hung"
            )
        check_int("max_deliveries", self.max_deliveries, 1)
        check_int("failed_limit", self.failed_limit, 1)
        if self.secret is not None and (
            not isinstance(self.secret, str | bytes) or len(self.secret) < 16
        ):
            raise ConfigError("secret must be a str or bytes of at least 16 characters")
        if self.previous_secrets is not None and (
            not isinstance(self.previous_secrets, tuple)
            or not all(isinstance(s, str | bytes) and len(s) >= 16 for s in self.previous_secrets)
        ):
            raise ConfigError(
                "previous_secrets must be a tuple of str or bytes of at least 16 characters"
            )
        check_int("max_payload_bytes", self.max_payload_bytes, 1)
        check_int("wait_replicas", self.wait_replicas, 0)
        if not isinstance(self.allow_unsigned, bool):
            raise ConfigError(f"allow_unsigned must be a bool, got {self.allow_unsigned!r}")
        check_queues(self.queues)
        object.__setattr__(self, "queues", tuple(self.queues))  # a list given: frozen as well
        check_int("spread", self.spread, 1)
        if self.spread > MAX_SPREAD:
            raise ConfigError(f"spread must be <= {MAX_SPREAD}, got {self.spread}")
        for name in self.served_queues:
            check_queue_name(name, f"a sub-queue of spread {self.spread}")

    @property
    def named_queues(self) -> tuple[str, ...]:
        """The queues a worker serves, as named: ``queues``, or ``queue`` alone."""
        return tuple(name for name, _ in check_queues(self.queues)) or (self.queue,)

    @property
    def served_queues(self) -> tuple[str, ...]:
        """`named_queues`, in the order given, each as its `spread` sub-queues."""
        return tuple(sub for name in self.named_queues for sub in sub_queues(name, self.spread))

    @property
    def queue_weights(self) -> tuple[int, ...] | None:
        """The weights of `served_queues` (1 where none was given; a sub-queue has its
        queue's), or None when none has one: then they are served in strict order."""
        parsed = check_queues(self.queues)
        if all(weight is None for _, weight in parsed):
            return None
        return tuple(weight or 1 for _, weight in parsed for _ in range(self.spread))

    @property
    def burst_limit(self) -> int:
        """The most slots a worker may run: ``max_worker_count``, or ``worker_count``."""
        return self.max_worker_count or self.worker_count

    @property
    def pool_size(self) -> int:
        """How many idle resources `run_task` keeps (``resource_pool_size``, default
        ``worker_count``, as in the Go original)."""
        if self.resource_pool_size is None:
            return self.worker_count
        return self.resource_pool_size
