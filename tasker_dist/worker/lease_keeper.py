"""`LeaseKeeper`: the supervisor's side of its worker processes' leases.

A worker process renews its own lease with its heartbeat thread, but a task that holds
the interpreter lock (one long C call) starves that thread, and the process would be
taken for dead and its tasks run again elsewhere while they still run. The supervisor
never runs user code, so it renews, every heartbeat interval, the lease of each of its
worker processes whose heartbeat has gone quiet, while the process lives (on every queue
the daemon serves: a worker process holds a lease on each). It does not for a process
that is:

- stopped (SIGSTOP, a debugger): frozen, as a frozen host would be; peers recover its
  tasks once its lease runs out, as before;
- hung: its heartbeat has not run for ``hung_after`` seconds and it used less than
  `BUSY_CPU_SHARE` of a core meanwhile (a busy process holding the lock uses a core;
  one stuck in a call that holds the lock and waits uses none). The supervisor kills
  it, hands its tasks back and starts another (see supervisor.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..clock import Clock
from ..errors import RedisUnavailable
from ..store import QueueStore
from .lease import lease_ttl_ms
from .pulse import Pulse, cpu_seconds, is_stopped

__all__ = ["BUSY_CPU_SHARE", "LeaseKeeper", "Watched"]

log = logging.getLogger("tasker_dist.supervisor")

#: A process that used at least this share of a core since its last heartbeat is busy.
BUSY_CPU_SHARE = 0.1


@dataclass
class Watched:
    """A worker process as the keeper sees it."""

    pid: int
    worker_id: str
    pulse: Pulse
    seen: float = -1.0  # the last heartbeat time read from its pulse
    seen_at: float = 0.0  # when the keeper read it
    cpu_then: float = 0.0  # the process's CPU time then
    hung: bool = False  # found hung (and killed): judged no more


class LeaseKeeper:
    def __init__(
        self,
        stores: Sequence[QueueStore],
        heartbeat_s: float,
        hung_after: float | None,
        clock: Clock,
    ) -> None:
        self._stores = tuple(stores)
        self._heartbeat_s = heartbeat_s
        self._ttl_ms = lease_ttl_ms(heartbeat_s)
        self._hung_after = hung_after
        self._clock = clock
        self._next_renewal = clock.monotonic()

    def tick(self, processes: Sequence[Watched]) -> list[Watched]:
        """Renew the leases that are due; returns the processes found hung."""
        now = self._clock.monotonic()
        quiet: list[Watched] = []
        hung: list[Watched] = []
        for p in processes:
            if p.hung:
                continue
            last = p.pulse.last()
            if last != p.seen:
                p.seen, p.seen_at, p.cpu_then = last, now, cpu_seconds(p.pid) or 0.0
            silent = now - last
            if silent <= self._heartbeat_s or is_stopped(p.pid):
                continue
            watched = now - p.seen_at  # the CPU it used is known since then
            if self._hung_after is not None and min(silent, watched) > self._hung_after:
                used = (cpu_seconds(p.pid) or 0.0) - p.cpu_then
                if used < BUSY_CPU_SHARE * watched:
                    log.error("worker process %d (%s) is hung: its heartbeat has not run for "
                              "%.0fs and it used %.1fs of CPU meanwhile", p.pid, p.worker_id,
                              silent, used)  # fmt: skip
                    p.hung = True
                    hung.append(p)
                    continue
            quiet.append(p)
        if quiet and now >= self._next_renewal:
            self._next_renewal = now + self._heartbeat_s
            ids = [p.worker_id for p in quiet]
            for store in self._stores:
                try:
                    store.renew(ids, self._ttl_ms)
                except RedisUnavailable as exc:
                    log.warning("could not renew the leases of busy worker processes on "
                                "queue %r: %s", store.keys.queue, exc)  # fmt: skip
        return hung
