"""Port of the seed example "Get performance metrics".

Ten tasks of varying length (10 to 55 ms) run on one worker; `TaskManager.metrics` then
reports the cluster-wide counters, execution-time statistics and rates, all non-zero
once the tasks have completed. Times are float seconds, printed here in milliseconds.

Where the Go example sleeps 500 ms and hopes the tasks are done, this one waits for
every task's result.
"""

from __future__ import annotations

import concurrent.futures
import time

from tasker_dist import Config, TaskContext, TaskManager


class CalcResource:
    """A placeholder resource."""


def create_calc_resource() -> CalcResource:
    return CalcResource()


def destroy_calc_resource(resource: CalcResource) -> None:
    pass


def varying_work(ctx: TaskContext, resource: CalcResource, i: int) -> int:
    time.sleep((10 + i * 5) / 1000)  # varying work
    return 0


def main() -> None:
    config = Config(
        on_create=create_calc_resource,
        on_destroy=destroy_calc_resource,
        worker_count=1,
    )
    with TaskManager(config) as manager:
        # Queue multiple tasks to generate metrics data.
        futures = [manager.queue_task_async(varying_work, i) for i in range(10)]
        concurrent.futures.wait(futures)  # allow the tasks to complete

        metrics = manager.metrics()
        print("\n--- Performance Metrics ---")
        print(f"Total Tasks Arrived: {metrics.total_tasks_arrived}")
        print(f"Total Tasks Completed: {metrics.total_tasks_completed}")
        print(f"Total Tasks Failed: {metrics.total_tasks_failed}")
        print(f"Average Execution Time: {metrics.average_execution_time * 1000:.1f}ms")
        print(f"Min Execution Time: {metrics.min_execution_time * 1000:.1f}ms")
        print(f"Max Execution Time: {metrics.max_execution_time * 1000:.1f}ms")
        print(f"P50 Execution Time: {metrics.p50_execution_time * 1000:.1f}ms")
        print(f"P95 Execution Time: {metrics.p95_execution_time * 1000:.1f}ms")
        print(f"P99 Execution Time: {metrics.p99_execution_time * 1000:.1f}ms")
        print(f"Average Wait Time: {metrics.average_wait_time * 1000:.1f}ms")
        print(f"Task Arrival Rate: {metrics.task_arrival_rate:.2f}/sec")
        print(f"Task Completion Rate: {metrics.task_completion_rate:.2f}/sec")
        print(f"Success Rate: {metrics.success_rate:.2f}")
        print(f"Failure Rate: {metrics.failure_rate:.2f}")
        print("-----------------------------", flush=True)


if __name__ == "__main__":
    main()
