"""`WorkerRuntime`: the worker, used by `tasker-worker` and by `TaskManager`.

It composes parts that each own one job: the slot pool (slots and their resources), the
task runner (running, deadlines, writing results), the fetcher, the lease (heartbeat),
burst control, and a resource pool for `run_now`. This module holds only their wiring,
the heartbeat loop and the life cycle: start, stop (graceful) and kill.

It serves one queue or several (`ServedQueues`) with the same slots: it holds a lease on
each (a heartbeat on each, so its tasks of every queue are recovered if it dies), a stop
asked for on any of them stops it, and whatever goes back to Redis goes to the queue its
task came from.

Threads: one per slot, a fetcher, a completer, the heartbeat, a deadline watchdog once a
task has a deadline and, when ``async def`` code is used, one event loop. None per task.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from ..config import Config
from ..errors import RedisUnavailable
from ..status import CancelReason, KillMode, Status
from ..store import Fetched, Heartbeat, QueueStore
from ..wire import Outcome, decode_result
from .async_loop import AsyncLoop
from .burst import BurstControl
from .fetcher import Fetcher
from .job import Job
from .lease import Lease
from .local_queue import LocalQueue
from .resource_pool import ResourcePool
from .resources import ResourceHooks
from .served import ServedQueue, ServedQueues
from .slot_pool import SlotPool
from .task_runner import TaskRunner

__all__ = ["WorkerRuntime", "new_worker_id"]

log = logging.getLogger("tasker_dist.worker")


# What ending the runtime's own threads may take at most (the task runner's and the
# heartbeat's joins), besides its calls to Redis.
_FINISH_S = 10.0


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


def _held(jobs: list[Job]) -> list[tuple[str, int]]:
    return [(job.task_id, job.fetched.delivery) for job in jobs]


class WorkerRuntime:
    """Serves ``config.served_queues`` on ``store``'s server (``store`` serves its own
    queue, the others share its connections) with ``config.worker_count`` slots (more
    while bursting). ``on_stop_request`` is called when a stop is asked for through Redis
    (``tasker stop``, on any of the queues); a kill gives up on running tasks the way
    ``kill_mode`` says."""

    def __init__(
        self,
        config: Config[Any],
        store: QueueStore,
        *,
        worker_id: str | None = None,
        kill_mode: KillMode = KillMode.REQUEUE,
        on_stop_request: Callable[[], None] | None = None,
        on_beat: Callable[[float], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._config = config
        self.worker_id = worker_id or new_worker_id()
        self._queues = ServedQueues.of(config, store)
        self._kill_mode = kill_mode
        self._on_stop_request = on_stop_request
        self._on_beat = on_beat
        self._clock = clock
        self._started_ms = int(clock.time() * 1000)
        self._aloop = AsyncLoop()
        hooks = ResourceHooks(config, self._aloop, clock)
        self._local = LocalQueue(self._queues.bands)
        self._runner = TaskRunner(config, self.worker_id, self._aloop, clock,
                                  buffered=lambda: len(self._local) > 0)  # fmt: skip
        self._nudge = threading.Event()  # beat now: slots came or went
        self._slots = SlotPool(hooks, self._local, self._runner, clock, self._nudge)
        self._pool = ResourcePool(config.pool_size, hooks)
        self._leases = [
            (
                q,
                Lease(
                    q.store,
                    self.worker_id,
                    config.heartbeat_interval,
                    self._started_ms,
                    clock,
                    config.connect_timeout,
                ),
            )
            for q in self._queues
        ]
        ttl_ms = self._leases[0][1].ttl_ms
        self._fetcher = Fetcher(self._queues, self.worker_id, ttl_ms, self._local,
                                pace=self._runner, slots=self._slots,
                                in_hand=(self._local, self._slots, self._runner),
                                clock=clock)  # fmt: skip
        self._burst = BurstControl(
            config.worker_count, config.burst_limit, self._slots, self._local, self._runner
        )
        self._heartbeat = threading.Thread(target=self._beat_loop, name="tasker-heartbeat",
                                           daemon=True)  # fmt: skip
        self._heartbeat_stop = threading.Event()
        self._quiesced = threading.Event()
        self._stopped = threading.Event()
        self._killed = threading.Event()
        self._ended = False
        self._finished = False
        self._end_lock = threading.Lock()

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the slots and threads; raises `ConfigError` without a secret (and without
        ``allow_unsigned``) or if a server cannot hold queues (see
        `QueueStore.check_server`), `RedisUnavailable` if Redis is unreachable."""
        self._queues.first.signer.check_can_seal()
        for queue in self._queues:  # on a cluster, each queue's own server
            queue.store.check_server()
        for queue in self._queues:
            policy = queue.store.eviction_policy()
            if policy not in (None, "noeviction"):
                log.warning("Redis maxmemory-policy is %r: under memory pressure Redis may "
                            "evict queued tasks and results; set it to noeviction",
                            policy)  # fmt: skip
                break
        # Registered before it takes any task, so that its tasks are recovered if it dies.
        self._beat()
        self._heartbeat.start()
        self._slots.add(self._config.worker_count, burst=False)
        self._runner.start()
        self._fetcher.start()
        log.info("worker %s serving %s with %d slot(s)",
                 self.worker_id, self._queues.describe(), self._config.worker_count)  # fmt: skip

    def stop(self, timeout: float | None = None) -> None:
        """Graceful: fetch nothing new, hand back what was fetched but not started,
        finish what runs, destroy resources, leave the cluster. A `kill` meanwhile
        (from another thread) cuts the wait short."""
        if self._begin_end():
            self._quiesce()
        self._slots.wait_empty(timeout)
        if not self._killed.is_set():
            self._finish()
        self._stopped.wait(timeout)

    def kill(self) -> None:
        """Immediate: cancel running tasks; after ``kill_grace`` seconds, tasks still
        running are handed back (daemons) or failed with TaskCancelled (managers)."""
        self._killed.set()
        self._slots.killing()
        self._slots.halting.set()  # first: a slot whose task the kill ends takes no other
        self._slots.cancel_running(CancelReason.KILLED)
        if self._begin_end():
            self._quiesce()
        # A stop in another thread may be quiescing: what it hands back must be back
        # before this process may end.
        self._quiesced.wait()
        self._slots.cancel_running(CancelReason.KILLED)  # any task that started meanwhile
        stuck = self._slots.settle_running(self._config.kill_grace)
        if stuck and self._kill_mode is KillMode.REQUEUE:
            self._hand_back(stuck, "running", logging.WARNING)
        elif stuck:
            self._runner.fail_cancelled(stuck)
        # Finishing waits on Redis (leaving the cluster) and on `on_destroy`, user code
        # that may hang (here, or in a stop finishing in another thread): a kill must
        # still return, so it waits for the end a bounded time.
        threading.Thread(target=self._finish, name="tasker-finish", daemon=True).start()
        if not self._stopped.wait(_FINISH_S + 4 * self._config.connect_timeout):
            log.error("killed, but the worker has not finished ending (an on_destroy that "
                      "hangs, or a silent Redis); not waiting for it")  # fmt: skip

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
        try:
            self._slots.halting.set()
            self._fetcher.stop(timeout=5)
            unstarted = self._local.drain()
            self._local.close()
            self._hand_back(unstarted, "fetched but unstarted", logging.INFO)
        finally:
            self._quiesced.set()

    def _hand_back(self, jobs: list[Job], what: str, level: int) -> None:
        """Hand ``jobs`` back, each to its own queue."""
        for queue in self._queues:
            mine = [job for job in jobs if job.queue is queue]
            if not mine:
                continue
            try:
                handed = queue.store.requeue(self.worker_id, _held(mine))
                log.log(level, "handed %d %s task(s) back to the queue %r",
                        handed, what, queue.name)  # fmt: skip
            except RedisUnavailable as exc:
                log.error("could not hand back %d %s task(s) to queue %r: %s",
                          len(mine), what, queue.name, exc)  # fmt: skip

    def _finish(self) -> None:
        with self._end_lock:
            if self._finished:
                return
            self._finished = True
        self._runner.close(timeout=5)
        self._heartbeat_stop.set()
        self._nudge.set()
        self._heartbeat.join(5)
        for _, lease in self._leases:
            lease.leave()
        self._queues.close()
        self._pool.close()
        self._aloop.close()
        self._stopped.set()
        log.info("worker %s stopped", self.worker_id)

    # -- running now (TaskManager.run_task) ----------------------------------------------
    def run_now(self, task_id: str, payload: bytes) -> Outcome:
        """Run a signed task envelope now, in the calling thread, with a pooled resource
        (``resource_pool_size`` idle ones are kept); it is never queued. An unhealthy error
        replaces the resource and retries, as in a slot."""
        retries = 0
        while True:
            resource = self._pool.acquire()
            job = Job(Fetched(task_id, payload, retries, False), self._queues.first)
            report = self._runner.executor.run(job, resource)
            self._pool.release(resource, healthy=not report.unhealthy)
            if report.status != Status.RETRIED:
                return decode_result(job.queue.signer.open(report.finished.result))
            retries += 1

    # -- the heartbeat ------------------------------------------------------------------
    def stats_fields(self, queue: str | None = None) -> dict[str, Any]:
        """This worker's entry in the stats of ``queue`` (None: the first it serves), as
        of now. A worker serving several queues shows all its slots in the stats of each,
        and there the tasks of that queue it runs."""
        counts = self._slots.counts()
        running = counts.running
        if len(self._queues) > 1:
            served = next((q for q in self._queues if q.name == queue), self._queues.first)
            running = len(self._slots.running(served))
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_ms": self._started_ms,
            "base": self._config.worker_count,
            "active": counts.ready,
            "burst": counts.burst,
            "running": running,
            "idle": max(0, counts.ready - counts.running) + self._pool.idle,
        }

    def _beat_loop(self) -> None:
        """Beat every ``heartbeat_interval`` (at once when slots come or go) and judge
        bursting every ``burst_interval``."""
        tick = min(self._config.heartbeat_interval, self._config.burst_interval)
        next_burst = self._clock.monotonic() + self._config.burst_interval
        while True:
            self._clock.wait(self._nudge, tick)
            self._nudge.clear()
            if self._heartbeat_stop.is_set():
                return
            if self._on_beat is not None:
                self._on_beat(self._clock.monotonic())  # alive, whatever Redis says
            burst = self._clock.monotonic() >= next_burst and not self._slots.halting.is_set()
            if burst:
                next_burst = self._clock.monotonic() + self._config.burst_interval
            self._beat(burst)

    def _beat(self, burst: bool = False) -> None:
        """One heartbeat on each queue, and what follows from their replies; never raises
        (the heartbeat must outlive any error of ours, or the worker would lose its
        lease)."""
        queued = 0
        for queue, lease in self._leases:
            if self._on_beat is not None and queue is not self._queues.first:
                # alive: a heartbeat waiting on a silent Redis takes no longer per beat
                # of the pulse than with one queue (see Config.hung_after)
                self._on_beat(self._clock.monotonic())
            try:
                hb = lease.renew(self.stats_fields(queue.name))
                if hb is None:
                    burst = False  # the backlog is not known
                    continue
                if lease.back:  # results held back by the outage go now, not after a backoff
                    self._runner.retry_writes()
                queued += hb.pending + hb.priority
                self._react(queue, lease, hb)
            except Exception:
                log.exception("handling a heartbeat failed")
        if burst:
            try:
                self._burst.adjust(queued)
            except Exception:
                log.exception("judging bursting failed")

    def _react(self, queue: ServedQueue, lease: Lease, hb: Heartbeat) -> None:
        if hb.was_dead:
            self._lost_lease(queue)
        lease.recover_stale(hb)
        if lease.stop_requested(hb) and not self._slots.halting.is_set():
            log.info("stop requested through Redis (queue %r)", queue.name)
            if self._on_stop_request is not None:
                self._on_stop_request()

    def _lost_lease(self, queue: ServedQueue) -> None:
        """This worker was taken for dead on ``queue`` (no heartbeat in time: frozen,
        partitioned) and the tasks it held there were handed to others. It may have
        fetched again since (a fetch can run before the heartbeat that tells it), so
        nothing is dropped: what it fetched from that queue goes back (the script hands
        back only deliveries it still holds), and only the running tasks it no longer
        holds are cancelled (their results would be refused)."""
        # The running jobs first: any started after the read below was fetched after it,
        # so is held, and must not be taken for one it lost.
        running = self._slots.running(queue)
        unstarted = self._local.drain(queue)
        self._hand_back(unstarted, "fetched but unstarted", logging.WARNING)
        try:
            held = queue.store.held(self.worker_id)
        except RedisUnavailable as exc:
            # Cancelling a task it still holds would fail that task: better to let the
            # ones it lost run on, their results refused.
            log.error("this worker was taken for dead; could not check its tasks: %s", exc)
            return
        lost = [job for job in running if held.get(job.task_id) != job.fetched.delivery]
        for job in lost:
            job.cancel(CancelReason.LEASE_LOST)
        log.error("this worker missed its heartbeats and was taken for dead on queue %r; its "
                  "tasks there were handed to other workers (%d running ones cancelled)",
                  queue.name, len(lost))  # fmt: skip
