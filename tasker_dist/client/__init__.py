"""The client side: `Producer`, `AsyncProducer`, and the listener that brings results
back. Imports the core, wire, metrics and store layers; never the worker.
"""

from .async_producer import AsyncProducer
from .listener import TaskFuture
from .producer import Producer

__all__ = ["AsyncProducer", "Producer", "TaskFuture"]
