"""The ``tasker-worker`` parent process: forks worker processes and keeps them running.

A task that ends its interpreter (``os._exit``, a segfault, the OOM killer) takes its
worker process with it; the supervisor logs that loudly, hands the tasks that process
held back to the queue at once, and starts a new process (after a growing pause, so a
task that kills every process it touches cannot spin the host). Signals are passed on:
the first stops the workers gracefully, a second kills them; once a stop was asked for,
no worker process is started or restarted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from ..backoff import Backoff
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import RedisUnavailable
from ..parent_death import die_with_parent
from ..signals import SignalInbox
from ..status import ExitCode
from ..store import QueueStore
from .lease_keeper import LeaseKeeper, Watched
from .process import ASK_KILL, ASK_STOP, STOP_SIGNALS
from .pulse import Pulse
from .runtime import new_worker_id

__all__ = ["RestartPause", "supervise"]

log = logging.getLogger("tasker_dist.supervisor")

_FIRST_PAUSE_S = 0.5
_MAX_PAUSE_S = 30.0
_HEALTHY_RUN_S = 60.0  # a process that lived this long resets the pause
_POLL_S = 0.05  # how often the supervisor looks at its children
#: What a worker process writes to its status pipe when it ends by itself.
_CLEAN_ENDS = {ExitCode.STOPPED.name.encode(), ExitCode.KILLED.name.encode()}


class RestartPause:
    """When a worker process that died may be started again: after a pause that doubles
    (0.5 s up to 30 s) while deaths repeat, so a task that kills every process it touches
    cannot spin the host; a process that lived a minute resets it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._backoff = Backoff(_FIRST_PAUSE_S, _MAX_PAUSE_S, jitter=0.0)
        self._started_at = clock.monotonic()
        self._restart_at: float | None = None

    def started(self) -> None:
        self._started_at = self._clock.monotonic()
        self._restart_at = None

    def lived(self) -> float:
        """Seconds since the process started."""
        return self._clock.monotonic() - self._started_at

    def died(self, lived: float) -> float:
        """Note the death of a process that lived ``lived`` seconds; returns the pause,
        which starts now."""
        if lived >= _HEALTHY_RUN_S:
            self._backoff.reset()
        pause = self._backoff.next()
        self._restart_at = self._clock.monotonic() + pause
        return pause

    @property
    def waiting(self) -> bool:
        """True between a death and the restart."""
        return self._restart_at is not None

    def due(self) -> bool:
        """True once the pause after a death is over."""
        return self._restart_at is not None and self._clock.monotonic() >= self._restart_at


#: Runs one worker process (in the forked child): (worker id, status fd, pulse) -> exit
#: code. Its heartbeat must beat the pulse (see pulse.py).
WorkerMain = Callable[[str, int, Pulse], int]


@dataclass
class _Child:
    index: int
    main: WorkerMain
    restarts: RestartPause
    pid: int | None = None
    worker_id: str = ""
    status_fd: int = -1
    exit_code: int | None = None
    status: bytes = field(default=b"")
    watched: Watched | None = None  # for the lease keeper, while the process runs

    def start(self, signals: SignalInbox, now: float) -> None:
        self.worker_id = new_worker_id()
        pulse = Pulse(now)
        read_fd, write_fd = os.pipe()
        # Forked, not exec'd: the child starts with Python, tasker_dist and the user's
        # Config module already imported (a fresh interpreter would spend ~0.15 s on
        # that). Signals stay blocked across the fork until the child has its own
        # inbox: one delivered before would be counted in the supervisor's.
        supervisor = os.getpid()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:
            signals.close()
            _run_child(self.main, self.worker_id, pulse, supervisor, read_fd, write_fd)
        self.pid = pid  # before unblocking: a signal pending since the fork reaches it
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(write_fd)
        self.status_fd = read_fd
        self.watched = Watched(pid, self.worker_id, pulse)
        self.restarts.started()
        log.info("started worker process %d (%s)", pid, self.worker_id)

    def send_signal(self, signum: int) -> None:
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    @property
    def hung(self) -> bool:
        """Found hung by the lease keeper (and killed for it)."""
        return self.watched is not None and self.watched.hung

    def collect(self) -> int | None:
        """The exit code once the process ended (reading its status), else None."""
        if self.pid is None:
            return None
        pid, wait_status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        chunks = []
        while chunk := os.read(self.status_fd, 64):
            chunks.append(chunk)
        os.close(self.status_fd)
        self.status = b"".join(chunks)
        self.pid = None
        if self.watched is not None:
            self.watched.pulse.close()
            self.watched = None
        return os.waitstatus_to_exitcode(wait_status)


def _run_child(
    main: WorkerMain, worker_id: str, pulse: Pulse, supervisor: int, read_fd: int, write_fd: int
) -> NoReturn:
    """The forked worker process: never returns into the supervisor's code."""
    code: int = ExitCode.KILLED
    try:
        os.close(read_fd)
        os.setsid()  # a terminal's Ctrl-C reaches the supervisor only, which passes it on
        die_with_parent(signal.SIGKILL, supervisor)
        # The forwarded signals are still blocked: `main` unblocks them once its own
        # inbox receives them, so a stop or kill sent while it starts is counted.
        code = main(worker_id, write_fd, pulse)
    except BaseException:
        log.exception("worker process %s failed", worker_id)
    finally:
        try:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:  # even if a flush fails (a closed pipe): never back into the supervisor
            os._exit(code)


def _describe(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def supervise(
    main: WorkerMain,
    processes: int,
    stores: Sequence[QueueStore],
    signals: SignalInbox,
    keeper: LeaseKeeper,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Run ``processes`` worker processes, each forked to call ``main``, until they stop;
    returns the exit code. ``signals`` receives `STOP_SIGNALS` (those that came before
    count too): the first stops the worker processes, the second kills them. ``keeper``
    keeps the leases of processes too busy to heartbeat, and finds the hung ones. The
    tasks of a process that died go back to their queues, ``stores``."""
    children = [_Child(i, main, RestartPause(clock)) for i in range(processes)]
    asked = 0  # how many of (stop, kill) the worker processes were sent

    while any(c.exit_code is None for c in children):
        while asked < min(signals.count, 2):
            for child in children:
                child.send_signal((ASK_STOP, ASK_KILL)[asked])
            asked += 1
        for child in children:
            if child.exit_code is not None:
                continue
            if child.pid is None:  # not started yet, or waiting to be restarted
                if signals.count:
                    child.exit_code = ExitCode.STOPPED
                elif not child.restarts.waiting or child.restarts.due():
                    child.start(signals, clock.monotonic())
                continue
            hung = child.hung  # before collect() forgets it
            code = child.collect()
            if code is None:
                continue
            if not hung and (signals.count or child.status in _CLEAN_ENDS or code in (
                ExitCode.BAD_CONFIG, ExitCode.NO_START
            )):  # fmt: skip
                child.exit_code = code
                continue
            _crashed(child, code, stores, "it was hung" if hung else "most likely killed by "
                     "the task it was running")  # fmt: skip
        running = [c.watched for c in children if c.watched is not None]
        for stuck in keeper.tick(running):
            log.error("killing hung worker process %d; its tasks go back to the queue", stuck.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(stuck.pid, signal.SIGKILL)
        signals.wait(_POLL_S)
    # a worker process ended by a signal (negative code) was killed, as far as users go
    return max(ExitCode.KILLED if (c.exit_code or 0) < 0 else (c.exit_code or 0) for c in children)


def _crashed(child: _Child, code: int, stores: Sequence[QueueStore], why: str) -> None:
    lived = child.restarts.lived()
    handed, failed = 0, False
    for store in stores:
        try:
            handed += store.recover([child.worker_id], only_stale=False)
        except RedisUnavailable as exc:
            failed = True
            log.error(
                "could not hand back the tasks of %s on queue %r now (%s); live workers "
                "will once its heartbeat goes stale",
                child.worker_id,
                store.keys.queue,
                exc,
            )
    pause = child.restarts.died(lived)  # from now: a slow hand-back does not shorten it
    log.error(
        "worker process %s died (%s) after %.1fs, %s; %s; restarting it in %.1fs",
        child.worker_id, _describe(code), lived, why,
        f"handed {handed} task(s) it held back to the queue" if not failed else "",
        pause,
    )  # fmt: skip
    sys.stderr.flush()
