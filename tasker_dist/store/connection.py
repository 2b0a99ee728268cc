"""Opening Redis clients, and turning redis-py errors into `RedisUnavailable`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import hiredis
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.connection import HiredisRespSerializer
from redis.retry import Retry

from ..errors import QueueFull, RedisUnavailable

__all__ = ["call", "call_async", "connect", "connect_async", "redis_errors"]

T = TypeVar("T")

try:
    from redis.driver_info import DriverInfo

    # What redis-py tells the server (CLIENT SETINFO) anyway; given once here, it does not
    # read its own version from the package metadata for every new connection (about
    # 1 ms each, several per worker process as it starts).
    _IDENTITY: dict[str, Any] = {"driver_info": DriverInfo(lib_version=redis.__version__)}
except ImportError:  # older redis-py reads its version once, at import
    _IDENTITY = {}

# Blocking reads (BRPOP) last at most this long, so a stopping worker is never stuck.
BLOCK_S = 1.0

# An idle connection is checked (PING) when next used after this long; a pub/sub
# connection waits at most this long, so that its check is made.
HEALTH_CHECK_S = 30

#: Connections a client opens at most, by default. Callers beyond that wait for one
#: rather than fail: each holds it for one command, bounded by the command timeout.
MAX_CONNECTIONS = 20


def _options(timeout: float, blocking: bool) -> dict[str, Any]:
    return {
        "socket_connect_timeout": timeout,
        # A command may not take longer than `timeout` to answer, except a blocking read,
        # which Redis answers after BLOCK_S at the latest.
        "socket_timeout": timeout + (BLOCK_S if blocking else 0.0),
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_S,
        # redis-py's own retries nest (connect inside command) and multiply the timeout:
        # `call` retries once instead, and only a dropped connection, never a timeout.
        "retry": Retry(NoBackoff(), retries=0),
        **_IDENTITY,
    }


class _Packer(HiredisRespSerializer):
    """redis-py's hiredis packer, without its per-argument pass for bytearray and
    memoryview (which hiredis refuses) unless it is needed: a worker's completion of 500
    tasks has some 4,500 arguments, and that pass cost about 0.6 us of CPU per task."""

    def pack(self, *args: Any) -> list[bytes]:
        first = args[0]
        if type(first) is str and " " not in first:  # else a "CONFIG GET": split it
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass  # e.g. a bytearray: converted below, or refused with a DataError
        return super().pack(*args)  # type: ignore[no-any-return]


def connect(
    url: str,
    timeout: float,
    *,
    blocking: bool = False,
    max_connections: int = MAX_CONNECTIONS,
) -> redis.Redis:
    """A thread-safe client for ``url`` that opens at most ``max_connections``
    connections, lazily: a caller finding all of them busy waits for one."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=None, command_packer=_Packer(),
        **_options(timeout, blocking),
    )  # fmt: skip
    return redis.Redis.from_pool(pool)


def connect_async(
    url: str, timeout: float, *, max_connections: int = MAX_CONNECTIONS
) -> redis.asyncio.Redis:
    """`connect` for asyncio."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=None, **_options(timeout, False)
    )
    return redis.asyncio.Redis.from_pool(pool)


@contextmanager
def redis_errors(doing: str, url: str) -> Iterator[None]:
    """Re-raise any redis-py error inside the block as `RedisUnavailable` (`QueueFull`
    when Redis is out of memory)."""
    try:
        yield
    except redis.exceptions.OutOfMemoryError as exc:
        raise QueueFull(
            f"{doing} refused by {_safe(url)}: Redis is out of memory (maxmemory reached "
            "under maxmemory-policy noeviction); nothing was written. Workers keep draining "
            "the queue, which frees memory: retry later, or give Redis more memory"
        ) from exc
    except redis.RedisError as exc:
        raise RedisUnavailable(f"{doing} failed on {_safe(url)}: {exc}") from exc
    except OSError as exc:
        raise RedisUnavailable(f"{doing} failed on {_safe(url)}: {exc}") from exc


def call(doing: str, url: str, fn: Callable[[], T], *, repeatable: bool = True) -> T:
    """Run one Redis operation; a dropped connection (a restart, an idle timeout) is
    retried once on a fresh one if the operation is ``repeatable``; anything else is
    `RedisUnavailable` at once."""
    with redis_errors(doing, url):
        try:
            return fn()
        except redis.ConnectionError:
            if not repeatable:
                raise
            return fn()


async def call_async(
    doing: str, url: str, fn: Callable[[], Awaitable[T]], *, repeatable: bool = True
) -> T:
    """`call` for asyncio."""
    with redis_errors(doing, url):
        try:
            return await fn()
        except redis.ConnectionError:
            if not repeatable:
                raise
            return await fn()


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
