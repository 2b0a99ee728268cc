"""Every outcome and state word of tasker-dist, defined once.

They are `StrEnum`s, so each member is the very string that goes to Redis or into an
envelope (``Status.COMPLETED == "completed"``) and values read back as plain strings
compare equal to them.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["CancelReason", "ExitCode", "FailureKind", "KillMode", "ManagerState", "Status"]


class Status(StrEnum):
    """What a worker reports for one task (complete.lua reads these words)."""

    COMPLETED = "completed"  # it returned a value
    FAILED = "failed"  # it has no value: see its `FailureKind`
    RETRIED = "retried"  # back to the head of the priority lane (unhealthy resource)


class FailureKind(StrEnum):
    """Why a task has no value: the names stored in a failed result envelope."""

    ERROR = "error"
    MAX_RETRIES = "max_retries"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"
    INVALID = "invalid"
    QUARANTINED = "quarantined"


class CancelReason(StrEnum):
    """Why a running task was told to stop (`TaskContext.cancel_reason`)."""

    KILLED = "killed"
    TIMEOUT = "timeout"
    LEASE_LOST = "lease lost"


class KillMode(StrEnum):
    """What a kill does with tasks still running after ``kill_grace``."""

    REQUEUE = "requeue"  # hand them back to the queue for another worker (daemons)
    CANCEL = "cancel"  # fail them with TaskCancelled for their callers (TaskManager)


class ManagerState(StrEnum):
    """A `TaskManager`'s life: it takes tasks only while running."""

    RUNNING = "running"
    STOPPING = "stopping"  # stop(): waiting for the tasks queued through it
    STOPPED = "stopped"


class ExitCode(IntEnum):
    """How ``tasker-worker`` (and each of its worker processes) ends."""

    STOPPED = 0  # a graceful stop
    KILLED = 1  # killed (a second signal), or a worker process ended by a signal
    BAD_CONFIG = 2  # a bad command line or Config
    NO_START = 3  # Redis could not be reached at start
