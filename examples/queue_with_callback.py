"""Port of the seed template "Queue with callback".

`TaskManager.queue_task_with_callback` queues a task on the main queue and returns at
once; ``callback(result, error)`` runs later, on a callback thread, once the task has
been processed (``error`` is None on success, as Go's ``err`` is nil). So "Submitted
callback task, not blocking." prints first and the callback's line after it.
Around the template: a `MyResource`, a `Config`, a `TaskManager`, and an event that
keeps the program alive until the callback has run.
"""

from __future__ import annotations

import sys
import threading
import time

from tasker_dist import Config, TaskContext, TaskManager


def say(message: str) -> None:
    """Print a line in one write, so lines that other threads print at once never mix."""
    sys.stdout.write(f"{message}\n")
    sys.stdout.flush()


class MyResource:
    """A placeholder for a long-lived resource (a connection, a client, a model)."""


def callback_task(ctx: TaskContext, res: MyResource) -> str:
    # Task logic here
    time.sleep(0.2)  # simulate some work
    return "callback_task_done"


def main() -> None:
    config = Config(on_create=MyResource, worker_count=2)
    with TaskManager(config) as manager:
        called_back = threading.Event()

        def on_done(result: str | None, error: BaseException | None) -> None:
            if error is not None:
                say(f"Callback task failed: {error}")
            else:
                say(f"Callback task completed with result: {result}")
            called_back.set()

        manager.queue_task_with_callback(callback_task, on_done)
        say("Submitted callback task, not blocking.")

        called_back.wait()  # keep the program alive until the callback has run


if __name__ == "__main__":
    main()
