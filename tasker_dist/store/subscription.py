"""`Subscription`: one pub/sub connection, for the producers' result listener.

On a Redis Cluster it uses sharded pub/sub (SSUBSCRIBE): every channel of a queue is
under the queue's hash tag, so one connection to the master of that slot hears them
all, and a publish costs only that shard (a plain PUBLISH is sent to every node)."""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator
from typing import Any, NamedTuple

import redis
import redis.client
import redis.cluster

from ..errors import RedisUnavailable
from .clients import HEALTH_CHECK_S, AnyClient, node_client
from .connection import redis_errors

__all__ = ["Message", "Subscription"]


class Message(NamedTuple):
    """One pub/sub event: ``kind`` is "message" (``data`` was published on ``channel``)
    or "subscribe"/"unsubscribe" (Redis confirms a change, also after a reconnect)."""

    kind: str
    channel: str
    data: Any


# Sharded pub/sub events, told as their plain names.
_PLAIN = {"smessage": "message", "ssubscribe": "subscribe", "sunsubscribe": "unsubscribe"}


class Subscription:
    """Subscribes and reads messages on a connection of ``client``'s pool (channels under
    the hash tag ``tag``); subscribes again by itself after a reconnect, on the master
    of the moment after a failover (Sentinel or cluster). Every failure is
    `RedisUnavailable`.

    redis-py's pub/sub object is not safe to share between threads, so one thread calls
    every method but `wake`, with which the others get its attention."""

    def __init__(self, client: AnyClient, url: str, timeout: float, tag: str) -> None:
        self._url = url
        self._timeout = timeout
        self._client = client
        self._tag = tag
        self._sharded = isinstance(client, redis.cluster.RedisCluster)
        self._pubsub = self._open()
        # The connection failed, or (sharded) Redis unsubscribed us: the slot moved.
        self._broken = False
        # What we are subscribed to, or mean to be (redis-py's own record misses a
        # subscription whose command failed, which must be made again).
        self._channels: set[str] = set()
        # Sharded only: channels we asked to leave, not yet confirmed.
        self._leaving: set[str] = set()
        # A socket pair rather than a pipe: pollable everywhere.
        self._wakeup, self._waker = socket.socketpair()
        self._wakeup.setblocking(False)
        self._waker.setblocking(False)

    def _open(self) -> redis.client.PubSub:
        return redis.client.PubSub(node_client(self._client, self._tag).connection_pool)

    def _reopen(self) -> None:
        """A connection lost may mean a failover, and redis-py reconnects a pub/sub
        connection to the server it had (even a Sentinel-managed one: it re-asks the
        sentinels only for a connection taken from the pool), maybe dead for good. So
        take a new connection, on a cluster after mapping the slots again, and subscribe
        afresh there."""
        self._pubsub.close()
        if self._sharded:
            with redis_errors("mapping the cluster's slots", self._url):
                self._client.nodes_manager.initialize()  # type: ignore[union-attr]
        self._pubsub, self._leaving, self._broken = self._open(), set(), False
        if self._channels:
            self.subscribe(*sorted(self._channels))

    def _guarded(self, doing: str) -> contextlib.AbstractContextManager[None]:
        if self._broken:
            self._reopen()
        return _marking_broken(self, doing)

    def subscribe(self, *channels: str) -> None:
        with self._guarded("SUBSCRIBE"):
            self._channels.update(channels)
            if self._sharded:
                self._pubsub.ssubscribe(*channels)
            else:
                self._pubsub.subscribe(*channels)

    def unsubscribe(self, *channels: str) -> None:
        with self._guarded("UNSUBSCRIBE"):
            self._channels.difference_update(channels)
            if self._sharded:
                self._leaving.update(channels)
                self._pubsub.sunsubscribe(*channels)  # type: ignore[no-untyped-call]
            else:
                self._pubsub.unsubscribe(*channels)  # type: ignore[no-untyped-call]

    def wake(self) -> None:
        """Make `get_message` return None now, or the next call of it at once if none is
        waiting; from any thread."""
        # Full: a wake is pending anyway; closed: nobody is left to wake.
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")

    def get_message(self, *, wait: bool = True, timeout: float | None = None) -> Message | None:
        """The next message; None once woken, after ``timeout`` seconds if given, or when
        the connection is due for its health check (sent on the next call). Without
        ``wait``, None at once unless a message has arrived."""
        with self._guarded("reading pub/sub"):
            if not self._readable(wait, timeout):
                return None
            # Only partial data may be in: the rest of a large frame is read in time.
            message = self._pubsub.get_message(timeout=self._timeout)
        if message is None:
            return None
        channel = message["channel"].decode("utf-8", "surrogateescape")
        kind = _PLAIN.get(message["type"], message["type"])
        if message["type"] == "sunsubscribe":
            if channel not in self._leaving:  # Redis's doing: the slot is served elsewhere
                self._broken = True
                raise RedisUnavailable(f"pub/sub on {self._url}: the queue's slot moved")
            self._leaving.discard(channel)
        return Message(kind, channel, message["data"])

    def _readable(self, wait: bool, timeout: float | None) -> bool:
        """True once data can be read (without ``wait``: if it can be now), False on a
        wake or when the health check is due."""
        self._pubsub.check_health()  # a PING when due: its reply is then data to read
        connection = self._pubsub.connection
        assert connection is not None  # check_health raised otherwise
        if connection.can_read(timeout=0):  # also what redis-py has read and not parsed
            return True
        if not wait:
            return False
        # redis-py cannot wait for its socket and another at once: poll its socket here.
        sock = connection._sock
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.register(self._wakeup, select.POLLIN)
        limit = HEALTH_CHECK_S if timeout is None else min(timeout, HEALTH_CHECK_S)
        ready = {fd for fd, _ in poller.poll(limit * 1000)}
        if self._wakeup.fileno() in ready:
            with contextlib.suppress(BlockingIOError):
                while self._wakeup.recv(4096):
                    pass
        return sock.fileno() in ready

    def close(self) -> None:
        self._pubsub.close()
        self._wakeup.close()
        self._waker.close()


@contextlib.contextmanager
def _marking_broken(subscription: Subscription, doing: str) -> Iterator[None]:
    with redis_errors(doing, subscription._url):
        try:
            yield
        except (redis.RedisError, OSError):
            subscription._broken = True
            raise
