"""Port of the seed template "Queue and wait".

`TaskManager.queue_task` queues a task on the main queue and blocks the caller until its
result is available: the result holds the task's output, and the print after the call
runs only once the task has truly finished. A failing task raises its exception here.
Around the template: a `MyResource`, a `Config` and a `TaskManager`.
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass

from tasker_dist import Config, TaskContext, TaskManager

_resource_ids = itertools.count(1)


def say(message: str) -> None:
    """Print a line in one write, so lines that worker threads print at once never mix."""
    sys.stdout.write(f"{message}\n")
    sys.stdout.flush()


@dataclass
class MyResource:
    id: int


def create_resource() -> MyResource:
    return MyResource(next(_resource_ids))


def my_task(ctx: TaskContext, res: MyResource) -> str:
    # Task logic here
    say(f"Task running on MyResource {res.id}...")
    time.sleep(0.1)
    say("Task finished its work.")
    return "task_done"


def main() -> None:
    config = Config(on_create=create_resource, worker_count=2)
    with TaskManager(config) as manager:
        try:
            result = manager.queue_task(my_task)
        except Exception as exc:
            say(f"Task failed: {exc}")
        else:
            say(f"Task completed with result: {result}")


if __name__ == "__main__":
    main()
