"""`Subscription`: one pub/sub connection, for the producers' result listener."""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any, NamedTuple

import redis
import redis.client

from .connection import HEALTH_CHECK_S, redis_errors

__all__ = ["Message", "Subscription"]


class Message(NamedTuple):
    """One pub/sub event: ``kind`` is "message" (``data`` was published on ``channel``)
    or "subscribe"/"unsubscribe" (Redis confirms a change, also after a reconnect)."""

    kind: str
    channel: str
    data: Any


class Subscription:
    """Subscribes and reads messages on a connection of ``client``'s pool; redis-py
    subscribes again by itself after a reconnect. Every failure is `RedisUnavailable`.

    redis-py's pub/sub object is not safe to share between threads, so one thread calls
    every method but `wake`, with which the others get its attention."""

    def __init__(self, client: redis.Redis, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._pubsub = redis.client.PubSub(client.connection_pool)
        # A socket pair rather than a pipe: pollable everywhere.
        self._wakeup, self._waker = socket.socketpair()
        self._wakeup.setblocking(False)
        self._waker.setblocking(False)

    def subscribe(self, *channels: str) -> None:
        with redis_errors("SUBSCRIBE", self._url):
            self._pubsub.subscribe(*channels)

    def unsubscribe(self, *channels: str) -> None:
        with redis_errors("UNSUBSCRIBE", self._url):
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
        with redis_errors("reading pub/sub", self._url):
            if not self._readable(wait, timeout):
                return None
            # Only partial data may be in: the rest of a large frame is read in time.
            message = self._pubsub.get_message(timeout=self._timeout)
        if message is None:
            return None
        channel = message["channel"].decode("utf-8", "surrogateescape")
        return Message(message["type"], channel, message["data"])

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
