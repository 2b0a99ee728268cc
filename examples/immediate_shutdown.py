"""Port of the seed example "Immediate shutdown".

A long task (5 seconds of work) is running when `TaskManager.kill` is called. Kill does
not wait: it cancels the running task, whose ``ctx.wait`` returns True at once so the
task stops cooperatively, destroys the workers' resources, and fails every caller still
waiting with `TaskCancelled`. Afterwards the stats show no active worker.

Rather than sleeping and hoping the task has started, the main thread waits for the task
to signal through its resource: a resource is a live object of this process (the task
itself is a serialized copy), so an event it holds is shared with the main thread.
"""

from __future__ import annotations

import itertools
import sys
import threading
from dataclasses import dataclass, field

from tasker_dist import Config, TaskContext, TaskManager

_resource_ids = itertools.count(1)
# Set by the long task once it runs (through its resource).
task_started = threading.Event()


def say(message: str) -> None:
    """Print a line in one write, so lines that worker threads print at once never mix."""
    sys.stdout.write(f"{message}\n")
    sys.stdout.flush()


@dataclass
class HeavyComputeResource:
    id: int
    started: threading.Event = field(default_factory=threading.Event)


def create_compute_resource() -> HeavyComputeResource:
    say("INFO: Creating ComputeResource")
    return HeavyComputeResource(next(_resource_ids), task_started)


def destroy_compute_resource(resource: HeavyComputeResource) -> None:
    say("INFO: Destroying ComputeResource")


def long_task(ctx: TaskContext, resource: HeavyComputeResource) -> str:
    say(f"Worker {resource.id} processing long Task...")
    resource.started.set()
    if ctx.wait(5):  # simulate long work; returns True as soon as the task is cancelled
        say(f"Task on Worker {resource.id} cancelled due to shutdown.")
        ctx.raise_if_cancelled()
    return "long task completed"


def main() -> None:
    config = Config(
        on_create=create_compute_resource,
        on_destroy=destroy_compute_resource,
        worker_count=2,
    )
    manager = TaskManager(config)

    # Queue a long-running task.
    future = manager.queue_task_async(long_task)

    # Kill the manager as soon as the task runs.
    task_started.wait()
    say("\nInitiating immediate shutdown (Kill)...")
    try:
        manager.kill()
    except Exception as exc:
        say(f"Error during immediate shutdown: {exc}")
    else:
        say("Task manager immediately shut down.")
    say(f"Final Active Workers: {manager.stats().active_workers}")

    try:
        say(f"Long task result: {future.result()}")
    except Exception as exc:
        say(f"Long task failed: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
