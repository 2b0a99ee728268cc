"""`Monitor`: the worker's clock thread: heartbeat with stats, stop requests, bursting."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import RedisUnavailable
from ..metrics.stats import RATE_WINDOW_S
from ..store.calls import Heartbeat
from ..store.queue_store import QueueStore

__all__ = ["Monitor"]

log = logging.getLogger("tasker_dist.worker")


class Monitor:
    def __init__(
        self,
        store: QueueStore,
        worker_id: str,
        heartbeat_s: float,
        burst_s: float,
        fields: Callable[[], Mapping[str, Any]],
        on_beat: Callable[[Heartbeat], None],
        on_burst_tick: Callable[[Heartbeat], None],
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._heartbeat_s = heartbeat_s
        self._burst_s = burst_s
        self._fields = fields
        self._on_beat = on_beat
        self._on_burst_tick = on_burst_tick
        # Stats expire if three heartbeats in a row are missed: the daemon is gone.
        self.ttl_ms = int(max(3 * heartbeat_s, 1.0) * 1000) + 1000
        self._stopped = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tasker-monitor", daemon=True)

    def start(self) -> None:
        self.beat()  # registered before start() returns
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._thread.join(5)

    def nudge(self) -> None:
        """Beat now rather than at the next tick (a slot came up or went away)."""
        self._wake.set()

    def beat(self) -> Heartbeat | None:
        try:
            hb = self._store.heartbeat(
                self._worker_id, self.ttl_ms, RATE_WINDOW_S + 2, self._fields()
            )
            self._on_beat(hb)
        except RedisUnavailable as exc:
            log.warning("heartbeat failed: %s", exc)
            return None
        except Exception:
            log.exception("heartbeat failed")
            return None
        return hb

    def _run(self) -> None:
        tick = min(self._heartbeat_s, self._burst_s)
        next_burst = time.monotonic() + self._burst_s
        while not self._stopped.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            if self._stopped.is_set():
                return
            hb = self.beat()
            if hb is not None and time.monotonic() >= next_burst:
                next_burst = time.monotonic() + self._burst_s
                try:
                    self._on_burst_tick(hb)
                except Exception:
                    log.exception("burst decision failed")
