"""`WorkerRuntime`: the worker of SPEC §4, used by `tasker-worker` and by `TaskManager`.

Threads: one per slot (each owning a resource), a fetcher, a completer that writes results
in batches, a monitor (heartbeat, stop requests, bursting), a deadline watchdog and, when
``async def`` code is used, one event loop. None of them is per task.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from ..config import Config
from ..errors import RedisUnavailable
from ..store.calls import RETRIED, Heartbeat
from ..store.queue_store import QueueStore
from ..wire.envelope import FailureKind
from ..wire.signing import Signer
from .async_loop import AsyncLoop
from .burst import BurstSample, burst_delta
from .completer import Completer
from .deadlines import Deadlines
from .executor import Executor, Report
from .fetcher import Fetcher
from .heartbeat import Monitor
from .job import Job
from .local_queue import LocalQueue
from .resources import ResourceHooks
from .slot import Slot

__all__ = ["KillMode", "WorkerRuntime"]

log = logging.getLogger("tasker_dist.worker")


class KillMode(Enum):
    """What a kill does with tasks still running after the grace period."""

    REQUEUE = "requeue"  # hand them back to the queue for another worker (daemons)
    CANCEL = "cancel"  # fail them with TaskCancelled for their callers (TaskManager)


def _held(job: Job) -> tuple[str, int]:
    return job.task_id, job.fetched.delivery


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


class WorkerRuntime:
    def __init__(
        self,
        config: Config[Any],
        store: QueueStore,
        *,
        worker_id: str | None = None,
        kill_mode: KillMode = KillMode.REQUEUE,
        extra_idle: Callable[[], int] = lambda: 0,
        on_stop_request: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.worker_id = worker_id or new_worker_id()
        self.kill_mode = kill_mode
        self.aloop = AsyncLoop()
        self.hooks = ResourceHooks(config, self.aloop)
        self.local = LocalQueue()
        self.signer = Signer.from_settings(config.secret, config.allow_unsigned)
        self.executor = Executor(config, self.aloop, self.signer)
        #: Set when slots must stop creating resources (stop or kill).
        self.halting = threading.Event()
        #: True once slots should take no new task.
        self.draining = False
        self._extra_idle = extra_idle
        self._on_stop_request = on_stop_request
        self._slots: list[Slot] = []
        self._slots_lock = threading.Lock()
        self._next_index = 0
        self._mean_exec_s: float | None = None
        self._completed_since_tick = 0
        self._previous_backlog = 0
        self._started_ms = int(time.time() * 1000)
        self._stop_seen_ms = self._started_ms  # stop requests up to here are handled
        self._stopped = threading.Event()
        self._killed = threading.Event()
        self._slots_changed = threading.Event()
        self._ended = False
        self._finished = False
        self._end_lock = threading.Lock()
        self.completer = Completer(
            store,
            self.worker_id,
            int(config.result_ttl * 1000),
            config.failed_limit,
            self._written,
        )
        self.deadlines = Deadlines(self._expired)
        self.monitor = Monitor(
            store,
            self.worker_id,
            config.heartbeat_interval,
            config.burst_interval,
            self.fields,
            self._beat,
            self._burst,
        )
        self.fetcher = Fetcher(store, self.worker_id, self.monitor.ttl_ms, self.local,
                               lambda: self._mean_exec_s, self._ready_slots,
                               self._known_task_ids)  # fmt: skip

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Start the slots and threads; raises `ConfigError` without a secret (and without
        ``allow_unsigned``), `RedisUnavailable` if Redis is unreachable."""
        self.signer.check_can_seal()
        self.store.ping()
        policy = self.store.eviction_policy()
        if policy not in (None, "noeviction"):
            log.warning("Redis maxmemory-policy is %r: under memory pressure Redis may evict "
                        "queued tasks and results; set it to noeviction", policy)  # fmt: skip
        self.monitor.start()  # registered before it takes any task, so its tasks are safe
        self._add_slots(self.config.worker_count, burst=False)
        self.completer.start()
        self.fetcher.start()
        log.info(
            "worker %s serving queue %r with %d slot(s)",
            self.worker_id,
            self.config.queue,
            self.config.worker_count,
        )

    def stop(self, timeout: float | None = None) -> None:
        """Graceful: fetch nothing new, hand back what was fetched but not started,
        finish what runs, destroy resources, leave the cluster. A `kill` meanwhile
        (from another thread) cuts the wait short."""
        if self._begin_end():
            self._quiesce()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._killed.is_set() and self._slot_list():
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._slots_changed.wait(0.1)
            self._slots_changed.clear()
        if not self._killed.is_set():
            self._finish()
        self._stopped.wait(timeout)

    def kill(self) -> None:
        """Immediate: cancel running tasks; after ``kill_grace`` seconds, tasks still
        running are handed back (daemons) or failed with TaskCancelled (managers)."""
        self._killed.set()
        self._cancel_running("killed")
        if self._begin_end():
            self._quiesce()
        self._cancel_running("killed")  # any task that started meanwhile
        deadline = time.monotonic() + self.config.kill_grace
        for slot in self._slot_list():
            slot.join(max(0.0, deadline - time.monotonic()))
        stuck = [job for slot in self._slot_list() if (job := slot.job) and job.settle()]
        if stuck:
            self._give_up(stuck)
        self._finish()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the runtime has stopped."""
        return self._stopped.wait(timeout)

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _begin_end(self) -> bool:
        with self._end_lock:
            if self._ended:
                return False
            self._ended = True
            return True

    def _quiesce(self) -> None:
        self.draining = True
        self.halting.set()
        self.fetcher.stop(timeout=5)
        unstarted = self.local.drain()
        self.local.close()
        if unstarted:
            try:
                handed = self.store.requeue(self.worker_id, [_held(j) for j in unstarted])
                log.info("handed %d fetched but unstarted task(s) back to the queue", handed)
            except RedisUnavailable as exc:
                log.error("could not hand back %d task(s): %s", len(unstarted), exc)

    def _cancel_running(self, reason: str) -> None:
        for slot in self._slot_list():
            job = slot.job
            if job is not None:
                job.cancel(reason)

    def _give_up(self, jobs: list[Job]) -> None:
        if self.kill_mode is KillMode.REQUEUE:
            try:
                self.store.requeue(self.worker_id, [_held(job) for job in jobs])
                log.warning("handed %d running task(s) back to the queue", len(jobs))
            except RedisUnavailable as exc:
                log.error("could not hand back %d running task(s): %s", len(jobs), exc)
            return
        for job in jobs:
            self.completer.add(
                self.executor.settled_by(
                    job, FailureKind.CANCELLED, f"task {job.task_id} was cancelled (kill)"
                )
            )

    def _finish(self) -> None:
        with self._end_lock:
            if self._finished:
                return
            self._finished = True
        self.completer.close(timeout=5)
        self.deadlines.close()
        self.monitor.stop()
        try:
            if handed := self.store.leave(self.worker_id):
                log.warning("handed %d unfinished task(s) back on leaving", handed)
        except RedisUnavailable as exc:
            log.warning("could not leave the cluster cleanly: %s", exc)
        self.aloop.close()
        self._stopped.set()
        log.info("worker %s stopped", self.worker_id)

    # -- slots --------------------------------------------------------------------------
    def _slot_list(self) -> list[Slot]:
        with self._slots_lock:
            return list(self._slots)

    def _add_slots(self, count: int, burst: bool) -> None:
        with self._slots_lock:
            new = []
            for _ in range(count):
                slot = Slot(self, self._next_index, burst)
                self._next_index += 1
                self._slots.append(slot)
                new.append(slot)
        for slot in new:
            slot.start()

    def _known_task_ids(self) -> set[str]:
        """Every task this worker has in hand: buffered, running, or being reported."""
        running = {job.task_id for slot in self._slot_list() if (job := slot.job)}
        return self.local.task_ids() | running | self.completer.task_ids()

    def _ready_slots(self) -> int:
        return sum(1 for slot in self._slot_list() if slot.ready and not slot.retiring)

    def slot_exited(self, slot: Slot) -> None:
        with self._slots_lock:
            if slot in self._slots:
                self._slots.remove(slot)
        self._slots_changed.set()
        self.monitor.nudge()
        if not self.draining and not slot.retiring:
            log.error("%s exited unexpectedly; starting a replacement", slot.name)
            self._add_slots(1, slot.burst)

    def execute(self, job: Job, resource: Any) -> Report:
        """Run a job in the calling slot and hand its report to the completer."""
        try:
            report = self.executor.run(job, resource, self._started)
        except Exception as exc:  # a bug of ours: fail the task rather than strand it
            log.exception("internal error running task %r", job.task_id)
            report = self.executor.settled_by(job, FailureKind.ERROR,
                                         f"tasker-dist internal error: {exc!r}")  # fmt: skip
        if job.exec_s is not None:
            # Here, not once the result is written: a worker starting on short tasks then
            # sizes its next fetch without waiting a round trip per step of its ramp-up.
            m = self._mean_exec_s
            self._mean_exec_s = job.exec_s if m is None else 0.9 * m + 0.1 * job.exec_s
        if job.settle():
            self.completer.add(report)
        return report

    def _started(self, job: Job) -> None:
        if job.ctx is not None and job.ctx.deadline is not None:
            self.deadlines.add(job, job.ctx.deadline)

    def _expired(self, job: Job) -> None:
        job.cancel("timeout")
        if job.settle():
            self.completer.add(
                self.executor.settled_by(job, FailureKind.TIMEOUT, f"task {job.task_id} timed out")
            )

    def _written(self, reports: list[Report]) -> None:
        for r in reports:
            if r.status != RETRIED:
                self._completed_since_tick += 1

    # -- monitor callbacks --------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        slots = self._slot_list()
        active = sum(1 for s in slots if s.ready)
        running = sum(1 for s in slots if s.job is not None)
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_ms": self._started_ms,
            "base": self.config.worker_count,
            "active": active,
            "burst": sum(1 for s in slots if s.burst and s.ready),
            "running": running,
            "idle": max(0, active - running) + self._extra_idle(),
        }

    def _beat(self, hb: Heartbeat) -> None:
        if hb.was_dead:
            self._lost_lease()
        if hb.stale_workers:
            try:
                if moved := self.store.recover(hb.stale_workers):
                    log.warning(
                        "handed back %d task(s) of dead worker(s) %s",
                        moved,
                        ", ".join(hb.stale_workers),
                    )
            except RedisUnavailable as exc:
                log.warning("recovering dead workers' tasks failed: %s", exc)
        asked = max(hb.stop_all_ms or 0, hb.stop_me_ms or 0)
        if asked > self._stop_seen_ms and not self.draining:
            log.info("stop requested through Redis")
            self._stop_seen_ms = asked
            if self._on_stop_request is not None:
                self._on_stop_request()

    def _lost_lease(self) -> None:
        """This worker was taken for dead (no heartbeat in time: frozen, partitioned) and
        its tasks were handed to others: drop what it fetched and cancel what it runs;
        their results would be refused anyway."""
        dropped = self.local.drain()
        self._cancel_running("lease lost")
        log.error(
            "this worker missed its heartbeats and was taken for dead; its tasks were "
            "handed to other workers (%d unstarted dropped, running ones cancelled)",
            len(dropped),
        )

    def _burst(self, hb: Heartbeat) -> None:
        if self.draining:
            return
        slots = self._slot_list()
        backlog = hb.pending + hb.priority + len(self.local)
        sample = BurstSample(
            slots=len(slots),
            busy=sum(1 for s in slots if s.job is not None or not s.ready),
            backlog=backlog,
            previous_backlog=self._previous_backlog,
            completed=self._completed_since_tick,
        )
        self._previous_backlog = backlog
        self._completed_since_tick = 0
        delta = burst_delta(self.config.worker_count, self.config.burst_limit, sample)
        if delta > 0:
            log.info("backlog %d: adding %d burst slot(s)", backlog, delta)
            self._add_slots(delta, burst=True)
        elif delta < 0:
            idle_burst = [s for s in slots if s.burst and s.job is None and not s.retiring]
            for slot in idle_burst[:-delta]:
                slot.retiring = True
            if idle_burst:
                log.info("queue empty: retiring %d burst slot(s)", min(-delta, len(idle_burst)))
            self.local.wake()
