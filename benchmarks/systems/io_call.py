"""What the workloads' tasks do besides their work, the same in every system's app.

`one_round_trip`: the one blocking network round trip a W5 task makes, standing in for
the database or HTTP call every real task makes: a GET on a Redis connection of the
task's own process (its own pool, not the task system's), to the server of
$BENCH_REDIS_URL. Every app calls it synchronously, also from ``async def`` tasks (as a
blocking driver would); the harness subtracts these GETs from the Redis commands it
counts per task.

`burn_cpu_ms`: a W6 task's millisecond of CPU (its thread's CPU time, so a busy host
does not shorten it).

`mark_start`: a W3 task notes when the first of its batch started, in the file
$BENCH_START_MARK names (the first to create it wins; a syscall, no network), so that
W3 can be timed from the first start as well as from the first enqueue."""

from __future__ import annotations

import os
import threading
import time

import redis

__all__ = ["IO_KEY", "START_MARK_ENV", "burn_cpu_ms", "mark_start", "one_round_trip"]

IO_KEY = "bench:io"
START_MARK_ENV = "BENCH_START_MARK"

_client: redis.Redis | None = None
_lock = threading.Lock()


def one_round_trip() -> None:
    global _client  # one client per process, made by its first task
    if _client is None:
        with _lock:
            if _client is None:
                _client = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://"))
    _client.get(IO_KEY)


def mark_start() -> None:
    path = os.environ.get(START_MARK_ENV)
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # another task of the batch started first
        return
    try:
        os.write(fd, repr(time.time()).encode())
    finally:
        os.close(fd)


def burn_cpu_ms() -> None:
    end = time.thread_time() + 0.001
    while time.thread_time() < end:
        pass
