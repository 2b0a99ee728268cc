"""Opening Redis clients, and turning redis-py errors into `RedisUnavailable`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import redis.asyncio
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .errors import RedisUnavailable

__all__ = ["connect", "connect_async", "redis_errors"]

# Blocking reads (BRPOP) last at most this long, so a stopping worker is never stuck.
BLOCK_S = 1.0


def _options(timeout: float, blocking: bool) -> dict[str, Any]:
    return {
        "socket_connect_timeout": timeout,
        # A command may not take longer than `timeout` to answer, except a blocking read,
        # which Redis answers after BLOCK_S at the latest.
        "socket_timeout": timeout + (BLOCK_S if blocking else 0.0),
        "socket_keepalive": True,
        "health_check_interval": 30,
        # A blocking read is not retried: `interrupt_wait` ends it by closing its socket.
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=0 if blocking else 2),
    }


def connect(url: str, timeout: float, *, blocking: bool = False) -> redis.Redis:
    """A thread-safe client (a connection pool) for ``url``; connects lazily."""
    return redis.Redis.from_url(url, **_options(timeout, blocking))


def connect_async(url: str, timeout: float) -> redis.asyncio.Redis:
    """An asyncio client for ``url``; connects lazily."""
    return redis.asyncio.Redis.from_url(url, **_options(timeout, False))


@contextmanager
def redis_errors(doing: str, url: str) -> Iterator[None]:
    """Re-raise any redis-py error inside the block as `RedisUnavailable`."""
    try:
        yield
    except redis.RedisError as exc:
        raise RedisUnavailable(f"{doing} failed on {_safe(url)}: {exc}") from exc
    except OSError as exc:
        raise RedisUnavailable(f"{doing} failed on {_safe(url)}: {exc}") from exc


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"
