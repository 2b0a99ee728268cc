"""The one blocking network round trip a W5 task makes, standing in for the database or
HTTP call every real task makes: a GET on a Redis connection of the task's own process
(its own pool, not the task system's), to the server of $BENCH_REDIS_URL. Every system's
app module calls it, synchronously, also from ``async def`` tasks (as a blocking driver
would); the harness subtracts these GETs from the Redis commands it counts per task."""

from __future__ import annotations

import os
import threading

import redis

__all__ = ["IO_KEY", "one_round_trip"]

IO_KEY = "bench:io"

_client: redis.Redis | None = None
_lock = threading.Lock()


def one_round_trip() -> None:
    global _client  # one client per process, made by its first task
    if _client is None:
        with _lock:
            if _client is None:
                _client = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://"))
    _client.get(IO_KEY)
