"""The client side: `Producer`, `AsyncProducer`, `SpreadProducer`, and the listener that
brings results back. Imports the core, wire, metrics and store layers; never the worker.
"""

from .async_producer import AsyncProducer
from .callbacks import Callback, CallbackRunner
from .listener import TaskFuture
from .producer import Producer
from .queueing import QueueingMethods
from .spread_producer import SpreadProducer
from .submission import Options, build_task

__all__ = [
    "AsyncProducer",
    "Callback",
    "CallbackRunner",
    "Options",
    "Producer",
    "QueueingMethods",
    "SpreadProducer",
    "TaskFuture",
    "build_task",
]
