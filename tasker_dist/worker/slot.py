"""`Slot`: one worker thread that owns one resource for its whole life."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .job import Job
from .local_queue import LocalQueue
from .resources import ResourceHooks
from .task_runner import TaskRunner

__all__ = ["Slot"]

log = logging.getLogger("tasker_dist.worker")


class Slot:
    """Creates its resource, runs tasks from ``jobs`` until told to leave, replaces the
    resource after an unhealthy error (the slot itself lives on), and destroys it on the
    way out. ``changed`` is set whenever its resource comes or goes (the heartbeat shows
    it at once); ``on_exit(slot)`` is called last, from the slot's own thread."""

    def __init__(
        self,
        index: int,
        burst: bool,
        *,
        hooks: ResourceHooks,
        jobs: LocalQueue,
        runner: TaskRunner,
        halting: threading.Event,
        changed: threading.Event,
        on_exit: Callable[[Slot], None],
    ) -> None:
        self.index = index
        self.burst = burst
        self.ready = False  # holds a live resource
        self.job: Job | None = None  # the task running now
        self.retiring = False
        self._hooks = hooks
        self._jobs = jobs
        self._runner = runner
        self._halting = halting
        self._changed = changed
        self._on_exit = on_exit
        self._thread = threading.Thread(target=self._run, name=f"tasker-slot-{index}", daemon=True)

    @property
    def name(self) -> str:
        return f"{'burst ' if self.burst else ''}slot {self.index}"

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _hold(self, job: Job) -> None:
        self.job = job

    def _leave(self) -> bool:
        return self.retiring or self._halting.is_set()

    def _run(self) -> None:
        alive, resource = self._hooks.create(self.name, self._halting)
        try:
            while alive:
                if not self.ready:
                    self.ready = True
                    self._changed.set()
                job = self._jobs.take(self._leave, self._hold)
                if job is None:
                    break
                try:
                    report = self._runner.run(job, resource)
                finally:
                    self.job = None
                if report.unhealthy:
                    log.warning(
                        "%s: resource unhealthy; destroying it and creating a new one", self.name
                    )
                    self.ready = False
                    self._hooks.destroy(self.name, resource)
                    alive, resource = self._hooks.create(self.name, self._halting)
        except BaseException:
            log.exception("%s crashed", self.name)
            raise
        finally:
            self.ready = False
            if alive:
                self._hooks.destroy(self.name, resource)
            self._on_exit(self)
