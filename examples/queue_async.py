"""Port of the seed template "Queue asynchronously with channels".

`TaskManager.queue_task_async` queues a task on the main queue and returns at once with
a `concurrent.futures.Future`, Python's counterpart of Go's result and error channels.
A thread (the Go example's goroutine) waits on the future and prints the result or the
error, so "Submitted async channel task, not blocking." prints first and the result
line later, once the task has been processed.
Around the template: a `MyResource`, a `Config` and a `TaskManager`.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future

from tasker_dist import Config, TaskContext, TaskManager


def say(message: str) -> None:
    """Print a line in one write, so lines that other threads print at once never mix."""
    sys.stdout.write(f"{message}\n")
    sys.stdout.flush()


class MyResource:
    """A placeholder for a long-lived resource (a connection, a client, a model)."""


def channel_task(ctx: TaskContext, res: MyResource) -> str:
    # Task logic here
    time.sleep(0.2)  # simulate some work
    return "channel_task_done"


def report(future: Future[str]) -> None:
    try:
        result = future.result()
    except Exception as exc:
        say(f"Async channel task failed: {exc}")
    else:
        say(f"Async channel task completed with result: {result}")


def main() -> None:
    config = Config(on_create=MyResource, worker_count=2)
    with TaskManager(config) as manager:
        future = manager.queue_task_async(channel_task)
        say("Submitted async channel task, not blocking.")

        receiver = threading.Thread(target=report, args=(future,))
        receiver.start()
        receiver.join()  # keep the program alive until the result is printed


if __name__ == "__main__":
    main()
