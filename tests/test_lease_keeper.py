"""`LeaseKeeper` against real processes: busy ones keep their lease, frozen ones lose it,
hung ones are reported."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

import pytest

from tasker_dist.clock import SYSTEM_CLOCK
from tasker_dist.worker.lease_keeper import LeaseKeeper, Watched
from tasker_dist.worker.pulse import Pulse

from .conftest import wait_until


class Recorder:
    """Stands in for the store: which leases were renewed."""

    def __init__(self) -> None:
        self.renewed: list[list[str]] = []

    def renew(self, worker_ids: Sequence[str], ttl_ms: int) -> None:
        self.renewed.append(list(worker_ids))


@pytest.fixture
def processes() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    spin = [sys.executable, "-c", "while True: pass"]
    procs = {
        "busy": subprocess.Popen(spin),  # as one long C call holding the lock: a core used
        "hung": subprocess.Popen(["sleep", "60"]),  # stuck, using no CPU
        "frozen": subprocess.Popen(spin),
        "beating": subprocess.Popen(["sleep", "60"]),  # its heartbeat runs
    }
    procs["frozen"].send_signal(signal.SIGSTOP)
    yield procs
    for p in procs.values():
        p.kill()
        p.wait()


def test_busy_processes_keep_their_lease_frozen_ones_do_not_hung_ones_are_found(
    processes: dict[str, subprocess.Popen[bytes]],
) -> None:
    store = Recorder()
    keeper = LeaseKeeper([store], heartbeat_s=0.1, hung_after=1.0, clock=SYSTEM_CLOCK)  # type: ignore[list-item]
    started = time.monotonic()
    watched = {name: Watched(p.pid, name, Pulse(started)) for name, p in processes.items()}
    found: list[str] = []

    def tick() -> bool:
        watched["beating"].pulse.beat(time.monotonic())
        found.extend(w.worker_id for w in keeper.tick(list(watched.values())))
        return bool(found)

    wait_until(tick, timeout=10, interval=0.05, message="a hung process to be found")
    assert found == ["hung"]
    assert time.monotonic() - started >= 1.0  # not before hung_after
    renewed = {wid for ids in store.renewed for wid in ids}
    assert renewed == {"busy", "hung"}  # "hung" until it was found out
    assert all("busy" in ids for ids in store.renewed[1:])
