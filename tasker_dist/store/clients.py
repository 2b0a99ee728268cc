"""Opening redis-py clients for each topology a URL names (one server, a Sentinel-watched
master, a Redis Cluster), threaded and asyncio, and what differs between them after.

The threaded clients never open more than ``max_connections`` connections (per node, on
a cluster): a caller finding all busy waits for one rather than failing. The asyncio
stores bound their calls themselves (see `AsyncQueueStore`).
"""

from __future__ import annotations

from typing import Any

import hiredis
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.connection import HiredisRespSerializer
from redis.retry import Retry

from ..redis_url import RedisTarget, Topology, parse_redis_url

__all__ = [
    "BLOCK_S",
    "HEALTH_CHECK_S",
    "MAX_CONNECTIONS",
    "AnyClient",
    "close",
    "close_async",
    "connect",
    "connect_async",
    "disconnect",
    "node_client",
]

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

AnyClient = redis.Redis | redis.cluster.RedisCluster
AnyAsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

# A cluster client retries a command itself after MOVED, ASK, TRYAGAIN, a refused
# connection or CLUSTERDOWN, refreshing its map of the slots meanwhile: a failover (a
# few seconds) is ridden out by the caller's own retries above this.
_CLUSTER_RETRY = Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3)


def _options(timeout: float, blocking: bool) -> dict[str, Any]:
    return {
        "socket_connect_timeout": timeout,
        # A command may not take longer than `timeout` to answer, except a blocking read,
        # which Redis answers after BLOCK_S at the latest.
        "socket_timeout": timeout + (BLOCK_S if blocking else 0.0),
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_S,
        **_IDENTITY,
    }


# redis-py's own retries nest (connect inside command) and multiply the timeout: `call`
# retries once instead, and only a dropped connection, never a timeout.
_NO_RETRY = {"retry": Retry(NoBackoff(), retries=0)}


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


class _SentinelBlockingPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """redis-py's Sentinel pool (connections go to whichever server the sentinels name
    master, and are dropped when that changes) with the blocking pool's wait for a free
    connection instead of its "Too many connections" error."""


def _credentials(target: RedisTarget) -> dict[str, Any]:
    return {"username": target.username, "password": target.password}


def connect(
    url: str | RedisTarget,
    timeout: float,
    *,
    blocking: bool = False,
    max_connections: int = MAX_CONNECTIONS,
) -> AnyClient:
    """A thread-safe client for ``url`` that opens connections lazily."""
    target = url if isinstance(url, RedisTarget) else parse_redis_url(url)
    options = {**_options(timeout, blocking), "max_connections": max_connections,
               "timeout": None}  # fmt: skip
    if target.topology is Topology.CLUSTER:
        (host, port), *others = target.nodes
        # Given a URL, redis-py builds each node's pool from our options (the blocking
        # pool among them); given only nodes, it passes the options to each node's client.
        return redis.cluster.RedisCluster(
            url=f"redis://{_host(host)}:{port}",
            startup_nodes=[redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                           for h, p in others],
            connection_pool_class=redis.BlockingConnectionPool, retry=_CLUSTER_RETRY,
            **_credentials(target), **options,
        )  # fmt: skip
    options.update(_NO_RETRY, command_packer=_Packer())
    if target.topology is Topology.SENTINEL:
        assert target.service is not None
        sentinels = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes), sentinel_kwargs=_sentinel_options(target, timeout)
        )
        client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
            target.service, connection_pool_class=_SentinelBlockingPool, db=target.db,
            **_credentials(target), **options,
        )  # fmt: skip
        return client
    pool = redis.BlockingConnectionPool.from_url(target.url, **options)
    return redis.Redis.from_pool(pool)


def connect_async(
    url: str | RedisTarget, timeout: float, *, max_connections: int
) -> AnyAsyncClient:
    """`connect` for asyncio; the caller keeps its calls under ``max_connections``."""
    target = url if isinstance(url, RedisTarget) else parse_redis_url(url)
    options = _options(timeout, False)
    if target.topology is Topology.CLUSTER:
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes],
            max_connections=max_connections,
            retry=redis.asyncio.retry.Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
            **_credentials(target), **options,
        )  # fmt: skip
    options.update(_NO_RETRY, max_connections=max_connections)
    if target.topology is Topology.SENTINEL:
        assert target.service is not None
        sentinels = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes), sentinel_kwargs=_sentinel_options(target, timeout)
        )
        client: redis.asyncio.Redis = sentinels.master_for(
            target.service, db=target.db, **_credentials(target), **options
        )
        return client
    pool = redis.asyncio.ConnectionPool.from_url(target.url, **options)
    return redis.asyncio.Redis.from_pool(pool)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host  # an IPv6 address


def _sentinel_options(target: RedisTarget, timeout: float) -> dict[str, Any]:
    return {
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        "password": target.sentinel_password,
        **_NO_RETRY,
    }


def node_client(client: AnyClient, key: str) -> redis.Redis:
    """The client of the one server that holds ``key`` (the cluster node that owns its
    slot, per the client's map), for commands about that server (INFO, CONFIG)."""
    if isinstance(client, redis.cluster.RedisCluster):
        node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
        return client.get_redis_connection(node)
    return client


def disconnect(client: AnyClient) -> None:
    """Close every connection of ``client``, also those in use (which then fail)."""
    if isinstance(client, redis.cluster.RedisCluster):
        client.disconnect_connection_pools()  # type: ignore[no-untyped-call]
    else:
        client.connection_pool.disconnect()


def close(client: AnyClient) -> None:
    """Close ``client``, and on Sentinel the connections it keeps to the sentinels (which
    closing the master's client leaves open)."""
    client.close()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    if manager is not None:
        for sentinel in manager.sentinels:
            sentinel.close()


async def close_async(client: AnyAsyncClient) -> None:
    """`close` for asyncio (connections left open warn once their loop is gone)."""
    await client.aclose()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    if manager is not None:
        await manager.aclose()
