"""Child processes that must not outlive the process that started them (Linux)."""

from __future__ import annotations

import ctypes
import os
import signal

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Run in a child between fork and exec: ask the kernel to send ``signum`` to it when
    its parent dies. Only one prctl call (no locks, no allocation) and a look at the
    parent, so it is safe in a ``preexec_fn`` even when the parent runs threads.
    ``parent`` is the pid of the process that forked this one: if it died before the
    request, the child gets ``signum`` at once (the kernel never would). A no-op where
    prctl is missing."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)
    except OSError:
        return
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signum)
