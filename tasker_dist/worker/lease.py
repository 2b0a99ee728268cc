"""`Lease`: this worker's hold on the tasks it takes, renewed by its heartbeat.

Each heartbeat publishes the worker's stats and pushes its lease forward (it is stale
after three missed beats plus a second, judged by Redis time). Its reply says whether
this worker had been taken for dead meanwhile (its tasks were handed to others), which
peers went stale (whose tasks this worker hands back), and whether a stop was asked for
through Redis.

After an outage (a failover, a restart, a partition) every peer's lease looks stale:
they were cut off by the same outage and have not beaten again yet. So a worker that
could not reach Redis judges no peer dead until it has been back for `grace_s`: long
enough for a peer whose heartbeat was stuck in a connection attempt to beat again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..clock import Clock
from ..errors import RedisUnavailable
from ..metrics import RATE_WINDOW_S
from ..store import Heartbeat, QueueStore

__all__ = ["Lease", "lease_ttl_ms"]

log = logging.getLogger("tasker_dist.worker")


def lease_ttl_ms(heartbeat_s: float) -> int:
    """How long a lease lasts without a heartbeat: three missed beats plus a second."""
    return int(max(3 * heartbeat_s, 1.0) * 1000) + 1000


class Lease:
    def __init__(
        self,
        store: QueueStore,
        worker_id: str,
        heartbeat_s: float,
        started_ms: int,
        clock: Clock,
        connect_timeout: float,
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._clock = clock
        #: How long the lease lasts without a heartbeat (also the stats hash's TTL).
        self.ttl_ms = lease_ttl_ms(heartbeat_s)
        #: After an outage, how long before a stale peer is taken for dead: a lease, and
        #: what a heartbeat waiting on a silent Redis may take (two calls, tried twice).
        self.grace_s = self.ttl_ms / 1000 + 4 * connect_timeout
        self._judge_after = 0.0  # monotonic time from which stale peers are recovered
        self._cut_off = False  # the last heartbeat failed
        #: The last heartbeat got through after one that failed: Redis is back.
        self.back = False
        self._stop_seen_ms = started_ms  # stop requests up to here are handled

    def renew(self, stats: Mapping[str, Any]) -> Heartbeat | None:
        """Heartbeat with ``stats``; None if Redis could not be reached (logged)."""
        try:
            hb = self._store.heartbeat(self._worker_id, self.ttl_ms, RATE_WINDOW_S + 2, stats)
        except RedisUnavailable as exc:
            log.warning("heartbeat failed: %s", exc)
        except Exception:
            log.exception("heartbeat failed")
        else:
            self.back = self._cut_off
            if self._cut_off:
                self._cut_off = False
                self._judge_after = self._clock.monotonic() + self.grace_s
            return hb
        self._cut_off = True
        return None

    def recover_stale(self, hb: Heartbeat) -> None:
        """Hand back the tasks of the peers whose lease ran out (each task once, whoever
        else recovers them at the same time), unless this worker is just back from an
        outage that may have cut them off too."""
        if not hb.stale_workers or self._clock.monotonic() < self._judge_after:
            return
        try:
            if moved := self._store.recover(hb.stale_workers):
                log.warning("handed back %d task(s) of dead worker(s) %s to the queue %r",
                            moved, ", ".join(hb.stale_workers), self._store.keys.queue)  # fmt: skip
        except RedisUnavailable as exc:
            log.warning("recovering dead workers' tasks failed: %s", exc)

    def stop_requested(self, hb: Heartbeat) -> bool:
        """True once for each new stop request (for all workers, or for this one)."""
        asked = max(hb.stop_all_ms or 0, hb.stop_me_ms or 0)
        if asked <= self._stop_seen_ms:
            return False
        self._stop_seen_ms = asked
        return True

    def leave(self) -> None:
        """Leave the cluster at once (not after the lease runs out), handing back any task
        still held."""
        try:
            if handed := self._store.leave(self._worker_id):
                log.warning("handed %d unfinished task(s) back on leaving", handed)
        except RedisUnavailable as exc:
            log.warning("could not leave the cluster cleanly: %s", exc)
