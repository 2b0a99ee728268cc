"""`Subscription`: one pub/sub connection, for the producers' result listener."""

from __future__ import annotations

from typing import Any, NamedTuple

import redis
import redis.client

from .connection import redis_errors

__all__ = ["Message", "Subscription"]


class Message(NamedTuple):
    """One pub/sub event: ``kind`` is "message" (``data`` was published on ``channel``)
    or "subscribe"/"unsubscribe" (Redis confirms a change, also after a reconnect)."""

    kind: str
    channel: str
    data: Any


class Subscription:
    """Subscribes and reads messages on a connection of ``client``'s pool; redis-py
    subscribes again by itself after a reconnect. Every failure is `RedisUnavailable`."""

    def __init__(self, client: redis.Redis, url: str) -> None:
        self._url = url
        self._pubsub = redis.client.PubSub(client.connection_pool)

    def subscribe(self, channel: str) -> None:
        with redis_errors("SUBSCRIBE", self._url):
            self._pubsub.subscribe(channel)

    def unsubscribe(self, channel: str) -> None:
        with redis_errors("UNSUBSCRIBE", self._url):
            self._pubsub.unsubscribe(channel)  # type: ignore[no-untyped-call]

    def get_message(self, timeout: float) -> Message | None:
        """The next message, or None after ``timeout`` seconds."""
        with redis_errors("reading pub/sub", self._url):
            message = self._pubsub.get_message(timeout=timeout)
        if message is None:
            return None
        channel = message["channel"].decode("utf-8", "surrogateescape")
        return Message(message["type"], channel, message["data"])

    def close(self) -> None:
        self._pubsub.close()
