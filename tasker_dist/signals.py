"""`SignalInbox`: every signal a process receives, counted, for its main thread to act on.

Why not a handler that sets a flag or an `threading.Event`: Python runs signal handlers
in the main thread only, between two bytecodes. When the kernel delivers a signal to
another thread (it does when the main thread already has one pending, so with two
signals close together), a main thread blocked on a lock never wakes to run the handler;
two signals of the same number that arrive before it runs call it once; and a handler
that sets an `Event` the main thread is waiting on can deadlock on the Event's own lock.
Here the interpreter's C-level handler writes one byte per delivered signal to a pipe
(`signal.set_wakeup_fd`), whatever thread it lands on, and the main thread waits on that
pipe.

Two signals of the same number sent before the first was delivered are merged by the
kernel (standard signals do not queue): that is one signal, to every process.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType

__all__ = ["ENDING_SIGNALS", "SignalInbox"]

#: What ends an interactive command: Ctrl-C, ``kill``, the terminal closing.
ENDING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _counted_from_the_pipe(_signum: int, _frame: FrameType | None) -> None:
    """A Python-level handler must exist for the C-level one (which writes the byte) to
    run; it has nothing left to do."""


class SignalInbox:
    """Receives ``signums`` from `install` (main thread only) until `close`: each
    delivered signal is appended to `received`, none lost or merged, and `wait` returns
    as soon as one arrives (or another thread calls `nudge`)."""

    def __init__(self, signums: Iterable[int]) -> None:
        self._signums = frozenset(signums)
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._received: list[int] = []

    def install(self) -> None:
        """Receive from now on; signals that came while they were blocked (as the
        commands' entry points and the supervisor's forks do) are received now."""
        signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in self._signums:
            signal.signal(signum, _counted_from_the_pipe)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, self._signums)

    def close(self) -> None:
        """Stop receiving: the signals stay blocked until the process ends, since nothing
        acts on them any more, and Python's exit would otherwise restore their default
        action and let a late one change the exit status of work already done."""
        signal.pthread_sigmask(signal.SIG_BLOCK, self._signums)
        signal.set_wakeup_fd(-1)
        os.close(self._read)
        os.close(self._write)

    def __enter__(self) -> SignalInbox:
        self.install()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def received(self) -> list[int]:
        """The signals received so far, in order of delivery."""
        self._drain()
        return self._received

    @property
    def count(self) -> int:
        return len(self.received)

    def nudge(self) -> None:
        """Wake `wait` from any thread (after changing what its caller checks)."""
        with contextlib.suppress(BlockingIOError):  # a full pipe wakes the reader anyway
            os.write(self._write, b"\0")

    def wait(self, timeout: float | None = None) -> None:
        """Block until a signal or a nudge arrives that nothing here has read yet, or
        ``timeout`` seconds pass."""
        select.select([self._read], [], [], timeout)
        self._drain()

    def wait_for(self, condition: Callable[[], object]) -> None:
        """Block until ``condition()`` is true; it is checked after each signal and nudge."""
        while not condition():
            self.wait()

    def _drain(self) -> None:
        try:
            while data := os.read(self._read, 512):
                self._received.extend(b for b in data if b in self._signums)
        except BlockingIOError:
            pass
