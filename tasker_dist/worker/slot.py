"""`Slot`: one worker thread that owns one resource for its whole life (SPEC §4)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .job import Job

if TYPE_CHECKING:
    from .runtime import WorkerRuntime

__all__ = ["Slot"]

log = logging.getLogger("tasker_dist.worker")


class Slot:
    """Creates its resource, runs tasks until told to leave, replaces the resource after
    an unhealthy error (the slot itself lives on), and destroys it on the way out."""

    def __init__(self, runtime: WorkerRuntime, index: int, burst: bool) -> None:
        self.index = index
        self.burst = burst
        self.ready = False  # holds a live resource
        self.job: Job | None = None  # the task running now
        self.retiring = False
        self._runtime = runtime
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
        return self.retiring or self._runtime.draining

    def _run(self) -> None:
        rt = self._runtime
        alive, resource = rt.hooks.create(self.name, rt.halting)
        try:
            while alive:
                if not self.ready:
                    self.ready = True
                    rt.monitor.nudge()  # show the new resource in the stats now
                job = rt.local.take(self._leave, self._hold)
                if job is None:
                    break
                try:
                    report = rt.execute(job, resource)
                finally:
                    self.job = None
                if report.unhealthy:
                    log.warning(
                        "%s: resource unhealthy; destroying it and creating a new one", self.name
                    )
                    self.ready = False
                    rt.hooks.destroy(self.name, resource)
                    alive, resource = rt.hooks.create(self.name, rt.halting)
        except BaseException:
            log.exception("%s crashed", self.name)
            raise
        finally:
            self.ready = False
            if alive:
                rt.hooks.destroy(self.name, resource)
            rt.slot_exited(self)
