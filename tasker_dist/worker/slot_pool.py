"""`SlotPool`: the slots of one worker: starting them, replacing one that dies, bursting,
and ending them all on stop or kill."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from ..clock import Clock
from ..status import CancelReason
from .job import Job
from .local_queue import LocalQueue
from .resources import ResourceHooks
from .served import ServedQueue
from .slot import Slot
from .task_runner import TaskRunner

__all__ = ["SlotCounts", "SlotPool"]

log = logging.getLogger("tasker_dist.worker")


@dataclass(frozen=True, slots=True)
class SlotCounts:
    slots: int  # alive or creating their resource
    ready: int  # holding a live resource
    burst: int  # burst slots holding a live resource
    running: int  # running a task
    busy: int  # running a task, or still creating their resource


class SlotPool:
    def __init__(
        self,
        hooks: ResourceHooks,
        jobs: LocalQueue,
        runner: TaskRunner,
        clock: Clock,
        changed: threading.Event,
    ) -> None:
        self._hooks = hooks
        self._jobs = jobs
        self._runner = runner
        self._clock = clock
        #: Set when slots come or go; the heartbeat waits on it to show them at once.
        self._changed = changed
        #: Set on stop or kill: slots take no new task and stop creating resources.
        self.halting = threading.Event()
        self._slots: list[Slot] = []
        self._lock = threading.Condition()
        self._next_index = 0
        self._killing = False  # a kill began: a graceful wait for the slots ends

    def add(self, count: int, burst: bool) -> None:
        with self._lock:
            new = []
            for _ in range(count):
                slot = Slot(self._next_index, burst, hooks=self._hooks, jobs=self._jobs,
                            runner=self._runner, halting=self.halting, changed=self._changed,
                            on_exit=self._exited)  # fmt: skip
                self._next_index += 1
                self._slots.append(slot)
                new.append(slot)
        for slot in new:
            slot.start()

    def _list(self) -> list[Slot]:
        with self._lock:
            return list(self._slots)

    def counts(self) -> SlotCounts:
        slots = self._list()
        return SlotCounts(
            slots=len(slots),
            ready=sum(1 for s in slots if s.ready),
            burst=sum(1 for s in slots if s.burst and s.ready),
            running=sum(1 for s in slots if s.job is not None),
            busy=sum(1 for s in slots if s.job is not None or not s.ready),
        )

    def ready_count(self) -> int:
        """Slots that hold a resource and will take tasks (the fetcher fetches for them)."""
        return sum(1 for s in self._list() if s.ready and not s.retiring)

    def task_ids(self, queue: ServedQueue | None = None) -> set[str]:
        """Tasks (of ``queue``, or of all) running in the slots now."""
        return {job.task_id for job in self.running(queue)}

    def running(self, queue: ServedQueue | None = None) -> list[Job]:
        """The jobs (of ``queue``, or of all) running in the slots now."""
        return [job for slot in self._list() if (job := slot.job) is not None
                and (queue is None or job.queue is queue)]  # fmt: skip

    def cancel_running(self, reason: CancelReason) -> None:
        for job in self.running():
            job.cancel(reason)

    def retire_idle_burst(self, count: int) -> int:
        """Ask up to ``count`` idle burst slots to leave; returns how many were asked."""
        idle = [s for s in self._list() if s.burst and s.job is None and not s.retiring]
        for slot in idle[:count]:
            slot.retiring = True
        self._jobs.wake()
        return min(count, len(idle))

    def killing(self) -> None:
        """A kill began: `wait_empty` calls return (the kill waits for the slots itself)."""
        with self._lock:
            self._killing = True
            self._lock.notify_all()

    def wait_empty(self, timeout: float | None, *, until_kill: bool = True) -> bool:
        """Wait until every slot has ended (True), or ``timeout`` passed or, with
        ``until_kill``, a kill began (False)."""
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        with self._lock:
            while self._slots:
                if until_kill and self._killing:
                    return False
                left = None if deadline is None else deadline - self._clock.monotonic()
                if left is not None and left <= 0:
                    return False
                self._clock.wait_on(self._lock, left)
            return True

    def settle_running(self, grace_s: float) -> list[Job]:
        """After a kill: give the slots ``grace_s`` seconds to end, then settle the jobs
        still running (so their slots report nothing) and return them."""
        self.wait_empty(grace_s, until_kill=False)
        return [job for slot in self._list() if (job := slot.job) and job.settle()]

    def _exited(self, slot: Slot) -> None:
        with self._lock:
            if slot in self._slots:
                self._slots.remove(slot)
            self._lock.notify_all()
        self._changed.set()
        if not self.halting.is_set() and not slot.retiring:
            log.error("%s exited unexpectedly; starting a replacement", slot.name)
            self.add(1, slot.burst)
