"""Calling Redis: retrying a dropped connection once, and turning redis-py errors into
the errors of this package (`RedisUnavailable`, and what a topology problem is)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import redis
import redis.exceptions
import redis.sentinel

from ..errors import ConfigError, QueueFull, RedisFailover, RedisUnavailable
from ..redis_url import safe_url

__all__ = ["call", "call_async", "redis_errors"]

T = TypeVar("T")


@contextmanager
def redis_errors(doing: str, url: str) -> Iterator[None]:
    """Re-raise any redis-py error inside the block as `RedisUnavailable`: `QueueFull`
    when Redis is out of memory, `RedisFailover` when no master answers (a failover),
    and `ConfigError` when the URL names the wrong kind of server."""
    shown = safe_url(url)
    try:
        yield
    except redis.exceptions.OutOfMemoryError as exc:
        raise QueueFull(
            f"{doing} refused by {shown}: Redis is out of memory (maxmemory reached "
            "under maxmemory-policy noeviction); nothing was written. Workers keep draining "
            "the queue, which frees memory: retry later, or give Redis more memory"
        ) from exc
    except (redis.exceptions.MovedError, redis.exceptions.AskError) as exc:
        if url.startswith("redis+cluster://"):  # the client follows these itself
            raise RedisFailover(f"{doing} failed on {shown}: the cluster's slots kept "
                                f"moving ({exc})") from exc  # fmt: skip
        raise ConfigError(
            f"{doing}: {shown} is a node of a Redis Cluster (it sent the command to another "
            "node: MOVED): use redis+cluster://host:port[,host:port...]"
        ) from exc
    except redis.exceptions.ReadOnlyError as exc:
        raise RedisFailover(
            f"{doing} refused by {shown}: it is a read-only replica (READONLY). A failover "
            "made it one, or the URL names a replica: name the master, or use "
            "redis+sentinel://... to follow failovers"
        ) from exc
    except redis.sentinel.MasterNotFoundError as exc:
        raise RedisFailover(
            f"{doing} failed: no sentinel of {shown} named a reachable master for its "
            "service: a failover is under way, the sentinels are unreachable, or the "
            "service name is wrong"
        ) from exc
    except (redis.exceptions.ClusterError, redis.exceptions.SlotNotCoveredError) as exc:
        raise RedisFailover(
            f"{doing} failed on {shown}: the cluster cannot serve the queue's slot now "
            f"({exc}): a master failed and no replica has taken over yet"
        ) from exc
    except redis.exceptions.ResponseError as exc:
        if "unknown command 'SENTINEL'" in str(exc):
            raise ConfigError(
                f"{doing}: {shown} names a server that is not a Redis Sentinel (it has no "
                "SENTINEL command): for one server use redis://"
            ) from exc
        if "cluster support disabled" in str(exc):
            raise ConfigError(f"{doing}: {shown} is not a Redis Cluster node (cluster "
                              "support disabled): use redis:// or rediss://") from exc  # fmt: skip
        raise RedisUnavailable(f"{doing} failed on {shown}: {exc}") from exc
    except redis.RedisError as exc:
        raise RedisUnavailable(f"{doing} failed on {shown}: {exc}") from exc
    except redis.exceptions.RedisClusterException as exc:  # raised while mapping the slots
        if "not enabled" in str(exc) or "cluster support disabled" in str(exc):
            raise ConfigError(
                f"{doing}: {shown} names a server that is not a Redis Cluster node ({exc}): "
                "use redis:// or rediss://"
            ) from exc
        raise RedisUnavailable(f"{doing} failed on {shown}: {exc}") from exc
    except OSError as exc:
        raise RedisUnavailable(f"{doing} failed on {shown}: {exc}") from exc


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
