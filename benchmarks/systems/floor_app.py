"""The floor's worker: a bare redis-py loop doing the Redis work a task queue cannot avoid
(pop a batch of tasks, store each result), the physical limit for a Python worker here.

``python -m benchmarks.systems.floor_app --batch 100 --threads 1``; the server comes
from $BENCH_REDIS_URL. A task is ``<kind>:<id>`` (kind ``n`` no-op, ``s`` sleep 10 ms,
``t`` one round trip of its own (`io_call`), ``c`` 1 ms of CPU,
``i`` blocks 1 ms, ``r`` no-op whose producer waits on a reply
list).
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import redis

from .io_call import burn_cpu_ms, mark_start, one_round_trip

__all__ = ["QUEUE", "main", "reply_key", "result_key"]

QUEUE = "floor:queue"
RESULT_TTL_S = 86_400  # as tasker-dist's default result_ttl: the same SET ... EX work


def result_key(task_id: bytes) -> bytes:
    return b"floor:result:" + task_id


def reply_key(task_id: bytes) -> bytes:
    return b"floor:reply:" + task_id


def serve(client: redis.Redis, batch: int) -> None:
    while True:
        # RPOP with a count: the producer LPUSHes, so this is FIFO, as tasker-dist.
        items: list[bytes] | None = client.rpop(QUEUE, batch)  # type: ignore[assignment]
        if not items:
            popped = client.brpop([QUEUE], timeout=1)  # idle: block, do not spin
            if popped is None:
                continue
            items = [popped[1]]  # type: ignore[list-item]  # no decode_responses: bytes
        pipe = client.pipeline(transaction=False)
        for item in items:
            kind, _, task_id = item.partition(b":")
            if kind == b"s":
                mark_start()
                time.sleep(0.01)
            elif kind == b"t":
                one_round_trip()
            elif kind == b"c":
                burn_cpu_ms()
            elif kind == b"i":
                time.sleep(0.001)
            pipe.set(result_key(task_id), b"ok", ex=RESULT_TTL_S)
            if kind == b"r":
                pipe.lpush(reply_key(task_id), b"ok")
        pipe.execute()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    threads = [
        threading.Thread(target=serve, args=(client, args.batch), daemon=True)
        for _ in range(args.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()  # until SIGTERM ends the process


if __name__ == "__main__":
    main()
