"""tasker-dist: a distributed, Redis-backed task system with long-lived worker resources.

from tasker_dist import Config, TaskManager, Producer, AsyncProducer, TaskContext
"""

from __future__ import annotations

from .client import AsyncProducer, Producer, SpreadProducer, TaskFuture
from .config import Config
from .context import TaskContext
from .errors import (
    ConfigError,
    EmbeddedServerError,
    MaxRetriesExceeded,
    NotReplicated,
    PayloadRejected,
    PayloadTooLarge,
    QueueFull,
    RedisFailover,
    RedisUnavailable,
    RemoteTraceback,
    ResultExpired,
    SerializationError,
    ShuttingDown,
    TaskCancelled,
    TaskerError,
    TaskError,
    TaskFailed,
    TaskLost,
    TaskNotFound,
    TaskQuarantined,
    TaskRejected,
    TaskTimeout,
)
from .manager import TaskManager
from .metrics import Metrics, Stats, WorkerInfo

__all__ = [
    "AsyncProducer",
    "Config",
    "ConfigError",
    "EmbeddedServerError",
    "MaxRetriesExceeded",
    "Metrics",
    "NotReplicated",
    "PayloadRejected",
    "PayloadTooLarge",
    "Producer",
    "QueueFull",
    "RedisFailover",
    "RedisUnavailable",
    "RemoteTraceback",
    "ResultExpired",
    "SerializationError",
    "ShuttingDown",
    "SpreadProducer",
    "Stats",
    "TaskCancelled",
    "TaskContext",
    "TaskError",
    "TaskFailed",
    "TaskFuture",
    "TaskLost",
    "TaskManager",
    "TaskNotFound",
    "TaskQuarantined",
    "TaskRejected",
    "TaskTimeout",
    "TaskerError",
    "WorkerInfo",
]

__version__ = "0.1.0"
