"""Child processes that must not outlive the process that started them (Linux)."""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
from collections.abc import Iterable
from typing import Any

__all__ = ["die_with_parent", "spawn"]

_PR_SET_PDEATHSIG = 1
# Looked up before any fork: a preexec_fn must not load a library or resolve a symbol (it
# may run while another thread of the parent held the loader's lock, never released).
try:
    _PRCTL: Any = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except (OSError, AttributeError):  # not glibc Linux: no parent-death signal
    _PRCTL = None


def die_with_parent(signum: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Run in a child between fork and exec: ask the kernel to send ``signum`` to it when
    its parent dies. Only one prctl call (no locks, no allocation) and a look at the
    parent, so it is safe in a ``preexec_fn`` even when the parent runs threads.
    ``parent`` is the pid of the process that forked this one: if it died before the
    request, the child gets ``signum`` at once (the kernel never would). A no-op where
    prctl is missing."""
    if _PRCTL is None:
        return
    _PRCTL(_PR_SET_PDEATHSIG, signum)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signum)


def spawn(
    args: list[str], death_signal: int = signal.SIGTERM, **popen: Any
) -> subprocess.Popen[bytes]:
    """`subprocess.Popen` of ``args`` in a session of its own (a terminal's Ctrl-C then
    reaches only this process, which ends the child in its turn), that gets
    ``death_signal`` when this process dies, and that never runs this process's Python
    signal handlers: from the fork to the exec the child still has them, and Python's
    C-level handler would write to this process's `signal.set_wakeup_fd` pipe (a
    `SignalInbox`'s), reporting the child's signal as this process's. They stay blocked
    across the fork, and the child sets them back to their default actions before it
    unblocks them."""
    handled = {s for s in signal.valid_signals() if callable(signal.getsignal(s))}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, handled)
    child = functools.partial(_in_child, death_signal, os.getpid(), handled, mask)
    try:
        return subprocess.Popen(args, start_new_session=True, preexec_fn=child, **popen)  # noqa: PLW1509
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _in_child(death_signal: int, parent: int, handled: Iterable[int], mask: Iterable[int]) -> None:
    die_with_parent(death_signal, parent)
    for signum in handled:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
