"""Port of the seed example "Basic tasker setup".

A `TaskManager` with two base workers, each owning a `CalculatorResource`, runs three
tasks queued the three ways the seed shows: `queue_task` (blocking, here from a thread,
as the Go example calls it from a goroutine), `queue_task_with_callback` and
`queue_task_async` (a `concurrent.futures.Future` in place of Go's channels). It then
prints the manager's stats: 2 active workers and 0 queued tasks.
"""

from __future__ import annotations

import sys
import threading
import time

from tasker_dist import Config, TaskContext, TaskManager


def say(message: str) -> None:
    """Print a line in one write, so lines that worker threads print at once never mix."""
    sys.stdout.write(f"{message}\n")
    sys.stdout.flush()


class CalculatorResource:
    """A simple resource; in a real program it could be a connection to a math service."""


def create_calc_resource() -> CalculatorResource:
    say("INFO: Creating CalculatorResource")
    return CalculatorResource()


def destroy_calc_resource(resource: CalculatorResource) -> None:
    say("INFO: Destroying CalculatorResource")


def multiply(ctx: TaskContext, resource: CalculatorResource) -> int:
    time.sleep(0.05)  # simulate some work
    a, b = 10, 25
    say(f"Worker processing: {a} * {b}")
    return a * b


def add(ctx: TaskContext, resource: CalculatorResource) -> int:
    time.sleep(0.05)
    a, b = 10, 25
    say(f"Worker processing: {a} + {b}")
    return a + b


def subtract(ctx: TaskContext, resource: CalculatorResource) -> int:
    time.sleep(0.07)
    a, b = 100, 40
    say(f"Worker processing: {a} - {b}")
    return a - b


def main() -> None:
    say("--- Basic Usage: Simple Calculator ---")

    config = Config(
        on_create=create_calc_resource,
        on_destroy=destroy_calc_resource,
        worker_count=2,  # two base workers
    )
    with TaskManager(config) as manager:  # stopped gracefully when the block ends
        say("Queuing a simple Multiplication task...")
        task1_start = time.monotonic()

        def run_task1() -> None:
            try:
                product = manager.queue_task(multiply)
            except Exception as exc:
                say(f"Task 1 failed: {exc}")
            else:
                took = time.monotonic() - task1_start
                say(f"Task 1 (Multiplication) Result: {product} (took {took:.3f}s)")

        task1 = threading.Thread(target=run_task1)
        task1.start()

        say("Queuing another addition task...")
        task2_start = time.monotonic()
        task2_done = threading.Event()

        def on_sum(total: int | None, error: BaseException | None) -> None:
            if error is not None:
                say(f"Task 2 failed: {error}")
            else:
                took = time.monotonic() - task2_start
                say(f"Task 2 (Addition) Result: {total} (took {took:.3f}s)")
            task2_done.set()

        manager.queue_task_with_callback(add, on_sum)

        say("Queuing another subtraction task...")
        task3_start = time.monotonic()
        future = manager.queue_task_async(subtract)
        try:
            difference = future.result()
        except Exception as exc:
            say(f"Task 3 failed: {exc}")
        else:
            took = time.monotonic() - task3_start
            say(f"Task 3 (Subtraction) Result: {difference} (took {took:.3f}s)")

        # Where the Go example sleeps, wait for the other two tasks to report.
        task1.join()
        task2_done.wait()

        stats = manager.stats()
        say("\n--- Current Stats ---")
        say(f"Active Workers: {stats.active_workers}")
        say(f"Queued Tasks: {stats.queued_tasks}")
        say(f"Available Resources: {stats.available_resources}")
        say("----------------------")

    say("Basic usage example finished.")


if __name__ == "__main__":
    main()
