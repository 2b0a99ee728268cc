"""One worker process: a `WorkerRuntime` driven by signals (run by the supervisor).

SIGTERM or SIGINT stops it gracefully; a second signal kills it. Before a clean exit it
writes how it ended (the name of its `ExitCode`) to its status pipe, so the supervisor
can tell a clean exit from a task that ended the interpreter (``os._exit``) with the
same exit code.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

from ..config import Config
from ..errors import TaskerError
from ..status import ExitCode
from ..store import QueueStore
from .runtime import WorkerRuntime

__all__ = ["STOP_SIGNALS", "serve"]

log = logging.getLogger("tasker_dist.worker")

#: Each stops gracefully, the second kills (the supervisor passes them on).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _report(status_fd: int | None, code: ExitCode) -> ExitCode:
    if status_fd is not None:
        os.write(status_fd, code.name.encode())
        os.close(status_fd)
    return code


def serve(config: Config[Any], worker_id: str | None, status_fd: int | None) -> int:
    """Run until stopped; returns the process exit code."""
    assert config.redis_url is not None
    store = QueueStore(config.redis_url, config.queue, config.connect_timeout)
    signals: list[int] = []
    wake = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals.append(signum)
        wake.set()

    runtime = WorkerRuntime(config, store, worker_id=worker_id, on_stop_request=wake.set)
    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    # the supervisor forks worker processes with these blocked (see supervisor.py)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    try:
        runtime.start()
    except TaskerError as exc:
        log.error("cannot start: %s", exc)
        return ExitCode.NO_START
    wake.wait()
    seen = len(signals)
    log.info("stopping: finishing running tasks (signal again to kill)")
    threading.Thread(target=runtime.stop, name="tasker-stop", daemon=True).start()
    while not runtime.wait(0.1):
        if len(signals) > seen:
            log.warning("second signal: killing")
            runtime.kill()
            store.close()
            return _report(status_fd, ExitCode.KILLED)
    store.close()
    return _report(status_fd, ExitCode.STOPPED)
