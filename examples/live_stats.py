"""Port of the seed example "Get live stats".

One worker runs one task of 200 ms; `TaskManager.stats` is read while the task runs and
again once it has finished. Both times there is 1 active worker and no queued task.

Rather than sleeping 50 ms and hoping the worker has picked the task up, the main thread
waits for the task to signal through its resource (a live object of this process; the
task itself is a serialized copy), and it waits for the task's result instead of
sleeping until it should be done.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tasker_dist import Config, Stats, TaskContext, TaskManager

# Set by the task once it runs (through its resource).
task_started = threading.Event()


@dataclass
class CalcResource:
    started: threading.Event


def create_calc_resource() -> CalcResource:
    return CalcResource(task_started)


def destroy_calc_resource(resource: CalcResource) -> None:
    pass


def busy_task(ctx: TaskContext, resource: CalcResource) -> int:
    resource.started.set()
    time.sleep(0.2)  # keep the worker busy
    return 0


def describe(stats: Stats) -> str:
    return (
        f"Active Workers: {stats.active_workers}, Queued Tasks: {stats.queued_tasks}, "
        f"Running Tasks: {stats.running_tasks}, "
        f"Available Resources: {stats.available_resources}"
    )


def main() -> None:
    config = Config(
        on_create=create_calc_resource,
        on_destroy=destroy_calc_resource,
        worker_count=1,
    )
    with TaskManager(config) as manager:
        # Queue a task to keep the worker busy.
        future = manager.queue_task_async(busy_task)

        task_started.wait()  # the worker has picked the task up
        print(f"Current Stats: {describe(manager.stats())}", flush=True)

        future.result()  # wait for the task to complete
        print(f"Stats after task completion: {describe(manager.stats())}", flush=True)


if __name__ == "__main__":
    main()
