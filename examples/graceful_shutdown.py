"""Port of the seed example "Graceful shutdown".

Five tasks are queued on two workers; while they run, `TaskManager.stop` is called. It
takes no new task, waits until every task queued here has finished, and only then
destroys the workers' resources. Each task reports when it finishes, every caller gets
its result, and afterwards the stats show no active worker.
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
class HeavyComputeResource:
    id: int


def create_compute_resource() -> HeavyComputeResource:
    say("INFO: Creating ComputeResource")
    return HeavyComputeResource(next(_resource_ids))


def destroy_compute_resource(resource: HeavyComputeResource) -> None:
    say("INFO: Destroying ComputeResource")


def compute(ctx: TaskContext, resource: HeavyComputeResource, task_id: int) -> str:
    say(f"Worker {resource.id} processing Task {task_id}")
    time.sleep(0.1)
    say(f"Worker {resource.id} finished Task {task_id}")
    return f"Task {task_id} completed"


def main() -> None:
    config = Config(
        on_create=create_compute_resource,
        on_destroy=destroy_compute_resource,
        worker_count=2,
    )
    manager = TaskManager(config)

    # Queue some tasks; each future will hold its task's result.
    futures = [manager.queue_task_async(compute, task_id) for task_id in range(5)]

    # Allow some tasks to start, then initiate graceful shutdown.
    time.sleep(0.2)
    say("\nInitiating graceful shutdown...")
    try:
        manager.stop()  # returns once every queued task has finished
    except Exception as exc:
        say(f"Error during graceful shutdown: {exc}")
    else:
        say("Task manager gracefully shut down.")
    say(f"Final Active Workers: {manager.stats().active_workers}")

    for future in futures:
        say(f"Result: {future.result()}")


if __name__ == "__main__":
    main()
