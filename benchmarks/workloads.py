"""The workloads, identical for every system: each drives one `System` and returns its
figures (plain floats, so they travel as JSON from the driver to the orchestrator)."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from .probe import Completion, wait_stored
from .procs import WorkerGroup, tree_cpu_s
from .systems.base import REPO_ROOT, Handle, System, TaskKind, WorkerSpec
from .systems.io_call import START_MARK_ENV

__all__ = ["WORKLOADS", "Context", "Figures", "Sizes", "percentile"]

Figures = dict[str, float | str]


@dataclass(frozen=True)
class Sizes:
    tasks: int = 10_000  # W1 (queued one at a time, then drained), W4 (one batch), W5
    round_trips: int = 1_000  # W2
    work_tasks: int = 2_000  # W6 (1 ms of CPU each) and W7 (1 ms of blocking each)
    work_concurrency: int = 8  # W7, per worker process
    io_tasks: int = 1_000  # W3, each sleeping 10 ms
    io_concurrency: int = 50  # W3, per worker process
    warmup: int = 20  # W2 round trips before measuring
    round_trip_budget_s: float = 60.0  # W2 stops early past this (systems that poll)
    drain_timeout_s: float = 600.0
    idle_timeout_s: float = 30.0  # W2, W3: longest wait for started workers to go idle


@dataclass(frozen=True)
class Context:
    client: redis.Redis  # for the result probe only
    sizes: Sizes
    log_path: Path


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100), at least the first
    return ordered[int(rank) - 1]


def _workers(system: System, spec: WorkerSpec, ctx: Context) -> WorkerGroup:
    return WorkerGroup(
        system.worker_commands(spec), system.worker_env(spec), REPO_ROOT, ctx.log_path
    )


def _settle(group: WorkerGroup, ctx: Context, warnings: list[str], min_s: float = 1.0) -> None:
    """Wait for the workers to go idle; note it if they never do (a busy loop)."""
    busy = group.wait_idle(min_s=min_s, timeout_s=ctx.sizes.idle_timeout_s)
    if busy is not None:
        warnings.append(
            f"workers never went idle: {busy:.2f} cores busy with no task queued "
            f"after {ctx.sizes.idle_timeout_s:.0f} s"
        )


def _with_warnings(figures: Figures, warnings: list[str]) -> Figures:
    if not warnings:
        return figures
    more = f" (and {len(warnings) - 1} more time(s) in this workload)" if len(warnings) > 1 else ""
    return {**figures, "warning": warnings[0] + more}


def _redis_work(client: redis.Redis) -> tuple[int, float]:
    """The commands Redis has run so far (INFO's own left out) and its CPU seconds."""
    stats = client.info("commandstats")
    calls = sum(int(v["calls"]) for k, v in stats.items() if not k.startswith("cmdstat_info"))
    cpu = client.info("cpu")
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _drain(
    system: System, ctx: Context, handles: list[Handle], own_commands_per_task: int,
    concurrency: int | None = None,
) -> Figures:  # fmt: skip
    """Start 2 worker processes (the system's defaults, or ``concurrency`` tasks in
    flight in each), wait until every result of
    ``handles`` is stored, and say how fast (from the workers' start, and from the first
    result to the last) and at what cost per task: the commands Redis ran for the system
    (the tasks' own and the harness's probes left out), Redis's CPU time, and the CPU time
    of the workers' whole process tree, start-up included."""
    n = len(handles)
    calls_before, cpu_before = _redis_work(ctx.client)
    group = _workers(system, WorkerSpec(processes=2, concurrency=concurrency), ctx)
    start = time.perf_counter()
    with group:
        done: Completion = wait_stored(
            ctx.client, system, handles, ctx.sizes.drain_timeout_s, check=group.check_alive
        )
        workers_cpu_s = tree_cpu_s(group.pids())
    calls_after, cpu_after = _redis_work(ctx.client)
    steady_s = done.last_s - done.first_s
    calls = calls_after - calls_before - done.commands - own_commands_per_task * n
    return {
        "drain_rate": n / (done.last_s - start),
        "drain_rate_steady": (n - done.stored_at_first) / steady_s if steady_s > 0 else 0.0,
        "first_result_s": done.first_s - start,
        "peak_rss_mb": group.peak_rss_bytes / 2**20,
        "redis_commands_per_task": calls / n,
        "redis_cpu_us_per_task": (cpu_after - cpu_before) / n * 1e6,
        "workers_cpu_us_per_task": workers_cpu_s / n * 1e6,
    }


def w1_throughput(system: System, ctx: Context) -> Figures:
    """Queue N no-ops one at a time with no worker running, then start 2 worker processes
    and time them from their start until the last result is stored."""
    n = ctx.sizes.tasks
    handles, latencies = [], []
    began = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        handles.append(system.enqueue(TaskKind.NOOP))
        latencies.append(time.perf_counter() - t)
    enqueue_s = time.perf_counter() - began
    return {
        "enqueue_rate": n / enqueue_s,
        "enqueue_p50_ms": statistics.median(latencies) * 1000,
        **_drain(system, ctx, handles, own_commands_per_task=0),
    }


def w2_latency(system: System, ctx: Context) -> Figures:
    """One producer, one worker process: sequential round trips, each submitted and waited
    for with the system's documented mechanism."""
    group = _workers(system, WorkerSpec(processes=1, concurrency=None), ctx)
    samples: list[float] = []
    warnings: list[str] = []
    with group:
        _settle(group, ctx, warnings)
        for _ in range(ctx.sizes.warmup):
            system.round_trip(timeout_s=30)
        budget_end = time.perf_counter() + ctx.sizes.round_trip_budget_s
        while len(samples) < ctx.sizes.round_trips and time.perf_counter() < budget_end:
            t = time.perf_counter()
            system.round_trip(timeout_s=30)
            samples.append(time.perf_counter() - t)
    figures: Figures = {
        "p50_ms": percentile(samples, 50) * 1000,
        "p95_ms": percentile(samples, 95) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "round_trips": float(len(samples)),
    }
    return _with_warnings(figures, warnings)


def w3_io_bound(system: System, ctx: Context) -> Figures:
    """N tasks sleeping 10 ms on 2 warm worker processes with 50 in flight each: seconds
    from the first enqueue (the system's batch API) until the last result is stored, and
    from the start of the first task (which each task notes in a file: the first to
    create it) until then, which leaves the enqueue out."""
    sizes = ctx.sizes
    spec = WorkerSpec(processes=2, concurrency=sizes.io_concurrency)
    mark = ctx.log_path.with_name(ctx.log_path.name + ".start")
    os.environ[START_MARK_ENV] = str(mark)  # the workers' environment is made from ours
    group = _workers(system, spec, ctx)
    best: tuple[float, float, str] | None = None
    warnings: list[str] = []
    with group:
        _settle(group, ctx, warnings)
        for kind in system.sleep_kinds:
            # Warm-up: every slot of both processes has run a task of this kind.
            warm = system.enqueue_batch(kind, 4 * sizes.io_concurrency)
            wait_stored(ctx.client, system, warm, sizes.drain_timeout_s, check=group.check_alive)
            _settle(group, ctx, warnings, min_s=0.2)
            mark.unlink(missing_ok=True)  # the warm-up's
            began, began_wall = time.perf_counter(), time.time()
            handles = system.enqueue_batch(kind, sizes.io_tasks)
            done = wait_stored(
                ctx.client, system, handles, sizes.drain_timeout_s, poll_s=0.002,
                check=group.check_alive,
            )  # fmt: skip
            elapsed = done.last_s - began
            first_start = float(mark.read_text()) - began_wall  # both this machine's clock
            if best is None or elapsed < best[0]:
                best = (elapsed, elapsed - first_start, str(kind))
    assert best is not None
    figures: Figures = {"drain_s": best[0], "drain_from_start_s": best[1], "sleep_kind": best[2]}
    return _with_warnings(figures, warnings)


def w4_batch_enqueue(system: System, ctx: Context) -> Figures:
    """N no-ops queued with the system's bulk API (no worker running)."""
    began = time.perf_counter()
    system.enqueue_batch(TaskKind.NOOP, ctx.sizes.tasks)
    return {"batch_enqueue_rate": ctx.sizes.tasks / (time.perf_counter() - began)}


def w5_real_work(system: System, ctx: Context) -> Figures:
    """N tasks that each make one blocking network round trip of their own (a GET on a
    Redis connection of the worker process: the database or HTTP call of a real task),
    queued with the bulk API with no worker running, then drained as W1's."""
    handles = list(system.enqueue_batch(TaskKind.ROUNDTRIP, ctx.sizes.tasks))
    return _drain(system, ctx, handles, own_commands_per_task=1)


def w6_cpu(system: System, ctx: Context) -> Figures:
    """N tasks of 1 ms of CPU each, queued with the bulk API, then drained as W1's (this
    machine's 2 cores: the ideal is N x 1 ms / 2)."""
    handles = list(system.enqueue_batch(TaskKind.CPU, ctx.sizes.work_tasks))
    return _drain(system, ctx, handles, own_commands_per_task=0)


def w7_short_io(system: System, ctx: Context) -> Figures:
    """N tasks that each block 1 ms (a short I/O call), queued with the bulk API, then
    drained by 2 processes with 8 tasks in flight each (threads, or coroutines where
    tasks are async): the ideal is N x 1 ms / 16."""
    handles = list(system.enqueue_batch(TaskKind.IO, ctx.sizes.work_tasks))
    return _drain(system, ctx, handles, own_commands_per_task=0,
                  concurrency=ctx.sizes.work_concurrency)  # fmt: skip


WORKLOADS: dict[str, Callable[[System, Context], Figures]] = {
    "w1": w1_throughput,
    "w2": w2_latency,
    "w3": w3_io_bound,
    "w4": w4_batch_enqueue,
    "w5": w5_real_work,
    "w6": w6_cpu,
    "w7": w7_short_io,
}
