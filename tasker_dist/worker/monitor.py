"""`Monitor`: the worker's clock thread: heartbeat with stats, stop requests, bursting."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..commands import Heartbeat
from ..errors import RedisUnavailable
from ..stats import RATE_WINDOW_S
from ..store import QueueStore

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
        self._thread = threading.Thread(target=self._run, name="tasker-monitor", daemon=True)

    def start(self) -> None:
        self.beat()  # visible in stats before start() returns
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)

    def beat(self) -> Heartbeat | None:
        try:
            hb = self._store.heartbeat(
                self._worker_id, self.ttl_ms, RATE_WINDOW_S + 2, self._fields()
            )
        except RedisUnavailable as exc:
            log.warning("heartbeat failed: %s", exc)
            return None
        self._on_beat(hb)
        return hb

    def _run(self) -> None:
        tick = min(self._heartbeat_s, self._burst_s)
        since_burst = 0.0
        while not self._stopped.wait(tick):
            hb = self.beat()
            since_burst += tick
            if hb is not None and since_burst >= self._burst_s - 1e-9:
                since_burst = 0.0
                self._on_burst_tick(hb)
