"""AsyncProducer's life cycle on an event loop (its queueing methods are tested with
Producer's in test_producer.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tasker_dist import AsyncProducer, Config, TaskContext, TaskManager


def test_close_waits_for_callbacks_without_blocking_the_event_loop(
    redis_url: str, queue: str
) -> None:
    """A callback still running when the app shuts down is waited for on a worker thread:
    the event loop goes on serving meanwhile (here, the very coroutine that lets the
    callback finish)."""
    started = threading.Event()
    release = threading.Event()
    outcome: list[bool] = []

    def callback(result: Any, error: BaseException | None) -> None:
        started.set()
        outcome.append(release.wait(5))  # False: nobody on the loop could release it

    def task(ctx: TaskContext, r: dict[str, int]) -> str:
        return "done"

    async def app() -> None:
        producer = AsyncProducer(redis_url, queue)
        await producer.queue_task_with_callback(task, callback)
        assert await asyncio.to_thread(started.wait, 10)
        closing = asyncio.create_task(producer.close())
        await asyncio.sleep(0)  # close() runs up to its first wait
        release.set()
        await asyncio.wait_for(closing, 10)

    with TaskManager(Config(on_create=dict, redis_url=redis_url, queue=queue)):
        asyncio.run(app())
    assert outcome == [True]
