"""One worker process: a `WorkerRuntime` driven by signals (run by the supervisor).

SIGTERM or SIGINT stops it gracefully; any such signal once a stop is under way (asked
for by a signal or through Redis) kills it. Before a clean exit it writes how it ended
(the name of its `ExitCode`) to its status pipe, so the supervisor can tell a clean exit
from a task that ended the interpreter (``os._exit``) with the same exit code.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from ..config import Config
from ..errors import TaskerError
from ..signals import SignalInbox
from ..status import ExitCode
from ..store import QueueStore
from .pulse import Pulse
from .runtime import WorkerRuntime

__all__ = ["ASK_KILL", "ASK_STOP", "STOP_SIGNALS", "serve"]

log = logging.getLogger("tasker_dist.worker")

#: Each stops gracefully, the second kills.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: What the supervisor sends its worker processes for a stop, then for a kill: two
#: different signals, which the kernel cannot merge into one while a worker process
#: that is starting still blocks them.
ASK_STOP, ASK_KILL = STOP_SIGNALS


def _report(status_fd: int | None, code: ExitCode) -> ExitCode:
    if status_fd is not None:
        os.write(status_fd, code.name.encode())
        os.close(status_fd)
    return code


def serve(
    config: Config[Any], worker_id: str | None, status_fd: int | None, pulse: Pulse | None = None
) -> int:
    """Run until stopped; returns the process exit code. Each heartbeat beats ``pulse``,
    which the supervisor reads."""
    assert config.redis_url is not None
    # The supervisor forks worker processes with these blocked (see supervisor.py): any
    # sent meanwhile are received once the inbox is in place, and counted.
    with SignalInbox(STOP_SIGNALS) as signals:
        store = QueueStore(config.redis_url, config.served_queues[0], config.connect_timeout,
                           wait_replicas=config.wait_replicas)  # fmt: skip
        try:
            return _report(status_fd, _run(config, store, worker_id, signals, pulse))
        finally:
            store.close()


def _run(
    config: Config[Any],
    store: QueueStore,
    worker_id: str | None,
    signals: SignalInbox,
    pulse: Pulse | None,
) -> ExitCode:
    requested = threading.Event()  # a stop asked for through Redis (`tasker stop`)

    def on_stop_request() -> None:
        requested.set()
        signals.nudge()

    runtime = WorkerRuntime(
        config, store, worker_id=worker_id, on_stop_request=on_stop_request,
        on_beat=None if pulse is None else pulse.beat,
    )  # fmt: skip
    try:
        runtime.start()
    except TaskerError as exc:
        log.error("cannot start: %s", exc)
        return ExitCode.NO_START
    signals.wait_for(lambda: signals.count or requested.is_set())
    spent = min(signals.count, 1)  # the signal that asked for this stop, if one did
    log.info("stopping: finishing running tasks (signal again to kill)")

    def stop() -> None:
        runtime.stop()
        signals.nudge()

    threading.Thread(target=stop, name="tasker-stop", daemon=True).start()
    signals.wait_for(lambda: runtime.stopped or signals.count > spent)
    if runtime.stopped:
        return ExitCode.STOPPED
    log.warning("second signal: killing")
    runtime.kill()
    return ExitCode.KILLED
