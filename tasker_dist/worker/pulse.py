"""`Pulse`: a worker process's sign of life, read by its supervisor.

A task may hold the interpreter lock for minutes (one long C call: a big regex, `sorted`,
`json.loads`, numeric code), starving every other thread of its process, the heartbeat
thread included. So the supervisor, which never runs user code, renews the leases of its
worker processes, and needs to tell a busy process from a hung one: each heartbeat of a
worker process writes the time into a page of memory it shares with its supervisor
(anonymous shared memory, mapped before the fork), and the supervisor reads it.
"""

from __future__ import annotations

import mmap
import os
import struct

__all__ = ["Pulse", "cpu_seconds", "is_stopped"]

_STAMP = struct.Struct("d")


class Pulse:
    """The monotonic time of a worker process's last heartbeat, shared across a fork."""

    def __init__(self, now: float) -> None:
        self._page = mmap.mmap(-1, _STAMP.size)  # MAP_SHARED | MAP_ANONYMOUS
        self.beat(now)

    def beat(self, now: float) -> None:
        # One aligned 8-byte store: the reader never sees half of it.
        _STAMP.pack_into(self._page, 0, now)

    def last(self) -> float:
        return float(_STAMP.unpack_from(self._page, 0)[0])

    def close(self) -> None:
        self._page.close()


_TICKS = float(os.sysconf("SC_CLK_TCK"))


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after it.
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float | None:
    """CPU time the process has used (user + system), or None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def is_stopped(pid: int) -> bool:
    """True if the process is stopped (SIGSTOP, a debugger): frozen, not busy."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] in ("T", "t")
