"""Every error tasker-dist raises, under one base class.

    TaskerError
    ├── ConfigError (also a ValueError)      a Config or CLI value is invalid
    ├── SerializationError                   a task, argument or result cannot be (de)serialized
    │   ├── PayloadRejected                  a payload is unsigned, forged or not ours
    │   └── PayloadTooLarge                  a task or result is over max_payload_bytes
    ├── RedisUnavailable                     Redis cannot be reached or answered with an error
    │   ├── QueueFull                        Redis is out of memory: nothing was queued
    │   ├── RedisFailover                    no master answers now: a failover is under way
    │   └── NotReplicated                    queued, but fewer replicas than wait_replicas have it
    ├── EmbeddedServerError                  the local Redis-compatible server could not start
    ├── ShuttingDown                         the manager or producer no longer takes tasks
    ├── TaskNotFound                         no task with that id was ever queued
    │   └── ResultExpired                    it finished, but its result has expired
    └── TaskFailed                           a task ran (or was to run) and did not succeed
        ├── TaskError                        the task raised and its exception cannot be rebuilt
        ├── MaxRetriesExceeded               an unhealthy error repeated past max_retries
        ├── TaskCancelled                    the task was cancelled (kill) before finishing
        ├── TaskTimeout                      the task ran past its deadline
        ├── TaskRejected                     a worker refused the payload (undecodable, forged)
        ├── TaskQuarantined                  the task kept ending its worker process
        └── TaskLost                         Redis lost the task (restarted without its data)

A task's own exception is re-raised as itself whenever it can be unpickled; the remote
traceback is attached as its ``__cause__`` (a :class:`RemoteTraceback`) and as a note.
redis-py errors never reach callers: they become :class:`RedisUnavailable`.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EmbeddedServerError",
    "MaxRetriesExceeded",
    "NotReplicated",
    "PayloadRejected",
    "PayloadTooLarge",
    "QueueFull",
    "RedisFailover",
    "RedisUnavailable",
    "RemoteTraceback",
    "ResultExpired",
    "SerializationError",
    "ShuttingDown",
    "TaskCancelled",
    "TaskError",
    "TaskFailed",
    "TaskLost",
    "TaskNotFound",
    "TaskQuarantined",
    "TaskRejected",
    "TaskTimeout",
    "TaskerError",
]


class TaskerError(Exception):
    """Base class of every error raised by tasker-dist."""


class ConfigError(TaskerError, ValueError):
    """A configuration value is invalid; the message names the field."""


class SerializationError(TaskerError):
    """A callable, an argument or a result could not be serialized or deserialized."""


class PayloadRejected(SerializationError):
    """A payload read from Redis was refused before decoding: its signature did not
    verify, it was unsigned where signatures are required, or it is not a tasker-dist
    payload at all. The message says which."""


class PayloadTooLarge(SerializationError):
    """A serialized task (at the producer, before anything is written) or result (at the
    worker) is larger than ``max_payload_bytes``."""


class RedisUnavailable(TaskerError):
    """Redis could not be reached within the timeout, or a Redis command failed."""


class QueueFull(RedisUnavailable):
    """Redis is out of memory (``maxmemory`` reached under ``noeviction``) and refused to
    queue: nothing was written. Workers go on draining it (finishing tasks frees memory),
    so queueing again later succeeds; `Producer.stats` shows ``redis_full``."""


class RedisFailover(RedisUnavailable):
    """No master answers for the queue right now: a failover is under way (the sentinels
    have not promoted a replica yet, a cluster master failed), or the server reached is a
    read-only replica. Retrying later succeeds once a master is back."""


class NotReplicated(RedisUnavailable):
    """With ``wait_replicas``: the tasks reached the master, but fewer replicas than asked
    confirmed them in time, so a failover now could lose them. They are queued."""


class EmbeddedServerError(TaskerError):
    """No local Redis-compatible server could be found or started."""


class ShuttingDown(TaskerError):
    """The task manager or producer is stopping or stopped and takes no new tasks."""

    def __init__(self, message: str = "task manager is shutting down") -> None:
        super().__init__(message)


class TaskNotFound(TaskerError):
    """Redis knows no task with this id: it was never queued on this queue, or it
    finished so long ago that even the trace of it is gone (kept for another
    ``result_ttl`` after its result, at least a minute)."""


class ResultExpired(TaskNotFound):
    """The task finished, but its result is gone: it outlived ``result_ttl``, or was
    deleted."""


class TaskFailed(TaskerError):
    """A task did not produce a result. Subclasses say why."""


class TaskError(TaskFailed):
    """The task raised an exception that could not be rebuilt in this process.

    ``type_name`` is the qualified name of the remote exception type, ``message`` its text.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class MaxRetriesExceeded(TaskFailed):
    """The task kept failing with errors ``check_health`` judged unhealthy."""

    def __init__(self, original: str) -> None:
        super().__init__(f"max retries exceeded: {original}")
        self.original = original


class TaskCancelled(TaskFailed):
    """The task was cancelled (the manager or worker was killed) before it finished."""


class TaskTimeout(TaskFailed):
    """The task ran past its ``timeout`` and was cancelled."""


class TaskRejected(TaskFailed):
    """A worker refused to run the task: its payload could not be decoded or its
    signature did not verify. The message says which; the raw bytes are in the failed
    store (``tasker failed show``)."""


class TaskQuarantined(TaskFailed):
    """The task was taken more than ``max_deliveries`` times without finishing (it kept
    ending its worker process); it was moved to the failed store instead of running again."""


class TaskLost(TaskFailed):
    """Redis no longer knows the task: it is neither queued, running nor finished (Redis
    restarted without its data, or the task's keys were deleted or evicted)."""


class RemoteTraceback(Exception):
    """Carries the formatted traceback of an exception raised in a worker."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'
